"""Records of small results trees written by the trees tests: a job record with its provenance
block, as a run writes one."""

from __future__ import annotations

from pathlib import Path

from ablate.core.outputs.io import write_json

EVAL = "eval/base/causal/metrics.json"
EVAL_SLICE = {"seed": 0, "tasks": ["emb_count"], "dtype": "float32"}


def table(path: Path, rows: list[dict]) -> None:
    """A CSV table (a study's recovery, summary or claims table) of these rows."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def by_tree(rows: list[dict]) -> dict[str, dict]:
    """``ablate runs``' rows by their tree's name."""
    return {r["tree"][0]: r for r in rows}


def record(
    tree: Path, rel: str, config: dict, *, host="box", when="2026-11-26T10:00:00+0000", gpus=()
):
    """A job record with its provenance block (as ablate.core.outputs.provenance.collect writes it);
    ``tree`` becomes a results tree (its logs folder)."""
    (tree / "logs").mkdir(parents=True, exist_ok=True)
    path = tree / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    prov = {
        "run_id": f"run-{host}",
        "config": config,
        "config_hash": "h",
        "finished_at": when,
        "git": {"commit": "abcdef0123456789", "dirty": False},
        "hardware": {
            "hostname": host,
            "cpu_model": "Intel Xeon",
            "torch_cpu_capability": "AVX512",
            **({"gpus": list(gpus)} if gpus else {}),
        },
    }
    write_json(path, {"macro": {"score": 0.9}, "provenance": prov})  # and its history copy


#: the evaluations of :func:`evaluations`: (model, policy) -> (stage, train policy)
STAGES = {
    ("base", "causal"): (1, None),
    ("base", "prefill_bidir"): (2, None),
    ("3A", "prefill_bidir"): (4, "causal"),
}


def evaluations(tree: Path, per_eval: dict, shared: Path | None = None) -> None:
    """The mask study's evaluations of :data:`STAGES` in ``tree`` (each (model, policy) ->
    {task: per-item 0/1 results}: its metrics.json and samples.parquet, tests/fake_evals.py) and
    the recovery table the study's writer makes of them; ``shared``: an experiment's base tree,
    whose evaluations ``per_eval`` leaves out are read from there (as its shared jobs' are)."""
    import fake_evals

    from ablate.mask.layout import PATTERNS
    from ablate.mask.recovery import build_recovery, write_recovery

    (tree / "logs").mkdir(parents=True, exist_ok=True)
    entries = []
    for (model, policy), (stage, trained) in STAGES.items():
        home = tree if (model, policy) in per_eval else shared
        if (model, policy) in per_eval:
            run = f"{tree.name}-{model}-{policy}"
            fake_evals.write(
                tree, model, policy, *fake_evals.evaluation(run, policy, per_eval[(model, policy)])
            )
        folder = home / "eval" / model / policy
        entries.append(
            dict(
                stage=stage,
                variant=model,
                train_policy=trained,
                metrics=str(folder / "metrics.json"),
                samples=str(folder / "samples.parquet"),
            )
        )
    write_recovery(build_recovery(entries), tree / PATTERNS["recovery_csv"])
