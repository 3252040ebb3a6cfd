"""`ablate diff` (ablate.core.trees.diff): what differs between two runs' records, and where a run
id's record is."""

from __future__ import annotations

import json

import pytest

from ablate.core.outputs import provenance


def test_diff_names_a_pinned_mkl_path(tmp_path, monkeypatch, capsys):
    """Two runs on one machine, one with MKL's code path pinned: not "hardware: same"."""
    from ablate.core.trees import diff

    monkeypatch.delenv("MKL_CBWR", raising=False)
    records = []
    for name, cbwr in (("a", None), ("b", "COMPATIBLE")):
        if cbwr:
            monkeypatch.setenv("MKL_CBWR", cbwr)
        prov = provenance.collect(config_slice={"seed": 5}, run_id=f"run-{name}")
        records.append(tmp_path / f"{name}.json")
        records[-1].write_text(json.dumps({"macro": 0.5, "provenance": prov}))
    assert diff.main([*map(str, records)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "hardware: 1 changed" in out
    assert '  numerics.env.MKL_CBWR <absent> -> "COMPATIBLE"' in out


def test_diff_rounds_results_and_keeps_timings_apart(tmp_path):
    """`ablate diff` printed `macro.score 0.954 -> 0.9560000000000001` and the phase timings
    among the results: now 6 significant digits, and the run's own fields in their section."""
    from ablate.core.trees import diff

    records = []
    for name, score, took in (("a", 0.954, 30.55), ("b", 0.9560000000000001, 35.5661234)):
        prov = provenance.collect(config_slice={"seed": 5}, run_id=f"run-{name}")
        records.append(tmp_path / f"{name}.json")
        records[-1].write_text(
            json.dumps({"macro": {"score": score}, "phases": {"total": took}, "provenance": prov})
        )
    lines = diff.diff(*records)
    results = lines.index("results: 1 changed")
    assert lines[results + 1] == "  macro.score 0.954 -> 0.956"
    assert lines[results + 2 :] == ["run (timings): 1 changed", "  phases.total 30.55 -> 35.5661"]


def test_a_run_id_is_found_in_its_record_not_in_the_run_caches_copy(tmp_path):
    """`ablate diff --in DIR RUN_ID` named a run cache entry's manifest (the default cache lives
    in the working directory, .ablate/run-cache) as the run's record: an entry is skipped."""
    from ablate.core.reruns import runcache
    from ablate.core.trees import diff

    record = {"macro": 0.5, "provenance": {"run_id": "run-1", "config_hash": "h", "config": {}}}
    live = tmp_path / "results/eval/metrics.json"
    entry = tmp_path / ".ablate/run-cache/k1"
    for path in (live, entry / runcache.OUTPUTS / "0/metrics.json"):
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(record))
    (entry / runcache.MANIFEST).write_text(json.dumps({"run_id": "run-1"}))
    assert diff.find_record("run-1", [str(tmp_path)]) == live


def test_a_run_id_is_found_in_its_record_not_in_a_json_that_is_none(tmp_path):
    """A JSON object that is no record but holds the run id (a provenance block alone, written
    at the top level) named first hid the run's record: `ablate diff RUN RUN` then refused it as
    no record. A run id is looked for in records alone (``records.record_lacks``)."""
    from ablate.core.trees import diff

    prov = provenance.collect(config_slice={"seed": 5}, run_id="run-1")
    live = tmp_path / "results/eval/metrics.json"
    alone = tmp_path / "a/provenance.json"  # named before the record
    for path, content in (
        (live, {"macro": 0.5, "provenance": prov}),
        (alone, {**BLOCK_ALONE, "run_id": "run-1"}),
    ):
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(content))
    assert diff.find_record("run-1", [str(tmp_path)]) == live


def test_a_json_object_that_is_no_record_is_refused(tmp_path, capsys):
    """Two JSON objects with no provenance (a config, a plan) were diffed as records: "run None,
    config None", every section "same"."""
    from ablate.core.trees import diff

    (tmp_path / "a.json").write_text(json.dumps({"a": 1}))
    prov = provenance.collect(config_slice={"seed": 5}, run_id="run-b")
    (tmp_path / "b.json").write_text(json.dumps({"macro": 0.5, "provenance": prov}))
    assert diff.main([str(tmp_path / "b.json"), str(tmp_path / "a.json")]) == 2
    assert capsys.readouterr().err == (
        f"ablate diff: {tmp_path / 'a.json'} is no job's record (no run_id or config_hash in a "
        f"provenance block): {NEEDS}\n"
    )


#: what ablate diff says a record needs, after what the file lacks
NEEDS = (
    "give a run id or a record a job wrote (its summary.json, metrics.json: its results and a "
    "provenance block with its run_id and config_hash)"
)


#: a provenance block alone at a file's top level, with the ids of a record but nothing else
BLOCK_ALONE = {"run_id": "run-x", "config_hash": "c"}


@pytest.mark.parametrize(
    "record, lacks",
    [({"provenance": {"run_id": "run-x"}}, "no config_hash in a provenance block"),
     ({"provenance": {"run_id": "run-x", "config_hash": "c"}},
      "no result beside its provenance block"),
     (BLOCK_ALONE, "a provenance block alone, without the git, config, inputs, packages, "
      "hardware and finished_at a job's block holds")],
)  # fmt: skip
def test_a_provenance_block_alone_is_no_record(tmp_path, capsys, record, lacks):
    """A JSON file of a run id alone (``{"provenance": {"run_id": ...}}``: no summary field, no
    config hash) was diffed as a record, every section "same" or a changed key of nothing; so
    was one at the top level (``{"run_id": ..., "config_hash": ...}``), its config hash shown as
    a result. A sidecar a job wrote (``provenance.collect``'s block, at the top level) is one."""
    from ablate.core.trees import diff

    prov = provenance.collect(config_slice={"seed": 5}, run_id="run-b")
    (tmp_path / "b.json").write_text(json.dumps({"macro": 0.5, "provenance": prov}))
    (tmp_path / "x.json").write_text(json.dumps(record))
    assert diff.main([str(tmp_path / "b.json"), str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err == f"ablate diff: {tmp_path / 'x.json'} is no job's record ({lacks}): {NEEDS}\n"
    (tmp_path / "sidecar.json").write_text(json.dumps(prov))
    assert diff.main([str(tmp_path / "sidecar.json"), str(tmp_path / "b.json")]) == 0
