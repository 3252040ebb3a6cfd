"""The bridge study's workflow without running it (dry runs, seconds each): its DAG, the seed
study planned offline, bad grids stopped before any job with the key named."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from checkout import BRIDGE_ARGS, GPU_HOST, copy_checkout, snakemake
from helpers import dry_run_fields, job_counts, load_workflow, shipped_config

from ablate.bridge.pins import ROLES

ROOT = Path(__file__).resolve().parents[2]
BRIDGE_RULES = {
    "bridge_data": 1,
    "bridge_model": 2,
    "bridge_source_states": 3,  # gsm8k and QA read by mistral, gsm8k read by llama (swap)
    "bridge_teacher_states": 3,  # the KL teacher: llama on gsm8k and QA, mistral on gsm8k (swap)
    "bridge_train": 8,  # nine entries, 2c = 1a
    "bridge_infer": 2,  # 1a (ablation 4) and 3a (the QA claim)
    "bridge_summary": 1,
    "bridge_claims": 1,
    "bridge_plots": 1,
}


# the real grid's dry runs plan it as on its GPU host (ablate.core.execution.preflight)
pytestmark = pytest.mark.usefixtures("gpu_host")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return copy_checkout(tmp_path_factory.mktemp("bridge_dag"))


#: config/latentwire.yaml planned offline (the seed study's dry run)
SEED_STUDY = ("-n", "--configfile", "config/latentwire.yaml")
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def bridge_alone(fresh):
    """The bridge study's dry run alone (`--config studies=[bridge]`): one launch for the tests that
    read it (a module fixture starts before a test's `gpu_host`: its environment given here)."""
    return snakemake(fresh, "-n", *BRIDGE_ARGS, timeout=300, env=GPU_HOST)


@pytest.fixture(scope="module")
def seed_study(fresh):
    """The seed study's dry run (`SEED_STUDY`, offline, no lock file): one launch for the tests
    that read it."""
    return snakemake(fresh, *SEED_STUDY, env={**GPU_HOST, **OFFLINE}, timeout=300)


def dry_run_with(wd: Path, cfg: dict, *args: str, env: dict | None = None):
    path = wd / "config" / "edited.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return snakemake(wd, "-n", "--configfile", str(path), *args, env=env, timeout=300)


def test_default_dag_holds_every_bridge_rule(fresh):
    """The default config runs both studies: the bridge rules are in `all`'s DAG."""
    r = snakemake(fresh, "-n", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    counts = job_counts(r.stdout)
    for rule, n in BRIDGE_RULES.items():
        assert counts.get(rule) == n, (rule, counts)
    assert counts.get("finetune")  # and the mask study beside it


def test_bridge_alone(bridge_alone):
    r = bridge_alone
    assert r.returncode == 0, r.stdout + r.stderr
    counts = job_counts(r.stdout)
    assert {k: v for k, v in counts.items() if k != "all"} == {**BRIDGE_RULES, "status": 1}, counts


def test_seed_study_plans_offline(fresh, seed_study):
    """config/latentwire.yaml plans the real grid with no hub access: the models are registered
    by a local rule that a dry run does not run; no embedded world, no pretraining. Its
    `plan.studies: [bridge]` brings the runtime/cost plan rules, waiting for the bridge's planned
    jobs (the bridge alone with the default `plan.studies: [mask]` has none: test_bridge_alone)."""
    r = seed_study
    assert r.returncode == 0, r.stdout + r.stderr
    counts = job_counts(r.stdout)
    assert counts.get("bridge_register") == 2 and "bridge_model" not in counts, counts
    assert counts.get("bridge_train") == 8 and counts.get("bridge_infer") == 2, counts
    assert counts.get("plan_estimate") == counts.get("plan") == 1, counts
    plan = r.stdout[r.stdout.index("rule plan:") :].split("\n[")[0]  # its block, to the next
    assert "results/latentwire/bridge/runs/" in plan and "summary.json" in plan, plan
    assert "results/latentwire/bridge/runs/gsm8k-k64-" in r.stdout
    assert "results/latentwire/bridge/runs/hotpotqa-k64-" in r.stdout
    assert not (fresh / "results" / "latentwire").exists()
    # offline and uncached: run ids name the branch, said once per model and dataset, not per job
    warned = re.findall(r"warning: hub revision (\S+)@main is not resolved", r.stderr)
    bridge = shipped_config("latentwire.yaml")["bridge"]
    hub = [bridge[k]["path"] for k in ROLES] + [f"datasets/{d['path']}" for d in _hub_data(bridge)]
    assert sorted(warned) == sorted(hub), r.stderr


def test_seed_study_with_the_original_losses_plans_offline(fresh):
    """config/latentwire-original.yaml read after config/latentwire.yaml (the original's loss
    definitions) plans the same grid offline, into its own results folder."""
    r = snakemake(
        fresh,
        "-n",
        "--configfile",
        "config/latentwire.yaml",
        "config/latentwire-original.yaml",
        env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    counts = job_counts(r.stdout)
    assert counts.get("bridge_train") == 8 and counts.get("bridge_infer") == 2, counts
    assert "results/latentwire-original/bridge/runs/gsm8k-k64-" in r.stdout
    assert "results/latentwire/" not in r.stdout
    assert not (fresh / "results" / "latentwire-original").exists()


def test_seed_study_pins_the_locked_commits(fresh, seed_study):
    """A lock entry per model: no warning, the run ids hash the commits, and every job loading a
    hub model declares the lock (a Vast instance re-parses the workflow with it). The same dry
    run as `seed_study`, the lock file aside: no other run ids but for the lock's commits."""
    cfg = shipped_config("latentwire.yaml")
    lock = fresh / "results" / "latentwire" / "hub_revisions.json"
    repos = [cfg["bridge"][k]["path"] for k in ROLES]
    repos += [f"datasets/{d['path']}" for d in _hub_data(cfg["bridge"])]
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({f"{p}@main": {"sha": f"{i:040x}"} for i, p in enumerate(repos)}))
    try:
        r = snakemake(fresh, *SEED_STUDY, env=OFFLINE, timeout=300)
    finally:
        shutil.rmtree(lock.parent)
    assert r.returncode == 0 and "warning: hub revision" not in r.stderr, r.stdout + r.stderr
    jobs = [j for j in _dry_run_jobs(r.stdout) if j["rule"] in BRIDGE_HUB_JOBS]
    assert len(jobs) == sum(BRIDGE_RULES[k] for k in BRIDGE_HUB_JOBS)
    assert all(str(lock.relative_to(fresh)) in j["input"] for j in jobs)
    assert seed_study.returncode == 0 and _run_ids(seed_study.stdout), seed_study.stderr
    assert set(_run_ids(r.stdout)).isdisjoint(_run_ids(seed_study.stdout))


def _hub_data(bridge: dict) -> list[dict]:
    return [bridge["data"][d] for d in ("gsm8k", "hotpotqa")]


BRIDGE_HUB_JOBS = ("bridge_train", "bridge_infer", "bridge_source_states", "bridge_teacher_states")


def _run_ids(stdout: str) -> set[str]:
    return set(re.findall(r"bridge/runs/([\w-]+)/summary.json", stdout))


def test_misspelled_hub_dataset_fails_the_dry_run(fresh):
    """The seed's own typo: checked against the offline list of hub ids before the DAG is built."""
    cfg = shipped_config("latentwire.yaml")
    cfg["bridge"]["data"]["hotpotqa"]["path"] = "hot_pot_qa"
    r = dry_run_with(fresh, cfg)
    out = r.stdout + r.stderr
    want = "bridge.data.hotpotqa.path: 'hot_pot_qa' is not a known hub dataset id (did you mean "
    assert r.returncode != 0 and f"{want}'hotpotqa/hotpot_qa'?)" in out, out
    assert "Building DAG" not in out, out  # stopped at parse time, before any job


def _dry_run_jobs(stdout: str) -> list[dict[str, str]]:
    """Each job of a dry run: its rule and fields (input, output, wildcards...)."""
    return [{"rule": rule, **fields} for rule, fields in dry_run_fields(stdout)]


def test_seed_study_computes_each_frozen_state_once(seed_study):
    """config/latentwire.yaml: one bridge_source_states / bridge_teacher_states job per key
    (layout.jobs' list), and every training run sharing a key reads that job's outputs."""
    from ablate.bridge import grid, layout
    from ablate.core import planner

    config = planner.load_config(ROOT / "config" / "latentwire.yaml")
    study = grid.resolve(config["bridge"])
    r = seed_study
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = _dry_run_jobs(r.stdout)
    results = config["results"]
    for what in ("source", "teacher"):
        rule = f"bridge_{what}_states"
        listed = [j for j in layout.jobs(config, study) if j.rule == rule]
        expected = {frozenset(j.outputs.values()) for j in listed}
        got = [
            frozenset(o.strip() for o in j["output"].split(",")) for j in jobs if j["rule"] == rule
        ]
        assert len(got) == len(set(got)) == len(listed) == 3, what  # each once
        assert set(got) == expected, what
        # 1a, 1b, 2a, 2b, ablB, ablC (and 2c) share one; 3a (QA) and swap (llama reads) their own
        shared = [len(s["runs"]) for s in study.states.values() if s["what"] == what]
        assert sorted(shared) == [1, 1, 6], what
        # frozen_states.gpu: 4, one SLURM task holding the 4 GPUs (torchrun starts the processes)
        for j in (j for j in jobs if j["rule"] == rule):
            assert {"gpu=4", "tasks_per_gpu=0"} <= set(j["resources"].split(", ")), j
    for j in (j for j in jobs if j["rule"] == "bridge_train"):
        e = study.runs[j["wildcards"].removeprefix("run_id=")]
        inputs = [x.strip() for x in j["input"].split(",")]
        for sid in (e.states_id, e.teacher_id):
            record = layout.states_outputs(study, sid)[-1]
            assert f"{results}/{record}" in inputs, (e.name, j["input"])


def _grid_edit(**entries) -> dict:
    cfg = shipped_config("config.yaml")
    cfg["studies"] = ["bridge"]
    cfg["bridge"]["grid"].update(entries)
    return cfg


@pytest.mark.parametrize(
    "cfg, expected",
    [
        (
            _grid_edit(ablC_kl_prompt={"prompt_align_weight": 0, "rope_projection": False}),
            "invalid config at bridge.grid: entries 'ablB_kl_only' and 'ablC_kl_prompt' resolve "
            "to the same configuration",
        ),
        (_grid_edit(**{"1a": {"Kk": 8}}), "unknown bridge parameter(s) bridge.grid.1a.Kk"),
        (
            _grid_edit(**{"2b": {"K": 6, "heads": 3}}),
            "bridge.grid.2b.bottleneck = 64 is not divisible by bridge.grid.2b.heads = 3",
        ),
        (
            {**_grid_edit(), "bridge": {**shipped_config("config.yaml")["bridge"], "bogus": 1}},
            "invalid config at bridge: Additional properties are not allowed ('bogus'",
        ),
        (
            {
                **_grid_edit(),
                "bridge": {
                    **shipped_config("config.yaml")["bridge"],
                    "target": {"source": "embedded", "family": "mistral"},
                },
            },
            "bridge.target.family: 'mistral' is also bridge.source.family",
        ),
    ],
    ids=["duplicate", "unknown-key", "bad-heads", "unknown-section-key", "same-tokenizer"],
)
def test_bad_grid_stops_before_any_job(fresh, cfg, expected):
    wd = fresh
    r = dry_run_with(wd, copy.deepcopy(cfg))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert expected in out, out
    assert "Building DAG" not in out and "Job stats" not in out, out
    assert not (wd / "results" / "bridge").exists()  # nothing half-written


def test_same_as_entry_has_no_job(bridge_alone):
    """2c declares same_as 1a: no job mentions it except through 1a's run id."""
    from ablate.bridge import grid

    r = bridge_alone
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = shipped_config("config.yaml")
    from ablate.core.config import validate_config

    validate_config(cfg)
    study = grid.resolve(cfg["bridge"])
    run_1a = study.entries["1a"].run_id
    planned = {
        line.split("=", 1)[1].strip()
        for line in r.stdout.splitlines()
        if line.strip().startswith("wildcards: run_id=")
    }
    assert planned == set(study.runs)
    assert run_1a in planned and len(planned) == len(study.entries) - 1


@pytest.mark.parametrize("configfile, gpus", [(None, 0), ("config/latentwire.yaml", 1)])
def test_cpu_rules_are_local_gpu_rules_declare_resources(fresh, configfile, gpus):
    """Data, registration and the tables run in the snakemake process; model, train and infer
    jobs carry the config's requests (latentwire: 1 GPU per training job, 40 rows on it)."""
    wf = load_workflow(fresh, configfile)
    local = {r for r in wf._localrules if r.startswith("bridge_")}
    expected = {"bridge_data", "bridge_summary", "bridge_claims", "bridge_plots"}
    assert local == expected | ({"bridge_register"} if configfile else set())
    rules = {r.name: r for r in wf.rules}
    for name in ("bridge_train", "bridge_infer", *(() if configfile else ("bridge_model",))):
        res = rules[name].resources
        assert all(k in res for k in ("gpu", "mem_mb", "disk_mb", "runtime")), name
    assert rules["bridge_train"].resources["gpu"] == gpus
