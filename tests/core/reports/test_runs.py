"""`ablate runs` (ablate.core.reports.runs) on small results trees written here: the key two trees
differ in, each study's headline numbers and claim verdicts, where and when a tree ran, a tree
another configuration also wrote into (mixed) as the table shows it, the run cache's entries per job, the CLI's output
files. No pipeline run; about two seconds together (the configuration tests load the default
config)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from helpers import DEEP_JSON
from tree_records import EVAL, EVAL_SLICE, by_tree, record, table

from ablate import cli, studies
from ablate.bridge import layout as bridge_layout
from ablate.core.jobs import JOB_LINE, RESTORED_LINE
from ablate.core.outputs.io import write_json
from ablate.core.reports import runs
from ablate.core.reruns.runcache import MANIFEST
from ablate.mask import layout as mask_layout

ROOT = Path(__file__).resolve().parents[3]


def test_two_trees_differing_in_one_key(tmp_path):
    record(tmp_path / "results", EVAL, EVAL_SLICE)
    record(tmp_path / "results/seed1", EVAL, {**EVAL_SLICE, "seed": 1}, host="gpu1")
    record(tmp_path / "results/seed1", "eval/3A/causal/metrics.json", EVAL_SLICE, host="gpu1")
    rows = by_tree(runs.table_rows(tmp_path))
    assert list(rows) == ["results", "results/seed1"]  # the nested tree is its own
    assert rows["results"]["records"] == ["1"]
    assert rows["results"]["differs from base"] == ["(base)"]
    assert rows["results/seed1"]["differs from base"] == [
        "eval/base/causal: seed 0 -> 1",
        "1 records not in base",
    ]
    assert rows["results/seed1"]["where"] == ["gpu1 (Intel Xeon AVX512): 2"]
    assert rows["results/seed1"]["commits"] == ["abcdef0123: 2"]
    # a GPU job names its GPUs (names, or the {"name": ...} form), not the host's CPU
    record(tmp_path / "results", "finetune/3A/summary.json", {}, gpus=["H100", {"name": "H100"}])
    rows = by_tree(runs.table_rows(tmp_path))
    assert rows["results"]["where"] == ["box (Intel Xeon AVX512): 1", "box (H100): 1"]
    # the other way round, with the seed-1 tree as base
    rows = by_tree(runs.table_rows(tmp_path, base="results/seed1"))
    assert rows["results"]["differs from base"] == [
        "eval/base/causal: seed 1 -> 0",
        "1 records not in base",
        "1 records of base not here",
    ]


def test_headline_numbers_and_claim_verdicts(tmp_path):
    tree = tmp_path / "results"
    record(tree, EVAL, EVAL_SLICE)
    recovery = [
        {"task": "macro", "variant": "base", "eval_policy": "causal", "score": "0.951"},
        {"task": "emb_count", "variant": "base", "eval_policy": "causal", "score": "1.0"},
        {"task": "macro", "variant": "3B", "eval_policy": "prefill_bidir", "score": "0.6364"},
    ]
    table(tree / mask_layout.PATTERNS["recovery_csv"], recovery)
    claims = [
        {"claim": "learned", "verdict": "supported"},
        {"claim": "learned/emb_count", "verdict": "supported"},
        {"claim": "prefix_recovers_more", "verdict": "inconclusive"},
    ]
    table(tree / mask_layout.PATTERNS["claims_csv"], claims)
    summary = [{"entry": "1a", "peak": "0.078125", "final": "0.0625"}]
    table(tree / bridge_layout.PATTERNS["summary"], summary)
    table(tree / bridge_layout.PATTERNS["claims"], [{"claim": "kv", "verdict": "not supported"}])
    (row,) = runs.table_rows(tmp_path)
    assert row["numbers"] == [
        "mask: base under causal 0.951",
        "mask: 3B under prefill_bidir 0.636",
        "bridge: 1a peak 0.078 final 0.062",
    ]
    assert row["claims"] == [
        "mask: 2 supported, 1 inconclusive",
        "  learned: supported",
        "  prefix_recovers_more: inconclusive",
        "bridge: 1 not supported",
        "  kv: not supported",
    ]


def overlay(tmp_path: Path, name: str, content: dict) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content))
    return str(path)


def load(files: list[str], workdir: Path) -> runs.Configuration:
    return runs.Configuration.load(files, workdir)


def test_a_tree_another_configuration_wrote_into_is_mixed(tmp_path):
    tree = tmp_path / "results"
    record(tree, EVAL, EVAL_SLICE)
    # a seed of an overlay (config/seeds3.yaml): no job of the default writes it
    record(tree, "finetune/3A-s6/summary.json", {"seed": 6})
    default = [str(ROOT / "config/config.yaml")]
    (row,) = runs.table_rows(tmp_path, configurations=[load(default, tmp_path)])
    assert row["tree"] == ["results (mixed)"]
    status = row["status"]
    assert status[0].startswith(f"{default[0]}: ") and " to run" in status[0]
    assert status[-1] == (
        f"mixed: 1 records no job of {default[0]} writes: finetune/3A-s6/summary.json"
    )
    # the default's own records alone: not mixed; a second configuration naming the tree is
    (tree / "finetune/3A-s6/summary.json").unlink()
    (row,) = runs.table_rows(tmp_path, configurations=[load(default, tmp_path)])
    assert row["tree"] == ["results"] and not any(s.startswith("mixed") for s in row["status"])
    other = [*default, overlay(tmp_path, "more.yaml", {"mask": {"eval": {"seed": 3}}})]
    (row,) = runs.table_rows(
        tmp_path, configurations=[load(default, tmp_path), load(other, tmp_path)]
    )
    assert row["tree"] == ["results (mixed)"]
    assert f"mixed: written by {default[0]}; {' '.join(other)}" in row["status"]


def cache_entry(cache: Path, key: str, params: dict, when: str, host: str, tree="results"):
    (cache / key).mkdir(parents=True)
    manifest = {
        "key": key,
        "parts": {"rule": "eval_model", "wildcards": {"model": "base"}, "params": params},
        "outputs": [f"{tree}/{EVAL}"],
        "run_id": f"run-{key}",
        "stored_at": when,
        "host": host,
    }
    (cache / key / MANIFEST).write_text(json.dumps(manifest))


def test_run_cache_entries_per_job(tmp_path):
    record(tmp_path / "results", EVAL, EVAL_SLICE)
    cache = tmp_path / "cache"
    cache_entry(cache, "k1", {"seed": 0}, "2026-11-26T09:00:00+0000", "a")
    cache_entry(cache, "k2", {"seed": 1}, "2026-11-26T10:00:00+0000", "b")
    cache_entry(cache, "k3", {"seed": 0}, "2026-11-26T08:00:00+0000", "a", tree="gone")
    (cache / "refused").mkdir()
    rows = runs.cache_rows(cache, tmp_path)
    assert rows == [
        {
            "tree": "gone/eval/base/causal",
            "job": "eval_model model=base",
            "entries": "1",
            "last stored": "2026-11-26T08:00:00+0000 (run run-k3)",
            "hosts": "a",
            "params differ": "",
        },
        {
            "tree": "results",
            "job": "eval_model model=base",
            "entries": "2",
            "last stored": "2026-11-26T10:00:00+0000 (run run-k2)",
            "hosts": "a, b",
            "params differ": "seed 0 -> 1",
        },
    ]


def test_unreadable_run_cache_entries_are_counted_and_named(tmp_path, capsys):
    """An entry whose manifest is missing, not JSON (or nested too deep to parse), or names no
    job was left out of ``ablate runs --cache`` silently (the deep one: a traceback); refused/ and
    a store under way (a hidden folder) are no entries."""
    record(tmp_path / "results", EVAL, EVAL_SLICE)
    cache = tmp_path / "cache"
    cache_entry(cache, "k1", {"seed": 0}, "2026-11-26T09:00:00+0000", "a")
    (cache / "k2").mkdir()  # no manifest
    (cache / "k3").mkdir()
    (cache / "k3" / MANIFEST).write_text("{not json")
    (cache / "k4").mkdir()
    (cache / "k4" / MANIFEST).write_text(json.dumps({"parts": {"rule": "x"}, "outputs": [3]}))
    (cache / "k5").mkdir()
    (cache / "k5" / MANIFEST).write_text(DEEP_JSON)  # a RecursionError traceback before
    (cache / "refused" / "k0-1234").mkdir(parents=True)
    (cache / ".tmp-abc").mkdir()
    assert runs.cache_entries(cache)[1] == ["k2", "k3", "k4", "k5"]
    assert cli.main(["runs", "--root", str(tmp_path), "--cache", str(cache)]) == 0
    captured = capsys.readouterr()
    assert "results: eval_model model=base: 1 entries" in captured.out
    assert captured.err == (
        f"ablate runs: 4 entries of the run cache {cache} left out, with no readable "
        f"{MANIFEST} naming its job: k2, k3, k4, k5 (a job whose key one is runs again and stores "
        "it anew; delete them to clear this line)\n"
    )


def test_command_line(tmp_path, capsys):
    record(tmp_path / "results", EVAL, EVAL_SLICE)
    record(tmp_path / "results/b", EVAL, {**EVAL_SLICE, "dtype": "bfloat16"}, host="b")  # its run
    cache = tmp_path / "cache"
    cache_entry(cache, "k1", {"seed": 0}, "2026-11-26T09:00:00+0000", "a")
    out_csv, out_html = tmp_path / "runs.csv", tmp_path / "runs.html"
    argv = ["runs", "--root", str(tmp_path), "--cache", str(cache)]
    assert cli.main([*argv, "--csv", str(out_csv), "--html", str(out_html)]) == 0
    text = capsys.readouterr().out
    assert (
        "== results/b\n" in text and 'differs from base: eval/base/causal: dtype "float32"' in text
    )
    assert "== run cache\n  results: eval_model model=base: 1 entries" in text
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["tree"] for r in rows] == ["results", "results/b"]
    assert rows[1]["differs from base"] == 'eval/base/causal: dtype "float32" -> "bfloat16"'
    page = out_html.read_text()
    # the experiments' summary (2 trees), the trees (2), the run cache (1 job), each with its head
    assert page.count("<tr>") == 3 + 3 + 2 and "<h2>Run cache</h2>" in page
    # a wrong --base, a missing cache, nothing found: one line each, naming the fix
    assert cli.main(["runs", "--root", str(tmp_path), "--base", "nope"]) == 2
    assert capsys.readouterr().err == (
        "ablate runs: --base nope: no results tree there (one of: results, results/b)\n"
    )
    assert cli.main(["runs", "--root", str(tmp_path), "--cache", str(tmp_path / "x")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert cli.main(["runs", "--root", str(tmp_path / "results/b/logs")]) == 1
    assert "no results tree under" in capsys.readouterr().err


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["runs", "--help"])
    assert exc.value.code == 0 and "--configfile" in capsys.readouterr().out


def test_report_page_shows_this_runs_tree_as_base_and_mixed(tmp_path, monkeypatch):
    """The status rule's runs page: this run's tree is the base, its jobs' status shown, the
    record another configuration wrote there named; a sibling tree's changed key listed."""
    from ablate.core.planner.inputs import load_config
    from ablate.core.reports import status

    monkeypatch.chdir(tmp_path)
    record(Path("results"), EVAL, EVAL_SLICE)
    record(Path("results"), "finetune/3A-s6/summary.json", {"seed": 6})
    record(Path("results/seed1"), EVAL, {**EVAL_SLICE, "seed": 1})
    config = load_config([ROOT / "config/config.yaml"])
    _, rows = status.build(config)
    page = runs.write_page(config, rows, "runs.html").read_text()
    assert "<td>results (mixed)</td>" in page and "<td>(base)</td>" in page
    assert "<td>eval/base/causal: seed 0 -&gt; 1\n1 records of base not here</td>" in page
    assert "this run&#x27;s configuration: " in page
    assert "writes: finetune/3A-s6/summary.json" in page


def test_an_experiment_row_names_its_keys_and_its_deltas_against_the_base(tmp_path, capsys):
    """An experiment's tree (its experiment.json: the keys it changes, which jobs are the
    base's): its row names the keys and the slice they changed, how many jobs are the base's and
    what ran in its tree (its job logs' lines: ran, restored, stopped), each
    score that moved against the base (the macro first, a task's in the details) and each claim
    whose verdict changed; --sort orders by a score, --md writes the table."""
    from ablate.core.trees import experiments

    base, exp = tmp_path / "results", tmp_path / "results/exp/lr"
    record(base, "finetune/3A/summary.json", {"params": {"learning_rate": 2.5e-4}})
    record(exp, "finetune/3A/summary.json", {"params": {"learning_rate": 5.0e-4}}, host="gpu1")
    # what ran in its tree: each job's log with the line its last run said (ablate.job_script)
    for log, said in (
        ("finetune/3A.log", "ran in 40 s"),
        ("eval_model/3A.causal.log", f"{RESTORED_LINE} (key 0123456789ab: run run-7, ...)"),
        ("plan/plan.log", "ran in 1 s"),
        ("recovery_table/recovery.log", None),  # stopped before its end: no line
    ):
        (exp / "logs" / log).parent.mkdir(parents=True, exist_ok=True)
        line = JOB_LINE.format(label="exp_lr_job", text=said) if said else "Traceback ..."
        (exp / "logs" / log).write_text(f"loading\n{line}\n")
    write_json(
        exp / experiments.DEFINITION,
        {
            "name": "lr",
            "base": "results",
            "changes": ["mask.finetune.variants.3A.learning_rate <absent> -> 0.0005"],
            "slices": ["finetune/3A: params.learning_rate 0.00025 -> 0.0005"],
            "shared": ["prepare_model", "finetune/3B"],
            "own": ["finetune/3A", "eval/3A/causal"],
            # made from the base's records as they are (experiments.finished)
            "base_runs": {
                "finetune/3A": {"record": "finetune/3A/summary.json", "run_id": "run-box"},
                "finetune/3B": {"record": "finetune/3B/summary.json", "run_id": None},
            },
        },
    )

    def recovery(tree, score, task):
        rows = [
            {"task": "macro", "variant": "3A", "eval_policy": "prefill_bidir", "score": score},
            {"task": "emb_count", "variant": "3A", "eval_policy": "prefill_bidir", "score": task},
            {"task": "macro", "variant": "base", "eval_policy": "causal", "score": "0.95"},
        ]
        table(tree / mask_layout.PATTERNS["recovery_csv"], rows)

    recovery(base, "0.616", "0.5")
    recovery(exp, "0.657", "0.75")
    table(base / mask_layout.PATTERNS["claims_csv"], [{"claim": "prefix", "verdict": "supported"}])
    # the bridge study's tables are the base's (the change did not reach them): not in its tree
    table(base / bridge_layout.PATTERNS["claims"], [{"claim": "kv", "verdict": "not supported"}])
    table(
        base / bridge_layout.PATTERNS["summary"], [{"entry": "1a", "peak": "0.1", "final": "0.1"}]
    )
    table(
        exp / mask_layout.PATTERNS["claims_csv"], [{"claim": "prefix", "verdict": "inconclusive"}]
    )
    rows = by_tree(runs.table_rows(tmp_path, "results"))
    row = rows["results/exp/lr"]
    assert row["differs from base"] == [
        "mask.finetune.variants.3A.learning_rate <absent> -> 0.0005",
        "finetune/3A: params.learning_rate 0.00025 -> 0.0005",
        "2 jobs are the base's (not run in its tree); 4 of its own ran (1 restored from the run "
        "cache; 1 with no closing line in its log: stopped before its end?)",
    ]
    assert row["vs base"] == [
        "mask: 3A under prefill_bidir +0.041 [CI: no per-sample records] (0.616 -> 0.657)",
        "mask: 3A under prefill_bidir: emb_count +0.250 [CI: no per-sample records] (0.500 -> 0.750)",
    ]
    assert row["headline vs base"] == [
        "mask: 3A under prefill_bidir +0.041 [CI: no per-sample records] (0.616 -> 0.657)"
    ]
    assert row["claims vs base"] == ["mask: prefix supported -> inconclusive"]
    assert "bridge: 1a peak 0.100 final 0.100" in row["numbers"]  # the base's, shared
    ordered = runs.sort_rows(list(rows.values()), "mask: 3A under prefill_bidir")
    assert [r["tree"][0] for r in ordered] == ["results/exp/lr", "results"]
    with pytest.raises(LookupError, match="did you mean 'mask: 3A under prefill_bidir'"):
        runs.sort_rows(list(rows.values()), "mask: 3A under prefil_bidir")
    md = tmp_path / "runs.md"
    argv = ["runs", "--root", str(tmp_path), "--md", str(md), "--sort", "last run"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("| tree | differs from base | vs base | claims vs base | last run |")
    line = next(x for x in out.splitlines() if x.startswith("| results/exp/lr |"))
    assert (
        "learning_rate <absent> -> 0.0005" in line and "+0.041 [CI: no per-sample records]" in line
    )
    assert "emb_count" not in line  # a task's delta is in the details, not the summary
    assert md.read_text().startswith("| tree | differs from base |")


def test_earlier_runs_in_history_that_differ_are_listed(tmp_path):
    """A record an edit in place replaced (kept in history/ beside it) is an earlier run: listed
    with the key it differs in from the record there now, or the upstream run that made it differ,
    and its macro; a rerun of the same configuration is not."""
    tree = tmp_path / "results"
    ft, ev = "finetune/3A/summary.json", "eval/3A/causal/metrics.json"

    def rec(path, run_id, config, score=None, upstream=None):
        (tree / "logs").mkdir(parents=True, exist_ok=True)
        prov = {"run_id": run_id, "config_hash": "h", "config": config, "finished_at": "t"}
        if upstream:
            prov["upstream"] = {f"results/{k}": v for k, v in upstream.items()}
        # a finetune's record holds results too (its steps, losses): it is a job's record
        body = {"provenance": prov, **({"macro": {"score": score}} if score else {"steps_done": 1})}
        write_json(tree / path, body)

    rec(ft, "ft-1", {"params": {"max_steps": 200}})
    rec(ev, "ev-1", {"tasks": ["a"]}, 0.9, {ft: "ft-1"})
    rec(ft, "ft-2", {"params": {"max_steps": 40}})
    rec(ev, "ev-2", {"tasks": ["a"]}, 0.8, {ft: "ft-2"})
    rec(ev, "ev-3", {"tasks": ["a"]}, 0.8, {ft: "ft-2"})  # a rerun of the same: not listed
    got = {(h["record"], h["run"]): h for h in runs.history_rows(tmp_path)}
    assert set(got) == {(ft, "ft-1"), (ev, "ev-1")}
    assert got[(ft, "ft-1")]["differs from now"] == "params.max_steps 200 -> 40"
    assert got[(ev, "ev-1")]["differs from now"] == (
        "upstream results/finetune/3A/summary.json: run ft-1 -> ft-2 (params.max_steps 200 -> 40)"
    )
    assert got[(ev, "ev-1")]["numbers"] == "macro 0.900 (now 0.800)"


def test_an_experiments_deltas_are_withheld_where_its_base_was_stale(tmp_path, monkeypatch):
    """An experiment made while the base's counterpart of one of its own jobs was stale (the
    base's config edited, the base not re-run: its 3A of 41 steps, the config's 200) would
    compare its 3A with a base 3A of another config, the delta mixing in the base's edit:
    `ablate runs` withholds it, naming the job and the key, until the base is run and the
    experiment made again. A stale base job the experiment shares (its 3B) withholds nothing:
    its run brings that job up to date first."""
    import copy

    from ablate.core.config import validate_config
    from ablate.core.trees import experiments

    monkeypatch.chdir(tmp_path)
    cfg = copy.deepcopy(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    cfg["experiments"] = {
        "lr": {"mask": {"finetune": {"variants": {"3A": {"learning_rate": 5e-4}}}}}
    }
    validate_config(cfg)
    (plan,) = experiments.plans(cfg)
    base, exp = Path("results"), Path("results/exp/lr")
    made_with = {j.name: j.config for j in studies.side("mask", "layout").jobs(cfg)}
    edited = copy.deepcopy(made_with["finetune/3A"])
    edited["params"]["max_steps"] = 41
    record(base, "finetune/3A/summary.json", edited)
    record(base, "finetune/3B/summary.json", {})  # stale too, but shared
    record(exp, "finetune/3A/summary.json", {})
    for tree, score in ((base, "0.616"), (exp, "0.657")):
        row = {"task": "macro", "variant": "3A", "eval_policy": "prefill_bidir", "score": score}
        table(tree / mask_layout.PATTERNS["recovery_csv"], [row])
    experiments.record([plan])
    own = [p for j in plan.jobs if not j.labels.get("shared") for p in j.outputs.values()]
    experiments.finished([plan], own)
    row = by_tree(runs.table_rows(".", "results"))["results/exp/lr"]
    assert (
        row["vs base"]
        == row["headline vs base"]
        == [
            "deltas withheld: the base's finetune/3A (mask.finetune.variants.3A.max_steps 41 -> 200 "
            "(now set by mask.finetune.defaults.max_steps)) was stale when this experiment was made "
            "from it (its record is of another config than the base's); run the base (snakemake), "
            "then re-run it: `ablate exp run lr --set mask.finetune.variants.3A.learning_rate=0.0005`"
        ]
    )

    record(base, "finetune/3A/summary.json", made_with["finetune/3A"], host="gpu2")  # base run
    experiments.finished([plan], own)  # the experiment made again
    row = by_tree(runs.table_rows(".", "results"))["results/exp/lr"]
    assert row["vs base"] == [
        "mask: 3A under prefill_bidir +0.041 [CI: no per-sample records] (0.616 -> 0.657)"
    ]


def test_an_experiments_deltas_are_withheld_once_its_base_changed(tmp_path, monkeypatch):
    """An experiment's deltas compare it with the base it was made from: a run that brings it up
    to date records the base's records (each base job's run id, experiment.json's base_runs);
    once a base record differs (a base job re-run under an edit, as the review's 3A
    max_steps: 150), `ablate runs` shows one line naming the job and the runs instead of the
    deltas, and the command that makes the experiment again. A run that did not make the
    experiment's results again (a base job alone) records nothing; a changed definition
    drops the record."""
    import copy

    from ablate.core.config import validate_config
    from ablate.core.trees import experiments

    monkeypatch.chdir(tmp_path)
    cfg = copy.deepcopy(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    lr = {"mask": {"finetune": {"variants": {"3A": {"learning_rate": 5.0e-4}}}}}
    cfg["experiments"] = {"lr": lr}
    validate_config(cfg)
    (plan,) = experiments.plans(cfg)
    base, exp = Path("results"), Path("results/exp/lr")
    made_with = {j.name: j.config for j in studies.side("mask", "layout").jobs(cfg)}
    # shared: the experiment's 3B is the base's; the base's 3A, the counterpart of its own 3A;
    # both of the base's config (not stale)
    record(base, "finetune/3B/summary.json", made_with["finetune/3B"])
    record(base, "finetune/3A/summary.json", made_with["finetune/3A"])
    record(exp, "finetune/3A/summary.json", {})
    for tree, score in ((base, "0.616"), (exp, "0.657")):
        row = {"task": "macro", "variant": "3A", "eval_policy": "prefill_bidir", "score": score}
        table(tree / mask_layout.PATTERNS["recovery_csv"], [row])
    own = [p for j in plan.jobs if not j.labels.get("shared") for p in j.outputs.values()]
    experiments.record([plan])  # the run's start
    experiments.finished([plan], own[1:])  # not all of its outputs: nothing recorded
    assert experiments.BASE_RUNS not in json.loads((exp / experiments.DEFINITION).read_text())
    again = "re-run it: `ablate exp run lr --set mask.finetune.variants.3A.learning_rate=0.0005`"
    vs_base = by_tree(runs.table_rows(".", "results"))["results/exp/lr"]["vs base"]
    assert vs_base == [
        "deltas withheld: no finished run of this experiment records which base records it was "
        f"made with; {again}"
    ]

    experiments.finished([plan], own)  # the run's end, the experiment up to date
    made = json.loads((exp / experiments.DEFINITION).read_text())[experiments.BASE_RUNS]
    assert made["finetune/3B"] == {"record": "finetune/3B/summary.json", "run_id": "run-box"}
    assert made["eval/3B/causal"] == {"record": "eval/3B/causal/metrics.json", "run_id": None}
    row = by_tree(runs.table_rows(".", "results"))["results/exp/lr"]
    assert row["vs base"] == [
        "mask: 3A under prefill_bidir +0.041 [CI: no per-sample records] (0.616 -> 0.657)"
    ]
    experiments.record([plan])  # the next run's start, the same definition: kept
    assert by_tree(runs.table_rows(".", "results"))["results/exp/lr"]["vs base"] == row["vs base"]

    record(base, "finetune/3B/summary.json", {"max_steps": 150}, host="gpu2")  # re-run
    row = by_tree(runs.table_rows(".", "results"))["results/exp/lr"]
    withheld = (
        "deltas withheld: the base's finetune/3B (run run-box -> run-gpu2) changed since this "
        f"experiment was made from it; {again}"
    )
    assert row["vs base"] == row["headline vs base"] == [withheld]
    assert row["claims vs base"] == ["withheld (see vs base)"]
    assert f" | {withheld} | withheld (see vs base) | " in runs.summary_table([row])

    cfg["experiments"] = {"lr": {"mask": {"finetune": {"defaults": {"max_steps": 7}}}}}
    (other,) = experiments.plans(cfg)
    experiments.record([other])  # another definition under the name: its record is not its own
    assert experiments.BASE_RUNS not in json.loads((exp / experiments.DEFINITION).read_text())
    # a base of other config files: the command that makes it again names them (not the overlay)
    Path("real.yaml").write_text("results: results\n")
    Path("lr.yaml").write_text(yaml.safe_dump({"experiments": {"lr": lr}}))
    experiments.record([plan], [str(tmp_path / "real.yaml"), "lr.yaml"])  # as Snakemake gives
    definition = json.loads((exp / experiments.DEFINITION).read_text())
    assert definition["configfiles"] == ["real.yaml"]
    assert experiments.rerun_command(definition) == (
        "ablate exp run lr --set mask.finetune.variants.3A.learning_rate=0.0005 "
        "--configfile real.yaml"
    )


def test_trees_of_the_same_runs_are_one_row_naming_each(tmp_path, capsys):
    """Trees that hold the same records, each of the same run (an experiment whose runs a sweep
    point of the same value restored from the run cache, a copy), are one row naming them all;
    a tree one of whose records is another run is its own row."""
    for name, host in (("a", "gpu1"), ("b", "gpu1"), ("c", "gpu2")):
        record(tmp_path / "results/exp" / name, EVAL, EVAL_SLICE)
        record(tmp_path / "results/exp" / name, "finetune/3A/summary.json", {}, host=host)
    record(tmp_path / "results", EVAL, EVAL_SLICE, host="base")
    rows = runs.table_rows(tmp_path)
    assert [r["tree"] for r in rows] == [
        ["results"],
        ["results/exp/a", "results/exp/b (the same runs)"],
        ["results/exp/c"],
    ]
    assert cli.main(["runs", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| results/exp/a; results/exp/b (the same runs) |" in out
    assert "== results/exp/a; results/exp/b (the same runs)\n" in out
    # named as the base, the later tree of a pair heads its row
    assert runs.table_rows(tmp_path, "results/exp/b")[1]["tree"] == [
        "results/exp/b",
        "results/exp/a (the same runs)",
    ]
