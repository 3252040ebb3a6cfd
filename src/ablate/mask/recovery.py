"""The recovery table: every evaluation of the study in one long-format frame.

One row per (task incl. ``macro``, stage, variant, eval policy). Scores are compared with the
two reference evaluations of the base model, matched per task:

- stage 1: base model under ``causal`` (what the model can do),
- stage 2: base model under the ablated policy (what the ablation costs),

so ``retention_vs_stage1 = score / stage1``, ``gain_vs_stage2 = score - stage2`` and
``recovered_fraction = (score - stage2) / (stage1 - stage2)`` (NaN where stage 1 equals stage 2:
nothing was lost, so nothing can be recovered). Each row carries the ``run_id`` of the
metrics.json it came from, the join key back to that file's provenance block.

CLI: ``ablate recovery --entries entries.json --csv results/recovery.csv [--parquet ...]``
where ``entries.json`` is a list of ``{stage, variant, train_policy, metrics}`` objects.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

#: Column order of the table (the contract with the report and the tests).
COLUMNS = [
    "task",
    "stage",
    "variant",
    "train_policy",
    "eval_policy",
    "metric",
    "score",
    "stderr",
    "n",
    "chance",
    "delta_vs_stage1",
    "retention_vs_stage1",
    "gain_vs_stage2",
    "recovered_fraction",
    "run_id",
    "train_run_id",
    "metrics_file",
]
MACRO = "macro"
#: ``train_policy`` of the base model rows: it was not finetuned by the study.
NO_TRAINING = "none"
REFERENCE_STAGES = (1, 2)


class RecoveryError(ValueError):
    pass


def _load_metrics(entry: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    metrics = entry.get("metrics")
    if isinstance(metrics, (str, Path)):
        path = Path(metrics)
        if not path.exists():
            raise RecoveryError(f"metrics file {path} does not exist")
        try:
            return json.loads(path.read_text()), str(metrics)
        except json.JSONDecodeError as exc:
            raise RecoveryError(f"metrics file {path} is not valid JSON: {exc}") from exc
    if isinstance(metrics, dict):
        return metrics, entry.get("metrics_file")
    raise RecoveryError(f"entry {entry!r} needs 'metrics': a metrics.json path or its loaded dict")


def _rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    for key in ("stage", "variant"):
        if key not in entry:
            raise RecoveryError(f"recovery entry {entry!r} lacks the key {key!r}")
    metrics, source = _load_metrics(entry)
    where = source or f"metrics of variant {entry['variant']!r}"
    for key in ("run_id", "policy", "tasks", "macro"):
        if key not in metrics:
            raise RecoveryError(f"{where} lacks the key {key!r} (see docs/design.md)")
    common = dict(
        stage=int(entry["stage"]),
        variant=str(entry["variant"]),
        train_policy=str(entry.get("train_policy") or NO_TRAINING),
        eval_policy=str(metrics["policy"]),
        run_id=str(metrics["run_id"]),
        train_run_id=entry.get("train_run_id"),
        metrics_file=source,
    )
    rows = []
    for task, result in sorted(metrics["tasks"].items()):
        metric = result.get("headline_metric")
        if metric is None or "score" not in result:
            raise RecoveryError(f"{where}: task {task!r} lacks 'headline_metric' or 'score'")
        rows.append(
            dict(
                common,
                task=task,
                metric=metric,
                score=float(result["score"]),
                stderr=result.get(f"{metric}_stderr"),
                n=result.get("n"),
                chance=result.get("chance"),
            )
        )
    macro = metrics["macro"]
    ns = [r["n"] for r in rows]
    rows.append(
        dict(
            common,
            task=MACRO,
            metric="mean_headline",
            score=float(macro["score"]),
            stderr=None,
            n=sum(ns) if all(n is not None for n in ns) else None,
            chance=macro.get("chance"),
        )
    )
    return rows


def build_recovery(entries: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The long-format recovery table from evaluation entries.

    Each entry: ``stage`` (1 = base causal, 2 = base ablated, 4 = a stage-3 finetune, 5 = a
    stage-5 finetune), ``variant`` (``base`` or the finetune variant), ``train_policy`` (None for
    the base model), ``metrics`` (a metrics.json path or its loaded dict) and optionally
    ``train_run_id`` (the run_id of the finetune that produced the evaluated checkpoint).
    Exactly one stage-1 and one stage-2 entry are required: every other row is compared to them.
    """
    rows = [row for entry in entries for row in _rows(entry)]
    if not rows:
        raise RecoveryError("no evaluation entries: nothing to tabulate")
    df = pd.DataFrame(rows)
    refs = {}
    for stage in REFERENCE_STAGES:
        ref = df[df["stage"] == stage]
        variants = ref[["variant", "eval_policy"]].drop_duplicates()
        if len(variants) != 1:
            raise RecoveryError(
                f"the table needs exactly one stage-{stage} evaluation (base model under "
                f"{'causal' if stage == 1 else 'the ablated policy'}); got {len(variants)}"
            )
        refs[stage] = ref.set_index("task")["score"]
    stage1 = df["task"].map(refs[1])
    stage2 = df["task"].map(refs[2])
    missing = df.loc[stage1.isna() | stage2.isna(), "task"].unique()
    if len(missing):
        raise RecoveryError(
            f"task(s) {', '.join(map(str, missing))} have no stage-1/stage-2 reference score"
        )
    df["delta_vs_stage1"] = df["score"] - stage1
    df["retention_vs_stage1"] = (df["score"] / stage1).where(stage1 != 0)
    df["gain_vs_stage2"] = df["score"] - stage2
    lost = stage1 - stage2
    df["recovered_fraction"] = ((df["score"] - stage2) / lost).where(lost != 0)
    df["n"] = df["n"].astype("Int64")
    df["stderr"] = df["stderr"].astype("float64")
    df["chance"] = df["chance"].astype("float64")
    # Macro last within each evaluation, evaluations in stage order: stable output for diffs.
    df["_macro"] = df["task"] == MACRO
    df = df.sort_values(["stage", "variant", "eval_policy", "_macro", "task"])
    return df[COLUMNS].reset_index(drop=True)


def entries_from_results(
    metrics_files: Iterable[str | Path],
    labels: dict[str, dict[str, Any]],
    summaries: Iterable[str | Path] = (),
) -> list[dict[str, Any]]:
    """Entries for :func:`build_recovery` from the pipeline's layout.

    ``metrics_files`` are the evaluations' metrics.json; ``labels`` maps each to its ``stage``,
    ``variant`` and ``train_policy`` (the study's job list: ``ablate.mask.study.recovery_labels``);
    ``summaries`` are ``.../finetune/<variant>/summary.json``, whose run_id becomes
    ``train_run_id``.
    """
    train_run_ids = {}
    for s in summaries:
        data = json.loads(Path(s).read_text())
        train_run_ids[Path(s).parent.name] = (data.get("provenance") or {}).get("run_id")
    entries = []
    for path in metrics_files:
        label = labels.get(str(path))
        if label is None:
            raise RecoveryError(f"{path} is no evaluation of the study's job list")
        entries.append(
            dict(
                stage=label["stage"],
                variant=label["variant"],
                train_policy=label["train_policy"],
                train_run_id=train_run_ids.get(label["variant"]),
                metrics=str(path),
            )
        )
    return entries


def write_recovery(df: pd.DataFrame, csv: str | Path, parquet: str | Path | None = None) -> None:
    Path(csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv, index=False)
    if parquet is not None:
        df.to_parquet(parquet, index=False)


def summary_lines(df: pd.DataFrame) -> list[str]:
    """One human-readable line per evaluation (its macro row), for logs."""
    lines = []
    for _, r in df[df["task"] == MACRO].iterrows():
        frac = r["recovered_fraction"]
        frac_s = "n/a" if frac is None or math.isnan(frac) else f"{frac:+.2f}"
        lines.append(
            f"stage {r['stage']} {r['variant']:>8} eval={r['eval_policy']:<13} "
            f"macro={r['score']:.4f} (chance {r['chance']:.3f}) recovered={frac_s}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ablate recovery", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--entries",
        required=True,
        help="JSON list of {stage, variant, train_policy, metrics[, train_run_id]}",
    )
    ap.add_argument("--csv", required=True, help="output CSV")
    ap.add_argument("--parquet", help="optional parquet copy")
    args = ap.parse_args(argv)
    entries = json.loads(Path(args.entries).read_text())
    df = build_recovery(entries)
    write_recovery(df, args.csv, args.parquet)
    print("\n".join(summary_lines(df)))
    return 0
