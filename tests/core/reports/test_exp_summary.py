"""What a run of experiments alone ends with (ablate.core.reports.exp_summary): each
experiment's own summary, from small results trees written here."""

from __future__ import annotations

from ablate.core.reports import exp_summary
from ablate.core.trees import experiments as E


def test_the_closing_summary_is_the_experiments_own(tmp_path):
    """An experiment's closing summary: its tree and what ran there, the key it changes, the
    claims of its own tree (not the base's; a study whose tables it did not reach: the base's,
    said so), the verdicts that moved and its headline delta with its paired CI; never "the
    results are under results/". A sweep point of the same runs as another experiment says so,
    with what ran in its own tree."""
    import shutil

    from fake_evals import correct_items, shift
    from tree_records import evaluations, record, table

    from ablate.bridge import layout as bridge_layout
    from ablate.core.jobs import JOB_LINE, RESTORED_LINE
    from ablate.core.outputs.io import write_json
    from ablate.mask import layout as mask_layout

    base, exp = tmp_path / "results", tmp_path / "results/exp/lr"
    ablated = {"a": correct_items(60, 20, seed=3), "b": correct_items(60, 25, seed=4)}
    causal = {"a": correct_items(60, 50, seed=1), "b": correct_items(60, 45, seed=2)}
    record(base, "finetune/3A/summary.json", {})
    ablated_evals = dict.fromkeys([("base", "prefill_bidir"), ("3A", "prefill_bidir")], ablated)
    evaluations(base, {**ablated_evals, ("base", "causal"): causal})
    mine = {"a": shift(ablated["a"], 6, seed=5), "b": ablated["b"]}
    evaluations(exp, {("3A", "prefill_bidir"): mine}, shared=base)
    claims = mask_layout.PATTERNS["claims_csv"]
    table(base / claims, [{"claim": "prefix", "verdict": "supported"}])
    table(exp / claims, [{"claim": "prefix", "verdict": "inconclusive"}])
    table(base / bridge_layout.PATTERNS["claims"], [{"claim": "kv", "verdict": "supported"}])
    change = "mask.finetune.variants.3A.learning_rate 0.001 -> 0.0005"
    definition = {"name": "lr", "base": "results", "changes": [change], "shared": ["x"] * 3}
    write_json(exp / E.DEFINITION, {**definition, "own": [], "base_runs": {}})
    (exp / "logs/finetune").mkdir(parents=True)
    (exp / "logs/finetune/3A.log").write_text(JOB_LINE.format(label="x", text="ran in 4 s"))
    lines = exp_summary.closing_lines("results", ["lr"], tmp_path)
    assert lines[:3] == [
        "Finished experiment lr: its tree is results/exp/lr/ (the base's: results/)",
        "  3 jobs are the base's (not run in its tree); 1 of its own ran",
        f"  changes {change}",
    ]
    assert lines[3:7] == [
        "  claims in its tree: mask: 1 inconclusive",
        "    prefix: inconclusive",
        "  claims: bridge: the base's (its change does not reach them)",
        "  claims vs base: mask: prefix supported -> inconclusive",
    ]
    assert lines[7].startswith("  vs base: mask: 3A under prefill_bidir +0.050 [")
    assert "] (0.375 -> 0.425)" in lines[7] and "no per-sample" not in lines[7]
    assert not any("results are under" in x for x in lines)
    # a sweep point whose runs the run cache restored from lr: lr's row, its own jobs line
    record(exp, "finetune/3A/summary.json", {}, host="gpu1")
    shutil.copytree(exp, exp.parent / "lr2")
    write_json(exp.parent / "lr2" / E.DEFINITION, {**definition, "name": "lr2"})
    restored = JOB_LINE.format(label="x", text=f"{RESTORED_LINE} (key k: run run-gpu1)")
    (exp.parent / "lr2/logs/finetune/3A.log").write_text(restored)
    lines = exp_summary.closing_lines("results", ["lr2"], tmp_path)
    assert lines[1:3] == [
        "  its runs are those of results/exp/lr: its row in ablate runs",
        "  3 jobs are the base's (not run in its tree); 1 of its own ran (1 restored from the run "
        "cache)",
    ]
