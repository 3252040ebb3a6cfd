"""The run cache (ablate.core.reruns.runcache): a job stored under the key of everything that
determines it is restored, byte for byte, when a job with the same key runs again (an edit reverted,
a second clone); an entry that does not match its manifest is refused; a restored job says so. The
pipeline test (a real evaluation job restored through Snakemake) is in test_pipeline_runcache.py.
"""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import DEEP_JSON

from ablate.core.outputs import io, provenance
from ablate.core.outputs.checkpoint_integrity import sha256_file
from ablate.core.outputs.io import write_json
from ablate.core.reruns import runcache
from ablate.core.trees import results_trees

REPO = Path(__file__).resolve().parents[3]
MARKER = "final" + runcache.RESTORED_SUFFIX  # the fake job's first output is final/


def make_job(root: Path, cache: Path | dict | None, lr: float = 1e-3, data: str = "a b c\n"):
    """A fake Snakemake script job under ``root``: one input file, a folder and a record output."""
    (root / "in").mkdir(parents=True, exist_ok=True)
    (root / "in" / "data.txt").write_text(data)
    out = root / "out"
    return SimpleNamespace(
        rule="finetune",
        wildcards={"variant": "3A"},
        params={"finetune": {"lr": lr, "steps": 3}},
        input=[str(root / "in" / "data.txt")],
        output=[str(out / "final"), str(out / "summary.json")],
        config={"run_cache": cache if isinstance(cache, dict) else str(cache) if cache else None},
        scriptdir=str(REPO / "workflow" / "scripts"),
    )


def parts_of(job) -> dict:
    return runcache.key_parts(job.rule, job.wildcards, job.params, job.input, job.scriptdir)


def tensorboard(job) -> Path:
    """The fake job's side output: what a finetune's TensorBoard folder is to a finetune."""
    return Path(job.output[1]).parent / "tensorboard"


def checkpoints(job) -> Path:
    """The fake job's training checkpoints: what a finetune's ``checkpoints/`` is to it."""
    return Path(job.output[1]).parent / "checkpoints"


def run(job, side: bool = False) -> tuple[bool, str]:
    """What a job script does: restore, else compute (a new run id each time) and store; with
    ``side``, it also writes a TensorBoard folder of its run."""
    cached = runcache.JobCache(job, [tensorboard(job)], work=[checkpoints(job)])
    if cached.restored():
        return True, ""
    final, summary = (Path(p) for p in job.output)
    final.mkdir(parents=True, exist_ok=True)
    run_id = provenance.new_run_id()
    (final / "weights.bin").write_bytes(run_id.encode() * 100)
    (final / ".snakemake_timestamp").touch()
    prov = {
        "run_id": run_id,
        "config": job.params,
        "config_hash": provenance.config_hash(job.params),
    }
    write_json(summary, {"lr": job.params["finetune"]["lr"], "provenance": prov})
    if side:
        shutil.rmtree(tensorboard(job), ignore_errors=True)
        tensorboard(job).mkdir()
        (tensorboard(job) / "events.out").write_text(run_id)
    cached.store()
    return False, run_id


def contents(job) -> dict[str, bytes]:
    out = Path(job.output[1]).parent
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != ".snakemake_timestamp" and "history" not in p.parts
    }


def test_edit_and_revert_restores_the_same_bytes(tmp_path):
    cache = tmp_path / "cache"
    assert run(make_job(tmp_path / "w", cache))[0] is False
    first = contents(make_job(tmp_path / "w", cache))
    run_id = json.loads(first["summary.json"])["provenance"]["run_id"]
    assert run(make_job(tmp_path / "w", cache, lr=5e-4))[0] is False  # the edit: a new key, runs
    assert contents(make_job(tmp_path / "w", cache)) != first
    restored, _ = run(make_job(tmp_path / "w", cache))  # the revert: restored, not run
    assert restored and contents(make_job(tmp_path / "w", cache)) == {
        **first,
        MARKER: contents(make_job(tmp_path / "w", cache))[MARKER],
    }
    marker = json.loads((tmp_path / "w" / "out" / MARKER).read_text())
    assert marker["restored"] is True and marker["from_run_id"] == run_id
    assert Path(marker["cache_entry"]).parent == cache
    # the job runs again for real (cache off): the marker of the restore goes
    assert run(make_job(tmp_path / "w", None))[0] is False
    assert not (tmp_path / "w" / "out" / MARKER).exists()


def test_a_second_clone_reuses_the_first_ones_jobs(tmp_path):
    cache = tmp_path / "shared"
    run(make_job(tmp_path / "clone1", cache))
    assert run(make_job(tmp_path / "clone2", cache))[0] is True
    one, two = (
        contents(make_job(tmp_path / "clone1", cache)),
        contents(make_job(tmp_path / "clone2", cache)),
    )
    assert two.pop(MARKER) and one == two
    # its records are kept in history/ as written ones are: `ablate runs` finds the tree by them
    record = tmp_path / "clone2/out/summary.json"
    run_id = json.loads(record.read_text())["provenance"]["run_id"]
    assert io.history_path(record, run_id).read_text() == record.read_text()
    (tmp_path / "clone2/logs").mkdir()  # a results tree: its jobs' logs and records
    assert [t.path for t in results_trees.find_trees(tmp_path / "clone2")] == [tmp_path / "clone2"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: (e / "outputs" / "0" / "weights.bin").write_bytes(b"tampered"),
        lambda e: (e / "outputs" / "1").unlink(),
        lambda e: (e / "outputs" / "0" / "extra.bin").write_bytes(b"x"),
        lambda e: (e / runcache.MANIFEST).unlink(),
        lambda e: (e / runcache.MANIFEST).write_text(DEEP_JSON),
    ],
    ids=["changed", "missing", "extra", "no-manifest", "too-deep"],
)
def test_an_entry_that_does_not_match_its_manifest_is_refused(tmp_path, damage, capsys):
    cache = tmp_path / "cache"
    run(make_job(tmp_path / "w", cache))
    (entry,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    damage(entry)
    restored, run_id = run(make_job(tmp_path / "w2", cache))
    assert not restored and run_id  # the job ran
    assert "refused entry" in capsys.readouterr().out
    assert len(list((cache / runcache.REFUSED).iterdir())) == 1  # moved aside, never used
    assert runcache.verify(entry) is None  # the job's own result took its place
    assert not (tmp_path / "w2" / "out" / MARKER).exists()


def test_a_cache_that_cannot_store_never_fails_the_job(tmp_path, capsys):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache should be\n")
    restored, run_id = run(make_job(tmp_path / "w", blocked))
    assert not restored and run_id  # it ran, and its outputs stand
    assert json.loads((tmp_path / "w" / "out" / "summary.json").read_text())["provenance"]
    assert "[run cache] not stored" in capsys.readouterr().out


def test_a_store_that_fails_half_way_leaves_no_half_entry(tmp_path, capsys, monkeypatch):
    """The disk fills while a job's outputs are copied in (the run cache is on by default): the
    job's outputs stand and the half-copied `.tmp-*` folder is removed, not left to fill the disk
    further on every later store (before, it stayed)."""
    cache = tmp_path / "cache"
    copies = []

    def copy(src, dst):
        copies.append(dst)
        if len(copies) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    real = runcache._copy
    monkeypatch.setattr(runcache, "_copy", copy)
    restored, run_id = run(make_job(tmp_path / "w", cache))
    assert not restored and run_id and len(copies) == 2
    assert "[run cache] not stored (OSError" in capsys.readouterr().out
    assert list(cache.iterdir()) == []


def test_an_input_edited_while_the_job_ran_is_not_stored_under_the_key_of_its_old_bytes(
    tmp_path, capsys
):
    """The key is taken at the job's start: a task's data edited before the job read it gave a
    result of the new bytes under the key of the old ones, restored for the old bytes later."""
    cache = tmp_path / "cache"
    job = make_job(tmp_path / "w", cache)
    cached = runcache.JobCache(job)
    assert not cached.restored()
    Path(job.input[0]).write_text("a b d\n")  # edited after the key, before the job read it
    for p in map(Path, job.output):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("{}")
    cached.store()
    assert not cache.exists() or not any(cache.iterdir())
    assert (
        f"[run cache] not stored: {job.input[0]} changed while the job ran (its key is of the "
        "bytes before); the job's outputs stand"
    ) in capsys.readouterr().out


def test_a_restore_that_fails_half_way_leaves_no_output_and_the_job_runs(
    tmp_path, monkeypatch, capsys
):
    cache = tmp_path / "cache"
    run(make_job(tmp_path / "w", cache))
    copy = runcache._copy

    def copy_then_fail(src, dst):  # the first output comes back, then the disk fails
        copy(src, dst)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(runcache, "_copy", copy_then_fail)
    job = make_job(tmp_path / "w2", cache)
    assert runcache.JobCache(job).restored() is False
    assert not any(Path(p).exists() for p in job.output)  # nothing half restored is left
    assert "[run cache] not restored (OSError" in capsys.readouterr().out


def test_the_key_covers_inputs_params_code_and_packages(tmp_path, monkeypatch):
    def key(scripts=None, **kw):
        j = make_job(tmp_path / "k", None, **kw)
        scripts = scripts or j.scriptdir
        return runcache.key_of(
            runcache.key_parts(j.rule, j.wildcards, j.params, j.input, scripts=scripts)
        )

    base = key()
    assert key() == base and key(lr=2e-3) != base and key(data="other\n") != base
    scripts = tmp_path / "scripts"
    shutil.copytree(REPO / "workflow" / "scripts", scripts)
    assert key(scripts=scripts) == base
    (scripts / "finetune.py").write_text("# edited\n", encoding="utf-8")
    assert key(scripts=scripts) != base
    versions = provenance.runtime_packages()
    for name in ("torch", "tokenizers", "safetensors", "tiktoken"):  # tokenizers: every mask job
        monkeypatch.setattr(runcache, "runtime_packages", lambda n=name: {**versions, n: "0.0"})
        assert key() != base, name


def test_the_code_hash_covers_the_original_protocols_task_yamls(tmp_path, monkeypatch):
    """G10: the packaged task YAMLs (the original protocol's prompts) were outside the code hash:
    an edit of one restored evaluations scored with the old prompts."""
    import ablate

    package = tmp_path / "ablate"
    shutil.copytree(
        Path(ablate.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    monkeypatch.setattr(ablate, "__file__", str(package / "__init__.py"))
    base = runcache.code_hash()
    task = package / "mask" / "original_tasks" / "hellaswag_original.yaml"
    task.write_text(task.read_text().replace("test_split:", "test_split:  "))
    assert runcache.code_hash() != base


def test_every_file_the_package_ships_counts_as_code():
    """The package's data files (pyproject's package-data: schemas, task YAMLs) are in the code
    hash's list of the files that count as code, so none is left out of the key."""
    import fnmatch
    import tomllib

    shipped = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["ablate"]
    files = [p for p in (REPO / "src" / "ablate").rglob("*") if p.is_file()]
    data = [p for p in files if any(p.match(pattern) for pattern in shipped)]
    assert data and all(
        any(fnmatch.fnmatch(p.name, pattern) for pattern in runcache.CODE_FILES) for p in data
    )


def test_the_key_covers_every_distribution_a_job_computes_with():
    """Every third-party module the library and the job scripts import is of a distribution in
    the key (derived from the requirements, so a new dependency enters by itself), or of one that
    only an extra of ``ablate`` requires (a tracking client, an executor plugin: no result's
    bytes come from them)."""
    import ast
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    keyed = provenance.runtime_packages()
    assert {"tokenizers", "safetensors", "tiktoken", "lm-eval", "torch"} <= set(keyed)
    extras_only = {
        canonicalize_name(r.name)
        for r in map(Requirement, metadata.requires("ablate") or [])
        if r.marker is not None and "extra" in str(r.marker)
    }
    owners = metadata.packages_distributions()
    files = [
        *(REPO / "src" / "ablate").rglob("*.py"),
        *(REPO / "workflow" / "scripts").rglob("*.py"),
    ]
    imported = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"ablate"}
    missing = {
        m: owners.get(m)
        for m in sorted(third_party)
        if not any(canonicalize_name(d) in {*keyed, *extras_only} for d in owners.get(m, []))
    }
    assert missing == {}


def test_installing_an_extra_keeps_every_key():
    """The README's test install (`pip install -e '.[test]'`: pytest, the SLURM plugin, the
    MLflow client and their needs) recomputed every job of the quick start: the key covered every
    extra's packages but the test tools' own. An extra's packages are out of the key; this test
    runs where the test extras are installed."""
    from importlib import metadata

    installed = {"pytest", "mlflow-skinny", "snakemake-executor-plugin-slurm", "alembic"}
    for name in installed:
        assert metadata.version(name)  # installed here, so the key could have covered it
    assert installed.isdisjoint(provenance.runtime_packages())


def test_a_corrupt_checkpoint_input_is_refused_as_the_job_refuses_it(tmp_path):
    """The key reads a checkpoint input's hashes from its manifest (sizes checked): a same-size
    corruption kept the key and was restored over; the job itself fails on it."""
    from ablate.core.outputs import checkpoint_integrity

    cache = tmp_path / "cache"
    job = make_job(tmp_path / "w", cache)
    model = tmp_path / "w" / "in" / "final"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights" * 100)
    checkpoint_integrity.write_manifest(model)
    job.input.append(str(model))
    run(job)
    restored, _ = run(job)
    assert restored  # intact: restored
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[:-1] + b"X")  # same size
    assert parts_of(job) == runcache.JobCache(job).parts  # the key did not change
    with pytest.raises(checkpoint_integrity.CheckpointError) as job_error:
        checkpoint_integrity.check_before_load(model)
    summary = Path(job.output[1]).read_text()
    with pytest.raises(checkpoint_integrity.CheckpointError) as cache_error:
        runcache.JobCache(job).restored()
    assert str(cache_error.value) == str(job_error.value)
    assert "does not match its recorded sha256 (altered)" in str(cache_error.value)
    assert Path(job.output[1]).read_text() == summary  # nothing restored over the outputs


def test_a_restore_brings_back_the_runs_tensorboard_events_or_removes_anothers(tmp_path):
    """Edit, run, revert: the restored run's events, not the edited run's, are in the folder
    (the edited 40-step run's eval/loss stayed beside the restored 200-step model)."""
    cache = tmp_path / "cache"
    _, first = run(make_job(tmp_path / "w", cache), side=True)
    _, edited = run(make_job(tmp_path / "w", cache, lr=2e-3), side=True)
    job = make_job(tmp_path / "w", cache)
    assert (tensorboard(job) / "events.out").read_text() == edited
    assert run(job) == (True, "")
    assert (tensorboard(job) / "events.out").read_text() == first
    assert json.loads(Path(job.output[1]).read_text())["provenance"]["run_id"] == first
    run(make_job(tmp_path / "w", cache, lr=3e-3))  # a run without events (tracking off)
    run(make_job(tmp_path / "w", cache, lr=2e-3), side=False)  # restores the edited run's
    assert (tensorboard(job) / "events.out").read_text() == edited
    assert run(make_job(tmp_path / "w", cache, lr=3e-3)) == (True, "")
    assert not tensorboard(job).exists()  # the restored run had none: not the other run's


def test_a_restored_job_brings_back_its_mlflow_run_once(tmp_path, monkeypatch):
    """A second clone's restore (job_script.start) logs the restored record's MLflow run into
    its own store, tagged with the run that made it; restoring again adds no second run."""
    pytest.importorskip("mlflow")
    import mlflow

    from ablate import job_script
    from ablate.core.reports import tracking

    monkeypatch.setattr(job_script, "start_light", lambda smk, study: None)  # no log redirect
    # nor the hub switch, which reads the study's config this bare job lacks
    monkeypatch.setattr(job_script.studies, "hub_switch", lambda config, study: False)
    cache, track = tmp_path / "cache", {"mlflow": True}
    _, first = run(make_job(tmp_path / "w1", cache))
    job = make_job(tmp_path / "w2", cache)

    def log_run():
        tracking.log_record(job.output[1], "finetune", "finetune/3A", track, tmp_path / "w2")

    for _ in range(2):
        with pytest.raises(SystemExit):
            job_script.start(job, "mask", after_restore=log_run)
    client = mlflow.MlflowClient(tracking.mlflow_uri(track, tmp_path / "w2"))
    runs = client.search_runs([client.get_experiment_by_name("ablate").experiment_id])
    assert [r.data.tags["ablate.run_id"] for r in runs] == [first]


def test_holds_and_the_planner_counts_a_cached_job_as_zero(tmp_path):
    from helpers import EMBEDDED_RUN, planner_config

    from ablate.core.planner.estimate import estimate
    from ablate.core.planner.history import pipeline_measurements
    from ablate.core.planner.inputs import load_reference, parse_setups
    from ablate.core.planner.planned_jobs import study_plans
    from ablate.core.planner.prices import resolve_prices

    cache = tmp_path / "cache"
    job = make_job(tmp_path / "w", cache)
    parts = parts_of(job)
    assert not runcache.holds(cache, parts) and not runcache.holds(None, parts)
    run(job)
    assert runcache.holds(cache, parts)

    config = planner_config("config.yaml")
    plan = config["plan"]
    ref = load_reference(plan["measurements"])
    plans = study_plans(config, ref, EMBEDDED_RUN)
    jobs = [j for sp in plans for j in sp.jobs]
    setups = parse_setups(plan, ref)
    ms = pipeline_measurements(plans, EMBEDDED_RUN, ref, plan) + ref.measurements
    args = (jobs, setups, resolve_prices(setups, plan), ref, ms, plan)
    full = estimate(*args)
    held = estimate(
        *args, in_cache=lambda j: j.id == "finetune/3A" and runcache.holds(cache, parts)
    )
    pick = lambda t, j: t[(t["setup"] == "1x cpu") & (t["job"] == j)].iloc[0]  # noqa: E731
    was = pick(full, "finetune/3A")
    assert was["est_s"] > 0 and pick(held, "finetune/3A")["est_s"] == 0
    assert pick(held, "finetune/3A")["est_cost_usd"] == 0
    assert "run cache" in pick(held, "finetune/3A")["note"]
    assert pick(held, "TOTAL")["est_s"] == pytest.approx(
        pick(full, "TOTAL")["est_s"] - was["est_s"], abs=0.2
    )


def test_a_storage_plugin_location_stores_restores_and_refuses(tmp_path, fs_storage, capsys):
    run(make_job(tmp_path / "clone1", fs_storage))
    (tar,) = Path(fs_storage["prefix"]).glob("*.tar")
    assert run(make_job(tmp_path / "clone2", fs_storage))[0] is True  # a second clone reuses
    one, two = (
        contents(make_job(tmp_path / "clone1", None)),
        contents(make_job(tmp_path / "clone2", None)),
    )
    marker = json.loads(two.pop(MARKER))
    assert one == two and marker["cache_entry"] == str(tar)
    # a tampered object: refused, the job runs and its result replaces the object
    with tarfile.open(tar) as t:
        t.extractall(tmp_path / "x", filter="data")
    (next((tmp_path / "x").rglob("weights.bin"))).write_bytes(b"tampered")
    with tarfile.open(tar, "w") as t:
        t.add(next((tmp_path / "x").iterdir()), arcname=tar.stem)
    restored, run_id = run(make_job(tmp_path / "clone3", fs_storage))
    assert not restored and run_id and "refused entry" in capsys.readouterr().out
    assert run(make_job(tmp_path / "clone4", fs_storage))[0] is True
    assert runcache.holds(fs_storage, parts_of(make_job(tmp_path / "clone4", None)))


def test_the_plan_counts_a_job_whose_key_the_cache_holds_as_zero(tmp_path, monkeypatch):
    """make_plan with the config's run_cache: the job whose inputs exist and whose key (the same
    key_parts of its job_spec that JobCache builds) has an entry costs nothing; once an input
    changes the key has no entry and it is forecast in full; a job whose inputs are not there yet,
    and every job outside Snakemake (no specs), get a note instead."""
    from helpers import ROOT as REPO_ROOT
    from helpers import planner_config, row

    from ablate.core.planner import make_plan

    monkeypatch.chdir(REPO_ROOT)  # the config's measurement and offer files
    root, cache = tmp_path / "w", tmp_path / "cache"
    job = make_job(root, cache)
    run(job)  # a fabricated entry under the job's key
    spec = dict(runcache.job_spec(job), inputs=["in/data.txt"])  # relative to the plan's root
    specs = {
        "finetune/3A": spec,
        "eval/3A/causal": dict(spec, inputs=["finetune/3A/final"]),
        "eval/3A/prefill_bidir": {"error": "WorkflowError: no such rule"},
    }
    config = dict(planner_config("config.yaml"), run_cache=str(cache))

    def plan(cache_jobs=specs):
        return make_plan(
            config, root=root, actuals=False, cache_jobs=cache_jobs, scripts=job.scriptdir
        ).table

    held = plan()
    assert row(held, "1x cpu", "finetune/3A")["est_s"] == 0
    assert row(held, "1x cpu", "finetune/3A")["est_cost_usd"] == 0
    assert "in the run cache" in row(held, "1x cpu", "finetune/3A")["note"]
    waiting = row(held, "1x cpu", "eval/3A/causal")
    assert waiting["est_s"] > 0 and "finetune/3A/final do not exist yet" in waiting["note"]
    assert "no rule of this workflow" in row(held, "1x cpu", "eval/base/causal")["note"]
    assert (
        "could not be expanded (WorkflowError"
        in row(held, "1x cpu", "eval/3A/prefill_bidir")["note"]
    )

    (root / "in" / "data.txt").write_text("changed\n")  # another key: no entry
    changed = row(plan(), "1x cpu", "finetune/3A")
    assert changed["est_s"] > 0 and "run cache: no entry for its key" in changed["note"]
    outside = row(plan(cache_jobs=None), "1x cpu", "finetune/3A")
    assert outside["est_s"] > 0 and "known inside Snakemake only" in outside["note"]
    off = make_plan(dict(config, run_cache=None), root=root, actuals=False, cache_jobs=specs)
    assert "run cache" not in row(off.table, "1x cpu", "finetune/3A")["note"]


def test_a_rule_snakemake_cannot_expand_is_a_spec_error_not_a_failed_run():
    """runcache.job_specs runs at DAG time (rule plan_estimate's params): a rule that does not
    expand gives the planner an error to note, never an exception that would stop the run."""
    job = SimpleNamespace(name="finetune/3A", rule="no_such_rule", wildcards={})
    specs = runcache.job_specs(lambda name: {}[name], [job])
    assert specs == {"finetune/3A": {"error": "KeyError: 'no_such_rule'"}}


def test_an_entry_filed_under_another_key_is_refused(tmp_path, capsys):
    """An entry copied to another key (the 3A/causal evaluation's under the 3A/prefill_bidir
    key) was restored: the manifest's own key was never compared with the key looked up."""
    cache = tmp_path / "cache"
    causal, other = make_job(tmp_path / "a", cache), make_job(tmp_path / "b", cache, lr=5e-4)
    run(causal)
    entry = cache / runcache.key_of(parts_of(causal))
    misfiled = cache / runcache.key_of(parts_of(other))
    shutil.copytree(entry, misfiled)
    assert runcache.verify(misfiled) is not None
    restored, run_id = run(other)
    assert not restored and run_id  # refused: the job ran
    refused = [line for line in capsys.readouterr().out.splitlines() if "refused entry" in line]
    assert len(refused) == 1 and "filed under the wrong key" in refused[0], refused
    assert json.loads(Path(other.output[1]).read_text())["lr"] == 5e-4  # its own result
    assert runcache.verify(misfiled) is None  # the job's own entry took the key


def test_an_entry_whose_key_field_was_edited_to_another_key_is_refused(tmp_path, capsys):
    """An entry copied under another job's key with its manifest's ``key`` edited to match was
    restored as that job: the key was read from the manifest, never recomputed from the parts
    it records. Now the parts' own key must be the entry's."""
    cache = tmp_path / "cache"
    causal, other = make_job(tmp_path / "a", cache), make_job(tmp_path / "b", cache, lr=5e-4)
    run(causal)
    forged_key = runcache.key_of(parts_of(other))
    forged = cache / forged_key
    shutil.copytree(cache / runcache.key_of(parts_of(causal)), forged)
    manifest = json.loads((forged / runcache.MANIFEST).read_text())
    (forged / runcache.MANIFEST).write_text(json.dumps({**manifest, "key": forged_key}))
    assert runcache.verify(forged) is not None
    restored, run_id = run(other)
    assert not restored and run_id  # refused: the job ran
    refused = [line for line in capsys.readouterr().out.splitlines() if "refused entry" in line]
    assert len(refused) == 1 and "its parts are of another key" in refused[0], refused
    assert json.loads(Path(other.output[1]).read_text())["lr"] == 5e-4  # its own result
    assert runcache.verify(forged) is None  # the job's own entry took the key


def test_an_entry_whose_key_and_parts_were_copied_from_another_entry_is_refused(tmp_path, capsys):
    """Another job's entry copied under this job's key, its manifest's ``key`` and ``parts``
    copied from this job's own entry: the parts' key was the entry's and every file its
    manifest's, so it was restored as this job. The manifest's seal binds its key and parts
    to its files' hashes: an edited manifest is refused, naming the entry."""
    cache = tmp_path / "cache"
    causal, other = make_job(tmp_path / "a", cache), make_job(tmp_path / "b", cache, lr=5e-4)
    run(causal)
    run(other)
    own = cache / runcache.key_of(parts_of(other))
    own_manifest = json.loads((own / runcache.MANIFEST).read_text())
    shutil.rmtree(own)
    shutil.copytree(cache / runcache.key_of(parts_of(causal)), own)
    manifest = json.loads((own / runcache.MANIFEST).read_text())
    edited = {**manifest, "key": own_manifest["key"], "parts": own_manifest["parts"]}
    (own / runcache.MANIFEST).write_text(json.dumps(edited))
    assert runcache.verify(own) is not None
    again = make_job(tmp_path / "c", cache, lr=5e-4)
    restored, run_id = run(again)
    assert not restored and run_id  # refused: the job ran
    refused = [line for line in capsys.readouterr().out.splitlines() if "refused entry" in line]
    assert refused == [refused[0]] and own.name in refused[0], refused
    assert "its manifest is not the one stored with its files" in refused[0], refused
    assert json.loads(Path(again.output[1]).read_text())["lr"] == 5e-4  # its own result


def test_a_key_is_the_key_of_its_parts_as_an_entry_stores_them():
    """The parts go into the manifest as JSON and come back; their key is the same (a number
    key, a tuple): a stored entry is never refused for its own parts."""
    parts = {"params": {"lr": (1, 2.5e-4), "by_step": {2: "x", 10: None}}, "inputs": ["f"]}
    assert runcache.key_of(json.loads(json.dumps(parts))) == runcache.key_of(parts)


def test_a_restored_job_sets_the_checkpoints_of_an_earlier_attempt_aside(tmp_path, capsys):
    """A job interrupted in training left ``checkpoints/``; its outputs then came from the cache
    (another clone ran it). Those checkpoints are not of the restored run: they no longer sit
    where a later run of the job would resume them, and the log says where they went."""
    cache = tmp_path / "shared"
    run(make_job(tmp_path / "clone1", cache))
    job = make_job(tmp_path / "clone2", cache)
    left = checkpoints(job) / "checkpoint-2"
    left.mkdir(parents=True)
    (left / "model.safetensors").write_bytes(b"an earlier attempt's")
    capsys.readouterr()
    assert run(job)[0] is True
    assert not checkpoints(job).exists()
    aside = checkpoints(job).with_name("corrupt-checkpoints")
    assert (aside / "checkpoint-2" / "model.safetensors").read_bytes() == b"an earlier attempt's"
    said = [x for x in capsys.readouterr().out.splitlines() if "checkpoints" in x]
    assert said == [
        f"[run cache] set aside {checkpoints(job)} as {aside.name}: a run's working files, not "
        "the restored outputs' (never resumed; delete it to free the space)"
    ], said


def test_a_job_that_runs_keeps_its_checkpoints_to_resume(tmp_path):
    job = make_job(tmp_path / "clone1", tmp_path / "shared")
    (checkpoints(job) / "checkpoint-2").mkdir(parents=True)
    assert run(job)[0] is False
    assert (checkpoints(job) / "checkpoint-2").is_dir()


def record(path: Path, result: dict, run_id: str, seconds: float) -> str:
    """An upstream job's JSON record: its result, and fields of the run that made it."""
    write_json(
        path,
        {
            **result,
            "phases": {"load_model": seconds},
            "throughput": {"train_runtime_s": seconds},
            "provenance": {
                "run_id": run_id,
                "config_hash": "h",
                "finished_at": f"2026-11-26T11:{seconds:02.0f}",
            },
        },
    )
    return runcache.input_fingerprint(path)


def test_a_downstream_key_holds_its_inputs_result_not_their_run(tmp_path):
    """The probe's JSON carries its run id and timings: every rerun of it changed every key
    downstream, though it computed the same result. A changed result still changes the key."""
    probe = tmp_path / "leakage" / "causal.json"
    probe.parent.mkdir()
    result = {"policy": "causal", "leaks": False, "loss_causal": 1.25, "n_examples": 8}
    first = record(probe, result, "run-1", 12.0)
    assert record(probe, result, "run-2", 31.0) == first
    assert record(probe, {**result, "loss_causal": 1.5}, "run-2", 31.0) != first
    assert record(probe, {**result, "n_examples": 4}, "run-1", 12.0) != first
    folder = tmp_path / "states"  # a folder input (a bridge states cache): its record inside
    folder.mkdir()
    (folder / "states.bin").write_bytes(b"\0" * 64)
    first = record(folder / "summary.json", {"items": {"train": 3}}, "run-1", 3.0)
    key = runcache.input_fingerprint(folder)
    record(folder / "summary.json", {"items": {"train": 3}}, "run-2", 4.0)
    assert (folder / "history" / "run-2.summary.json").is_file()  # io.write_json's copy
    assert runcache.input_fingerprint(folder) == key
    (folder / "states.bin").write_bytes(b"\1" * 64)
    assert runcache.input_fingerprint(folder) != key


def test_a_table_jobs_key_holds_its_input_records_run_ids(tmp_path):
    """A table job (recovery_table, mask_claims: ablate.job_script.start_table) keys its input
    files by their bytes: its table names each record's run id, so a rerun of the same result
    under a new run id must not restore a table that names the old one; the same bytes (a
    revert's restored records) keep its key, and its JobCache restores it; the same bytes at
    another path (another tree's records: the table names its files) do not."""
    metrics = tmp_path / "eval" / "metrics.json"
    metrics.parent.mkdir()
    result = {"scores": {"emb_pair": 0.75}, "n": 8}

    def keys(run_id: str) -> tuple[str, str]:
        record(metrics, result, run_id, 5.0)
        return runcache.input_fingerprint(metrics), runcache.input_fingerprint(metrics, exact=True)

    content, exact = keys("run-1")
    again, exact_again = keys("run-2")
    assert again == content and exact_again != exact  # the model jobs' key: the same result
    cache = tmp_path / "cache"
    job = SimpleNamespace(
        rule="recovery_table",
        wildcards={},
        params={"alpha": 0.05},
        input=[str(metrics)],
        output=[str(tmp_path / "recovery.csv")],
        config={"run_cache": str(cache)},
        scriptdir=str(REPO / "workflow" / "scripts"),
    )
    made = runcache.JobCache(job, exact=True)
    assert not made.restored()
    Path(job.output[0]).write_text("task,score,run_id\nemb_pair,0.75,run-2\n")
    made.store()
    restored = runcache.JobCache(job, exact=True)
    assert restored.restored()  # the same bytes: restored
    # a table holds no record, so no run id: its line names none rather than "run unknown"
    assert restored.restored_line().startswith(
        f"{runcache.RESTORED_LINE} (key {runcache.key_of(made.parts)[:12]}: stored "
    )
    keys("run-3")  # the same result, another run: the table would name run-2
    assert not runcache.JobCache(job, exact=True).restored()
    made = runcache.JobCache(job, exact=True)
    Path(job.output[0]).write_text("task,score,run_id\nemb_pair,0.75,run-3\n")
    made.store()
    elsewhere = tmp_path / "exp" / "metrics.json"  # the same bytes in another tree: its own rows
    elsewhere.parent.mkdir()
    shutil.copy(metrics, elsewhere)
    assert not runcache.JobCache(
        SimpleNamespace(**{**vars(job), "input": [str(elsewhere)]}), exact=True
    ).restored()


def test_an_upstream_rerun_of_the_same_result_restores_the_job_downstream(tmp_path):
    """Edit, revert: the upstream job runs again (its old result was not stored) and writes the
    same result under a new run id; the downstream job that ran with that result is restored."""
    cache = tmp_path / "cache"
    job = make_job(tmp_path / "w", cache)
    upstream = Path(job.input[0]).with_name("probe.json")
    job.input.append(str(upstream))
    record(upstream, {"policy": "causal", "leaks": False}, "run-1", 12.0)
    assert run(job)[0] is False
    record(upstream, {"policy": "causal", "leaks": False}, "run-2", 14.0)
    assert run(job)[0] is True
    record(upstream, {"policy": "causal", "leaks": True}, "run-3", 14.0)
    assert run(job)[0] is False


def missed(job, capsys) -> list[str]:
    """The run cache's lines of one run of ``job`` that says why it missed."""
    capsys.readouterr()
    run(job)
    return [x for x in capsys.readouterr().out.splitlines() if x.startswith("[run cache] missed:")]


def test_a_miss_names_the_config_value_that_differs_with_both_values(tmp_path, capsys):
    """A miss was silent ("ran in 92 s, stored in the run cache as ..."): the user could not
    tell an edit from a voided cache. The line names the nearest entry of the same job and what
    differs; the first run of a job (no entry of it) says nothing."""
    cache = tmp_path / "cache"
    assert missed(make_job(tmp_path / "w", cache), capsys) == []
    (line,) = missed(make_job(tmp_path / "w", cache, lr=5e-4), capsys)
    assert "differs in params finetune.lr 0.001 -> 0.0005" in line, line
    assert line.endswith("0.0005"), line  # nothing else differs
    other = make_job(tmp_path / "w", cache)
    other.wildcards = {"variant": "3B"}  # another job of the rule: not its entry
    assert missed(other, capsys) == []


def test_a_miss_names_the_input_the_code_file_and_the_package_that_differ(
    tmp_path, capsys, monkeypatch
):
    cache = tmp_path / "cache"
    run(make_job(tmp_path / "w", cache))
    (line,) = missed(make_job(tmp_path / "w", cache, data="other\n"), capsys)
    assert f"differs in input {tmp_path / 'w' / 'in' / 'data.txt'}" in line, line
    scripts = tmp_path / "scripts"
    shutil.copytree(REPO / "workflow" / "scripts", scripts)
    (scripts / "finetune.py").write_text("# edited\n", encoding="utf-8")
    job = make_job(tmp_path / "w", cache)
    job.scriptdir = str(scripts)
    (line,) = missed(job, capsys)
    assert line.endswith("differs in code scripts/finetune.py"), line
    versions = provenance.runtime_packages()
    monkeypatch.setattr(runcache, "runtime_packages", lambda: {**versions, "torch": "0.0"})
    (line,) = missed(make_job(tmp_path / "w", cache), capsys)
    assert f'package torch "{versions["torch"]}" -> "0.0"' in line, line


def test_a_json_input_nested_too_deep_is_keyed_by_its_bytes(tmp_path):
    """A declared JSON input 600 deep parsed, then its result content (a recursion per level)
    raised RecursionError: the job's key could not be taken and the job said `not stored` on
    every run. Deeper than io.MAX_JSON_DEPTH it is no record: keyed by its bytes."""
    deep = tmp_path / "deep.json"
    deep.write_text('{"a":' * 600 + "1" + "}" * 600)
    assert runcache.input_fingerprint(deep) == sha256_file(deep)
