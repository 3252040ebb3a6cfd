"""The planner's forecast of the real bridge grid (config/latentwire.yaml, offline), measured rows
replacing the FLOP estimate, forecast vs actual after a run, and the GPU benchmark's tiny shape.
Cost: ~2 s per planner test (three make_plan calls of 10 jobs x 4 setups), ~10 s for the bench."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ablate.bridge import cost, grid, layout
from ablate.bridge import params as bridge_params
from ablate.bridge.infer import BASELINES
from ablate.core import planner
from ablate.core.config import schema_path

REPO = Path(__file__).resolve().parents[2]
SETUPS = ["4x H100 SXM", "1x H100 SXM", "1x H200", "2x H200"]


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(REPO)  # the plan's default files are relative to the repository root
    monkeypatch.delenv("VAST_API_KEY", raising=False)


def latentwire() -> dict:
    return planner.load_config(REPO / "config" / "latentwire.yaml")


def job_rows(t: pd.DataFrame, setup: str) -> pd.DataFrame:
    return t[(t["setup"] == setup) & (t["job"] != planner.TOTAL)]


def test_real_grid_forecast_has_one_row_per_grid_entry_and_a_total(tmp_path):
    config = latentwire()
    p = planner.make_plan(config, root=tmp_path, actuals=False)
    t = p.table
    study = grid.resolve(config["bridge"])
    assert sorted(t["setup"].unique()) == sorted(SETUPS)
    for setup in SETUPS:
        rows = job_rows(t, setup)
        train = rows[rows["job"].str.startswith("train/")]
        # every grid entry in exactly one training row: 2c (same_as 1a) shares 1a's run
        served = [e for j in train["job"] for e in j.split("/", 1)[1].split("+")]
        assert sorted(served) == sorted(study.entries)
        assert "train/1a+2c" in set(train["job"]) and len(train) == len(study.runs)
        infer = rows[rows["job"].str.startswith("infer/")]
        assert sorted(infer["job"]) == ["infer/entry:1a", "infer/qa_entry:3a"]
        # the frozen work, once per cache key (not per run): 3 source caches for 8 runs
        frozen = rows[rows["job"].str.contains("_states/")]
        assert len(frozen) == len(study.states) and len(frozen) < 2 * len(study.runs)
        assert (rows["job"].str.startswith("source_states/")).sum() == 3
        assert len(rows) == len(train) + len(infer) + len(frozen)
        assert rows["est_s"].notna().all() and (rows["fits_memory"] == "yes").all()
        total = t[(t["setup"] == setup) & (t["job"] == planner.TOTAL)]
        assert len(total) == 1
        if setup.startswith("1x"):  # one GPU: the jobs one after another
            assert total["est_s"].iloc[0] == pytest.approx(rows["est_s"].sum(), abs=1)
        else:  # one machine: side by side where their inputs allow (boot and setup once)
            assert total["est_s"].iloc[0] < rows["est_s"].sum()
        assert total["est_cost_usd"].iloc[0] > 0
    # tokens as ablate.bridge.cost counts them (the benchmark counts the same way)
    r = t[(t["setup"] == "1x H200") & (t["job"] == "train/1b")].iloc[0]
    p1b = bridge_params.check(study.entries["1b"].params)
    n = cost.Lengths(150, 150, 128)  # bridge_lengths.gsm8k of config/gpu_measurements.yaml
    # 3000 steps x the global batch: 40 rows on one process (the seed's 10 x 4)
    assert r["tokens"] == 3000 * 40 * cost.example_tokens(64, n) == 3000 * 40 * (150 + 68 + 128)
    # the evaluations during training are in its compute time, at their own rate
    assert "bridged evaluations" in r["note"] and r["compute_s"] > r["tokens"] / r["tok_s_per_gpu"]
    # step 0, 12 x 250 and, with restore_best (not in 1b), the re-evaluation of the best state
    assert cost.n_evaluations(p1b) == 13
    assert cost.n_evaluations(bridge_params.check(study.entries["1a"].params)) == 14
    # each training on its one GPU (bridge.resources.train.gpu: 1), on any setup
    four = t[(t["setup"] == "4x H100 SXM") & (t["job"] == "train/1b")].iloc[0]
    one = t[(t["setup"] == "1x H100 SXM") & (t["job"] == "train/1b")].iloc[0]
    assert four["speedup"] == 1 and four["compute_s"] == one["compute_s"]
    assert "15.28 B parameters" in "\n".join(planner.summary_lines(p))


def test_measured_rows_replace_the_flop_estimate(tmp_path):
    config = latentwire()
    params, fpt = planner_params(tmp_path, config)
    # the shipped file without its rows of the pair's size (the GPU bench's): the FLOP estimate
    ref = yaml.safe_load((REPO / "config/gpu_measurements.yaml").read_text())
    ref["measurements"] = [
        m for m in ref["measurements"] if abs(m["params"] - params) > 0.05 * params
    ]
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(ref))
    config["plan"]["measurements"] = str(bare)
    before = planner.make_plan(config, root=tmp_path, actuals=False).table
    r = before[(before["setup"] == "1x H200") & (before["job"] == "train/1a+2c")].iloc[0]
    assert r["throughput_source"].startswith("flop-estimate")
    ref["measurements"] += [
        dict(
            kind="train",
            gpu="H200",
            params=params,
            tokens_per_s=5000.0,
            flops_per_token=fpt["train/1a+2c"],
            source="test row",
        ),
        dict(
            kind="generate",
            policy="batch16",
            gpu="H200",
            params=params,
            tokens_per_s=400.0,
            source="test row b16",
        ),
        # a tiny-shape CPU row never stands in for the real grid (other size, CPU)
        dict(kind="train", gpu="cpu", params=486790, tokens_per_s=9e9, source="tiny cpu"),
    ]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(ref))
    config["plan"]["measurements"] = str(path)
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    r = t[(t["setup"] == "1x H200") & (t["job"] == "train/1a+2c")].iloc[0]
    assert r["tok_s_per_gpu"] == 5000.0 and "test row" in r["throughput_source"]
    entry = grid.resolve(config["bridge"]).entries["1a"]
    evals = cost.eval_generated_tokens(bridge_params.check(entry.params))
    assert r["compute_s"] == pytest.approx(r["tokens"] / 5000.0 + evals / 400.0, abs=0.2)
    assert "test row b16" in r["note"]
    # another entry's work per token (HotpotQA: long cached source, short answers): the rate is
    # carried over by the ratio of FLOPs per token
    qa = t[(t["setup"] == "1x H200") & (t["job"] == "train/3a")].iloc[0]
    ratio = fpt["train/1a+2c"] / fpt["train/3a"]
    assert ratio > 2 and qa["tok_s_per_gpu"] == pytest.approx(5000.0 * ratio, rel=1e-4)
    assert "for its FLOPs/token" in qa["throughput_source"]
    h100 = t[(t["setup"] == "1x H100 SXM") & (t["job"] == "train/1a+2c")].iloc[0]
    assert "scaled by peak FLOP/s" in h100["throughput_source"]


def planner_params(tmp_path, config) -> tuple[float, dict[str, float]]:
    """The bridge pair's size and each training job's FLOPs per token, as the planner has them."""
    from ablate.bridge.plan import study_plan
    from ablate.core.planner.inputs import load_reference

    ref = load_reference(config["plan"]["measurements"])
    jobs = {j.id: j for j in study_plan(config, ref, tmp_path).jobs}
    return jobs["train/1a+2c"].params, {i: j.flops_per_token for i, j in jobs.items()}


def test_forecast_vs_actual_after_a_run(tmp_path):
    config = latentwire()
    frozen = planner.make_plan(config, root=tmp_path, actuals=False).table
    study = grid.resolve(config["bridge"])
    run_id = study.entries["1b"].run_id
    res = tmp_path / config["results"]
    summary = res / layout.PATTERNS["run_summary"].format(run_id=run_id)
    summary.parent.mkdir(parents=True)
    hw = {"gpus": ["NVIDIA H200"], "cuda": "12.8"}
    summary.write_text(json.dumps({"run_id": run_id, "provenance": {"hardware": hw}}))
    bench = res / layout.PATTERNS["benchmark"].format(folder="train", stem=run_id)
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\n7200.0\t2:00:00\n")
    t = planner.make_plan(config, root=tmp_path, frozen=frozen).table
    r = t[(t["setup"] == "1x H200") & (t["job"] == "train/1b")].iloc[0]
    assert r["actual_s"] == 7200.0 and r["status"] == "ran on this setup"
    assert r["error_pct"] == pytest.approx(100 * (r["est_job_s"] - 7200) / 7200, abs=0.1)
    other = t[(t["setup"] == "4x H100 SXM") & (t["job"] == "train/1b")].iloc[0]
    assert other["status"] == "ran on 1x H200"
    rest = job_rows(t, "1x H200")
    assert (rest["status"] == planner.NOT_RUN).sum() == len(rest) - 1


def test_bench_bridge_tiny_shape_runs_on_cpu(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))  # its modules, as when run as a script
    spec = importlib.util.spec_from_file_location("bench_bridge", REPO / "bench/bench_bridge.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "r.json"
    only = ["seed", "cached", "pipeline:seed", "pipeline:cached"]
    assert bench.main(["--shape", "tiny", "--only", *only, "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["flag"] and res["machine"]["gpu"] == "cpu"
    train = {r["variant"]: r for r in res["rows"] if r["section"] == "train"}
    assert set(train) == set(only) and all(r["finite"] for r in train.values())
    assert train["seed"]["source_forward_s"] > 10 * train["cached"]["source_forward_s"]
    # one token count: the tensor-level step's (ablate.bridge.cost) = Pair.loss's own
    tokens = 4 * cost.example_tokens(8, bench.TINY_LENGTHS)
    assert {r["tokens_per_step"] for r in train.values()} == {tokens}
    assert "kl" in train["pipeline:cached"]["parts"]  # the KL term ran on the cached teacher
    infer = [r for r in res["rows"] if r["section"] == "infer"]
    assert [r["variant"] for r in infer] == list(BASELINES)
    kv = [r for r in res["rows"] if r["section"] == "kv"]
    assert kv and all(r["cache_tensors_mb"] == pytest.approx(r["formula_mb"]) for r in kv)
    kinds = {(m["kind"], m.get("policy")) for m in res["measurements"]}
    assert kinds == {("train", None), ("generate", "batch4"), ("generate", "batch1")}
    assert all(m["source"].startswith("TINY SHAPE ON CPU") for m in res["measurements"])


def seed_placement(config: dict) -> dict:
    """The grid placed as the seed ran it: 4 data-parallel processes of 10 rows (the same runs)."""
    config["bridge"]["resources"]["train"]["gpu"] = 4
    config["bridge"]["defaults"].update(batch_size=10, infonce_group=None)
    return config


def test_evaluations_shard_over_the_data_parallel_gpus_and_infer_times_a_subset(tmp_path):
    config = seed_placement(latentwire())
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    four = t[(t["setup"] == "4x H100 SXM") & (t["job"] == "train/1b")].iloc[0]
    one = t[(t["setup"] == "1x H100 SXM") & (t["job"] == "train/1b")].iloc[0]
    # the translator trains data-parallel: 4 GPUs speed its steps up
    schema = yaml.safe_load(schema_path("ablate.core", "plan").read_text())
    dp = schema["properties"]["scaling"]["properties"]["data_parallel"]["default"]
    assert four["speedup"] == pytest.approx(1 + 3 * dp)
    # each process decodes its shard of the evaluation items (parallel.shard): the bridged
    # evaluations speed up like the training steps, not priced at one GPU's rate
    assert four["compute_s"] * four["speedup"] == pytest.approx(one["compute_s"], rel=1e-3)
    assert "sharded over the data-parallel processes" in four["note"]
    # 10 rows per GPU: the rate and the peak memory measured at 10 rows
    m10 = measurement("rows10")
    assert four["policy"] == "rows10" and "rows 10 (" in four["throughput_source"]
    margin = config["plan"]["memory_margin"]
    assert four["memory_gb"] == pytest.approx(m10["peak_memory_gb"] * (1 + margin), abs=0.1)
    # the benchmark: every item batched (quality), the timed subset at batch 1 (latency)
    study = grid.resolve(config["bridge"])
    r = t[(t["setup"] == "1x H100 SXM") & (t["job"] == "infer/entry:1a")].iloc[0]
    p = bridge_params.check(study.entries["1a"].params)
    timed = study.config["infer"]["timed_samples"]
    assert r["policy"] == f"batch{p.eval_batch_size}" and "latency pass" in r["note"]
    batch1 = cost.infer_timed_tokens(p, timed)
    assert batch1 == (timed + 1) * cost.INFER_GENERATIONS * p.max_new_tokens
    assert r["compute_s"] > r["tokens"] / r["tok_s_per_gpu"]


def measurement(policy: str) -> dict:
    """The shipped bridge training measurement of ``policy`` (rows per GPU)."""
    ref = yaml.safe_load((REPO / "config/gpu_measurements.yaml").read_text())
    (m,) = [m for m in ref["measurements"] if m["kind"] == "train" and m.get("policy") == policy]
    return m


def test_trainings_run_side_by_side_on_one_gpu_each_at_their_rows(tmp_path):
    """config/latentwire.yaml places each training on one GPU (40 rows, InfoNCE in groups of
    10): its rate and memory are the 40-row measurement's, four run side by side on a 4-GPU
    machine after the caches they read, and a GPU too small for 40 rows is refused with the
    same run's placement that fits."""
    from ablate.bridge.plan import study_plan
    from ablate.core.planner.inputs import load_reference
    from ablate.core.planner.schedule import Slot, makespan

    config = latentwire()
    config["plan"]["setups"].append({"gpu": "A100 SXM4", "count": 4})  # 40 GB
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    rows = job_rows(t, "4x H100 SXM")
    train = rows[rows["job"].str.startswith("train/")]
    m40 = measurement("rows40")
    assert (train["policy"] == "rows40").all() and (train["speedup"] == 1).all()
    r = train[train["job"] == "train/1a+2c"].iloc[0]
    assert "rows 40 in InfoNCE groups of 10" in r["throughput_source"]
    assert r["tok_s_per_gpu"] == pytest.approx(m40["tokens_per_s"], rel=1e-3)  # the 1a shape
    margin = config["plan"]["memory_margin"]
    assert (train["memory_gb"] == round(m40["peak_memory_gb"] * (1 + margin), 1)).all()
    assert (train["fits_memory"] == "yes").all()
    # the machine's schedule: each job holds its gpu resource's devices, after what it reads
    ref = load_reference(config["plan"]["measurements"])
    jobs = {j.id: j for j in study_plan(config, ref, tmp_path).jobs}
    assert all(jobs[i].gpus == 1 for i in train["job"])
    assert all(any(a.startswith("source_states/") for a in jobs[i].after) for i in train["job"])
    assert jobs["infer/entry:1a"].gpus == 1 and "train/1a+2c" in jobs["infer/entry:1a"].after
    slots = [Slot(i, s, jobs[i].gpus, jobs[i].after) for i, s in zip(rows["job"], rows["est_s"])]
    o = config["plan"]["overheads"]
    total = t[(t["setup"] == "4x H100 SXM") & (t["job"] == planner.TOTAL)].iloc[0]
    assert total["est_s"] == pytest.approx(makespan(slots, 4) + o["boot_s"] + o["setup_s"], abs=1)
    # four trainings at once: below the states, then the trainings three at a time
    states = rows[rows["job"].str.contains("_states/")]["est_s"].sum()
    assert total["est_s"] - o["boot_s"] - o["setup_s"] < states + train["est_s"].sum() / 3
    # 67.1 GB at 40 rows do not fit a 40 GB A100: refused, naming the same run on 4 x 10
    small = job_rows(t, "4x A100 SXM4")
    small = small[small["job"].str.startswith("train/")]
    assert (small["fits_memory"] == "no").all() and small["est_s"].isna().all()
    note = small[small["job"] == "train/1b"].iloc[0]["note"]
    need = round(m40["peak_memory_gb"] * (1 + margin), 1)
    assert note.startswith(f"does not fit: needs {need} GB per GPU on 1 GPU > 40 GB"), note
    assert "bridge.resources.train.gpu 4, batch_size 10, infonce_group null" in note
    assert "gradient accumulation (fewer rows per step on one GPU) is not built" in note


def test_frozen_state_jobs_divide_over_their_gpu_resource(tmp_path):
    """A frozen-state job runs data-parallel over bridge.resources.frozen_states.gpu (capped at
    the setup's): gpu 1 is one GPU's rate on any setup, gpu 4 divides it like the training."""
    config = latentwire()
    eff = config["plan"]["scaling"]["data_parallel"]
    job = "source_states/hotpotqa:"
    compute = {}
    for gpus in (1, 4):
        config["bridge"]["resources"]["frozen_states"]["gpu"] = gpus
        t = planner.make_plan(config, root=tmp_path, actuals=False).table
        for setup in ("4x H100 SXM", "1x H100 SXM", "2x H200"):
            r = t[(t["setup"] == setup) & t["job"].str.startswith(job)].iloc[0]
            used = min(gpus, int(setup[0]))
            assert r["speedup"] == pytest.approx(1 + (used - 1) * eff, abs=1e-3), (gpus, setup)
            compute[gpus, setup] = r["compute_s"]
    assert compute[1, "4x H100 SXM"] == pytest.approx(compute[1, "1x H100 SXM"], rel=1e-6)
    assert compute[4, "4x H100 SXM"] == pytest.approx(
        compute[1, "4x H100 SXM"] / (1 + 3 * eff), rel=1e-3
    )


@pytest.mark.parametrize(
    ("arch", "d_src", "d_tgt"),
    [
        ({}, 64, 80),
        ({"K": 3, "depth": 1, "bottleneck": 48, "heads": 4, "rope_projection": True}, 80, 64),
    ],
)
def test_the_translators_counted_size_is_the_built_ones(arch, d_src, d_tgt):
    """The planner counts a translator's parameters from its layers (no torch): the count is the
    meta-device build's, with and without the RoPE projection, at the default and another shape."""
    import torch

    from ablate.bridge.plan import translator_params
    from ablate.bridge.translator import ARCH_KEYS, BottleneckedGatedTranslator

    p = bridge_params.check(bridge_params.resolve(arch))
    with torch.device("meta"):
        built = BottleneckedGatedTranslator(
            d_src=d_src, d_tgt=d_tgt, target_rms=1.0, **{k: getattr(p, k) for k in ARCH_KEYS}
        )
    assert translator_params(p, d_src, d_tgt) == sum(x.numel() for x in built.parameters())


def test_the_bridge_planner_imports_no_torch(tmp_path):
    """Planning the embedded bridge study (its pretrainings, states, trainings, inferences)
    imports neither torch nor transformers: a plan is a table job, and torch cost it 6 s on a
    loaded 2-core box (the translator's size built on the meta device, the embedded models'
    defaults read from the module that builds them, the training params' dtype rules)."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ablate.bridge.plan import study_plan\n"
        "from ablate.core.planner.inputs import load_config, load_reference\n"
        "config = load_config(['config/config.yaml'])\n"
        "ref = load_reference(config['plan']['measurements'])\n"
        f"jobs = study_plan(config, ref, Path({str(tmp_path)!r})).jobs\n"
        "print(len(jobs), *[m for m in ('torch', 'transformers') if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert out.returncode == 0, out.stderr[-2000:]
    n, *heavy = out.stdout.split()
    assert int(n) > 0 and heavy == [], out.stdout
