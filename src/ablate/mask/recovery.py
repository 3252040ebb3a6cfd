"""The recovery table: every evaluation of the study in one long-format frame.

Each row is compared with the base model under causal (stage 1) and under the ablated policy
(stage 2); columns and when each is empty: docs/guide.md. ``protocol`` and ``sft_format`` name how
a number was made, so numbers of two protocols are never compared unknowingly."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.core.config import finite_float
from ablate.core.outputs import io
from ablate.core.reports import stats
from ablate.mask import items

#: Column order of the table (the contract with the report and the tests; README.md).
COLUMNS = """
task stage variant train_policy sft_format eval_policy metric protocol score stderr n chance
delta_vs_stage1 delta_vs_stage1_ci_low delta_vs_stage1_ci_high p_vs_stage1 retention_vs_stage1
gain_vs_stage2 gain_vs_stage2_ci_low gain_vs_stage2_ci_high p_vs_stage2 recovered_fraction
within_noise test note run_id train_run_id metrics_file samples_file
""".split()
#: Inserted after ``variant`` when a variant has seeds (a study without keeps :data:`COLUMNS`).
SEED_COLUMNS = ["base_variant", "seed"]
MACRO = "macro"
#: ``train_policy`` of the base model rows: it was not finetuned by the study.
NO_TRAINING = "none"
_REFERENCE_STAGES = (1, 2)


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


def _rows(entry: dict[str, Any]) -> tuple[list[dict[str, Any]], pd.Series | None]:
    for key in ("stage", "variant"):
        if key not in entry:
            raise RecoveryError(f"recovery entry {entry!r} lacks the key {key!r}")
    metrics, source = _load_metrics(entry)
    where = source or f"metrics of variant {entry['variant']!r}"
    for key in ("run_id", "policy", "tasks", "macro"):
        if key not in metrics:
            raise RecoveryError(f"{where} lacks the key {key!r} (see docs/design.md)")
    samples = entry.get("samples")
    common = dict(
        stage=int(entry["stage"]),
        variant=str(entry["variant"]),
        train_policy=str(entry.get("train_policy") or NO_TRAINING),
        eval_policy=str(metrics["policy"]),
        protocol=((metrics.get("provenance") or {}).get("config") or {}).get("protocol"),
        sft_format=entry.get("sft_format"),
        run_id=str(metrics["run_id"]),
        train_run_id=entry.get("train_run_id"),
        metrics_file=source,
        samples_file=str(samples) if isinstance(samples, (str, Path)) else None,
    )
    if entry.get("seed") is not None:
        common.update(base_variant=str(entry["base"]), seed=int(entry["seed"]))
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
    correct = None  # per-item correctness where the entry names its samples (path or frame)
    if samples is not None:
        name = str(samples) if isinstance(samples, (str, Path)) else f"the samples of {where}"
        try:
            correct = items.correctness(metrics, items.load(samples), name)
        except items.ItemsError as exc:
            raise RecoveryError(str(exc)) from exc
    macro = metrics["macro"]
    ns = [r["n"] for r in rows]
    rows.append(
        dict(
            common,
            task=MACRO,
            metric="mean_headline",
            score=float(macro["score"]),
            stderr=_macro_stderr(rows, correct),
            n=sum(ns) if all(n is not None for n in ns) else None,
            chance=macro.get("chance"),
        )
    )
    return rows, correct


def _macro_stderr(task_rows: list[dict[str, Any]], correct: pd.Series | None) -> float | None:
    """Stderr of the mean over tasks (tasks hold different items: independent errors)."""
    ses = [r["stderr"] for r in task_rows]
    if correct is not None and any(se is None for se in ses):
        by_task = correct.groupby(level=0)
        ses = list((by_task.std(ddof=1) / by_task.count() ** 0.5).fillna(0.0))
    if not ses or any(se is None for se in ses):
        return None
    return math.sqrt(sum(float(se) ** 2 for se in ses)) / len(ses)


def _compare(task: str, ref, row, ref_items, row_items, alpha: float) -> stats.Paired:
    """``row``'s score against ``ref``'s on ``task``: paired per item, else by stderrs."""
    if ref_items is not None and row_items is not None:
        sel = (lambda s: s) if task == MACRO else (lambda s: s.loc[[task]])
        a, b = sel(ref_items), sel(row_items)
        try:
            return stats.paired(
                a.to_numpy(),
                b.to_numpy(),
                ids_a=list(a.index),
                ids_b=list(b.index),
                strata=list(a.index.get_level_values(0)),
                alpha=alpha,
            )
        except ValueError as exc:
            raise RecoveryError(
                f"{row['variant']} under {row['eval_policy']}, task {task}: {exc}"
            ) from exc

    def se(r):
        return None if pd.isna(r["stderr"]) else float(r["stderr"])

    n = None if pd.isna(row["n"]) else int(row["n"])
    return stats.from_stderr(ref["score"], se(ref), row["score"], se(row), n=n or 0, alpha=alpha)


def build_recovery(entries: Iterable[dict[str, Any]], *, alpha: float = 0.05) -> pd.DataFrame:
    """The long-format table from evaluation entries (:func:`entries_from_results`): exactly
    one stage-1 and one stage-2 entry, which every row is compared to."""
    rows, correct = [], {}
    for entry in entries:
        entry_rows, entry_items = _rows(entry)
        rows += entry_rows
        key = (entry_rows[0]["stage"], entry_rows[0]["variant"], entry_rows[0]["eval_policy"])
        correct[key] = entry_items
    if not rows:
        raise RecoveryError("no evaluation entries: nothing to tabulate")
    df = pd.DataFrame(rows)
    refs, ref_keys = {}, {}
    for stage in _REFERENCE_STAGES:
        ref = df[df["stage"] == stage]
        variants = ref[["variant", "eval_policy"]].drop_duplicates()
        if len(variants) != 1:
            raise RecoveryError(
                f"the table needs exactly one stage-{stage} evaluation (base model under "
                f"{'causal' if stage == 1 else 'the ablated policy'}); got {len(variants)}"
            )
        refs[stage] = ref.set_index("task")
        ref_keys[stage] = (stage, *variants.iloc[0])
    missing = df.loc[~df["task"].isin(refs[1].index) | ~df["task"].isin(refs[2].index), "task"]
    if len(missing):
        raise RecoveryError(
            f"task(s) {', '.join(map(str, missing.unique()))} have no stage-1/stage-2 reference score"
        )
    items1, items2 = correct[ref_keys[1]], correct[ref_keys[2]]
    drops = {  # stage 2 vs stage 1 per task: whether there is anything to recover
        t: _compare(t, refs[1].loc[t], refs[2].loc[t], items1, items2, alpha) for t in refs[2].index
    }
    derived = [
        _derived(r, refs, ref_keys, correct, drops[r["task"]], alpha) for _, r in df.iterrows()
    ]
    df = pd.concat([df, pd.DataFrame(derived, index=df.index)], axis=1)
    df["n"] = df["n"].astype("Int64")
    if "seed" in df:  # the rows without a seed (the base model, an unseeded variant): their own
        df["seed"] = df["seed"].astype("Int64")
        df["base_variant"] = df["base_variant"].fillna(df["variant"])
    for col in ("stderr", "chance"):
        df[col] = df[col].astype("float64")
    df["within_noise"] = df["within_noise"].astype("boolean")
    # Macro last within each evaluation, evaluations in stage order: stable output for diffs.
    df["_macro"] = df["task"] == MACRO
    df = df.sort_values(["stage", "variant", "eval_policy", "_macro", "task"])
    return df[columns(df)].reset_index(drop=True)


def columns(df: pd.DataFrame) -> list[str]:
    """:data:`COLUMNS`, with :data:`SEED_COLUMNS` after ``variant`` where a row has a seed."""
    if "seed" not in df:
        return COLUMNS
    at = COLUMNS.index("variant") + 1
    return [*COLUMNS[:at], *SEED_COLUMNS, *COLUMNS[at:]]


def _derived(row, refs, ref_keys, correct, drop: stats.Paired, alpha: float) -> dict[str, Any]:
    """The comparisons of one row with stage 1 and stage 2 of its task (see the module doc)."""
    nan = math.nan
    ablated = ref_keys[2][2]
    task, key = row["task"], (row["stage"], row["variant"], row["eval_policy"])
    s1, s2 = refs[1].loc[task], refs[2].loc[task]
    items1, items2, mine = correct[ref_keys[1]], correct[ref_keys[2]], correct[key]
    is_ref1, is_ref2 = key == ref_keys[1], key == ref_keys[2]
    under_ablation = row["eval_policy"] == ablated
    out: dict[str, Any] = dict(test=None, note=None, within_noise=None)

    v1 = None if is_ref1 else _compare(task, s1, row, items1, mine, alpha)
    with_v2 = (under_ablation or is_ref1) and not is_ref2
    v2 = _compare(task, s2, row, items2, mine, alpha) if with_v2 else None
    # a reference row's difference from itself is 0 by definition, with no test
    for name, p, v, ref, itself in (
        ("delta_vs_stage1", "p_vs_stage1", v1, s1, is_ref1),
        ("gain_vs_stage2", "p_vs_stage2", v2, s2, is_ref2),
    ):
        defined = itself or v is not None
        out[name] = stats.clean(row["score"] - ref["score"]) if defined else nan
        out[f"{name}_ci_low"] = v.ci_low if v else nan
        out[f"{name}_ci_high"] = v.ci_high if v else nan
        out[p] = v.p_value if v else nan
        out["test"] = out["test"] or (v.test if v else None)
    out["retention_vs_stage1"] = row["score"] / s1["score"] if s1["score"] != 0 else nan

    # the row's own comparison: recovery for a finetune under the ablation, else drop/side effect
    own = v2 if under_ablation and not (is_ref1 or is_ref2) else v1
    if own is not None and not math.isnan(own.p_value):
        out["within_noise"] = not own.significant

    lost = stats.clean(s1["score"] - s2["score"])
    frac = nan
    if not under_ablation and not is_ref1:
        out["note"] = f"evaluated under causal: recovery is measured under {ablated}"
    elif lost <= 0 or not drop.significant:
        what = "did not lower" if lost <= 0 else "lowered, within noise,"
        out["note"] = f"the ablation {what} this task ({drop.line()}): nothing to recover"
    elif is_ref1 or is_ref2:
        frac = 1.0 if is_ref1 else 0.0
    else:
        frac = stats.clean(row["score"] - s2["score"]) / lost
    out["recovered_fraction"] = frac
    return out


def entries_from_results(
    metrics_files: Iterable[str | Path],
    labels: dict[str, dict[str, Any]],
    summaries: Iterable[str | Path] = (),
    samples_files: Iterable[str | Path] = (),
) -> list[dict[str, Any]]:
    """Entries for :func:`build_recovery` from the pipeline's files and its job list's labels."""
    train_run_ids, sft_formats = {}, {}
    for s in summaries:
        prov = json.loads(Path(s).read_text()).get("provenance") or {}
        train_run_ids[Path(s).parent.name] = prov.get("run_id")
        params = (prov.get("config") or {}).get("params") or {}
        sft_formats[Path(s).parent.name] = params.get("sft_format")
    samples = {Path(f).parent: str(f) for f in samples_files}
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
                sft_format=sft_formats.get(label["variant"]),
                metrics=str(path),
                samples=samples.get(Path(path).parent),
                **{k: label[k] for k in ("base", "seed") if k in label},
            )
        )
    return entries


def protocol_line(
    protocols: Iterable[str | None], metrics: Iterable[str], sft_formats: Iterable[str | None]
) -> str:
    """One sentence naming how the table's numbers were made, for the claims and the report."""

    def names(values) -> str:
        return ", ".join(sorted({"unrecorded" if v is None or v != v else str(v) for v in values}))

    formats = list(sft_formats)
    text = f"Scoring protocol: {names(protocols)} (headline metrics: {names(metrics)})"
    if formats:
        text += f"; SFT format of the finetunes: {names(formats)}"
    return text + ". docs/differences.md says how each differs from the original study's."


#: Floats of recovery.csv: 6 significant digits (0.953, not 0.9530000000000001; p-values keep
#: their exponent); recovery.parquet keeps the exact float64 values.
_CSV_FLOAT_FORMAT = "%.6g"


def write_recovery(
    df: pd.DataFrame,
    csv: str | Path,
    parquet: str | Path | None = None,
    tex: str | Path | None = None,
) -> None:
    io.write_frame(csv, df, float_format=_CSV_FLOAT_FORMAT)
    if parquet is not None:
        io.write_frame(parquet, df)
    if tex is not None:
        io.write_text(tex, to_latex(df, str(csv)))


def to_latex(df: pd.DataFrame, source: str) -> str:
    """The macro rows as a paper's booktabs table, their sources and the protocol line."""
    from ablate.core.reports.latex import booktabs

    def num(v, fmt: str = "{:.3f}") -> str:
        return "" if v is None or pd.isna(v) else fmt.format(v)

    macro = df[df["task"] == MACRO]
    seeded = "seed" in macro and macro["seed"].notna().any()
    rows = []
    for _, r in macro.iterrows():
        ci = f" [{num(r['delta_vs_stage1_ci_low'], '{:+.3f}')}, {num(r['delta_vs_stage1_ci_high'], '{:+.3f}')}]"
        rows.append(
            {
                **({"Model": str(r["model"])} if "model" in macro else {}),
                "Stage": str(r["stage"]),
                "Variant": str(r["variant"]),
                **({"Seed": num(r["seed"], "{:.0f}")} if seeded else {}),
                "Evaluated under": str(r["eval_policy"]),
                "Score": f"{num(r['score'])} ± {num(r['stderr'])}",
                "vs stage 1 [95% CI]": num(r["delta_vs_stage1"], "{:+.3f}")
                + (ci if pd.notna(r["delta_vs_stage1_ci_low"]) else ""),
                "Recovered": num(r["recovered_fraction"], "{:.2f}"),
            }
        )
    sources = [f"{r['metrics_file']} (run {r['run_id']})" for _, r in macro.iterrows()]
    tasks = df[df["task"] != MACRO]
    line = protocol_line(tasks["protocol"], tasks["metric"], tasks["sft_format"].dropna())
    return booktabs(pd.DataFrame(rows), source, sources) + f"% {line}\n"


def summary_lines(df: pd.DataFrame) -> list[str]:
    """One human-readable line per evaluation (its macro row), for logs."""
    lines = []
    for _, r in df[df["task"] == MACRO].iterrows():
        frac = r["recovered_fraction"]
        frac_s = "n/a" if frac is None or math.isnan(frac) else f"{frac:+.2f}"
        noise = " (within noise)" if pd.notna(r["within_noise"]) and r["within_noise"] else ""
        lines.append(
            (f"{r['model']}: " if "model" in r else "")
            + f"stage {r['stage']} {r['variant']:>8} eval={r['eval_policy']:<13} "
            f"macro={r['score']:.4f} (chance {r['chance']:.3f}) "
            f"vs S1 {r['delta_vs_stage1']:+.4f} "
            f"{stats.p_text(r['p_vs_stage1'], stats.p_floor(r['test']))} "
            f"recovered={frac_s}{noise}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ablate recovery", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--entries",
        required=True,
        help="JSON list of {stage, variant, train_policy, metrics[, samples, train_run_id]}",
    )
    ap.add_argument(
        "--alpha", type=finite_float, default=0.05, help="significance level of the tests"
    )
    ap.add_argument("--csv", required=True, help="output CSV")
    ap.add_argument("--parquet", help="optional parquet copy")
    args = ap.parse_args(argv)
    entries = json.loads(Path(args.entries).read_text())
    df = build_recovery(entries, alpha=args.alpha)
    write_recovery(df, args.csv, args.parquet)
    print("\n".join(summary_lines(df)))
    return 0
