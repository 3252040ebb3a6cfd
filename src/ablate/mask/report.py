"""Figures for the Snakemake report: per-task scores by stage with the drop and the recovery, and
training loss curves. Both read only pipeline outputs, so a finished results folder can redraw
them without any model."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes or CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from ablate.mask.recovery import MACRO, protocol_line  # noqa: E402
from ablate.mask.status import score_name  # noqa: E402


def _evaluation_label(stage: int, variant: str, eval_policy: str) -> str:
    return f"S{stage} {variant} | eval {eval_policy}"


def _distinct_colors(n: int) -> list:
    """``n`` colours, no two alike (seeds give more than ten series)."""
    for name in ("tab10", "tab20"):
        if n <= len(palette := plt.get_cmap(name).colors):
            return list(palette[:n])
    return [plt.get_cmap("hsv")(i / n) for i in range(n)]


#: the smallest text a figure draws, in points: the report shows the score plot at about 0.7 of
#: its size (1400 px wide window), where 10 pt at :data:`DPI` is 11 px
MIN_FONT_PT = 10
DPI = 120
#: PNG text chunk: the smallest text's size in image pixels (the report test scales it)
MIN_FONT_KEY = "ablate:min_font_px"
#: PNG text chunk: the scores the bars draw (JSON), so a test reads what the picture shows
SCORES_KEY = "ablate:scores"


def _drawn_scores(df: pd.DataFrame) -> dict[str, float]:
    """The scores the score plot draws as bars, by ablate.mask.status.score_name."""
    return {score_name(r): float(r["score"]) for r in df.to_dict("records") if pd.notna(r["score"])}


def plot_scores(table: pd.DataFrame | str | os.PathLike, out: str | os.PathLike) -> Path:
    """Scores by task beside the drop and each recovery with their intervals (with seeds, a
    third panel), one legend below: wide and short, so the report's first screen shows it."""
    df = pd.read_csv(table) if not isinstance(table, pd.DataFrame) else table
    if df.empty:
        raise ValueError("the recovery table is empty: nothing to plot")
    tasks = sorted(t for t in df["task"].unique() if t != MACRO) + [MACRO]
    evals = list(
        df[["stage", "variant", "eval_policy"]]
        .drop_duplicates()
        .sort_values(["stage", "variant", "eval_policy"])
        .itertuples(index=False)
    )
    width = 0.8 / len(evals)
    seeded = "seed" in df and df["seed"].notna().any()  # a third panel: the spread over seeds
    with plt.rc_context({"font.size": MIN_FONT_PT, "legend.fontsize": MIN_FONT_PT}):
        fig, (ax, dax, *sax) = plt.subplots(
            1,
            3 if seeded else 2,
            figsize=(19 if seeded else 14, 5.2),
            width_ratios=(1.3, 1, 1) if seeded else (1.3, 1),
        )
        colors = dict(zip(evals, _distinct_colors(len(evals))))
        for i, (stage, variant, policy) in enumerate(evals):
            sel = df[(df.stage == stage) & (df.variant == variant) & (df.eval_policy == policy)]
            scores = sel.set_index("task")["score"].reindex(tasks)
            xs = [j + (i - (len(evals) - 1) / 2) * width for j in range(len(tasks))]
            ax.bar(
                xs,
                scores.values,
                width,
                label=_evaluation_label(stage, variant, policy),
                color=colors[(stage, variant, policy)],
                hatch="//" if policy != "causal" else None,
                edgecolor="white",
                linewidth=0.5,
            )
        chance = df.drop_duplicates("task").set_index("task")["chance"].reindex(tasks)
        for j, c in enumerate(chance.values):
            if pd.notna(c):
                ax.hlines(c, j - 0.45, j + 0.45, colors="black", linestyles="dashed", linewidth=1)
        ax.set_xticks(range(len(tasks)), tasks, rotation=20)
        ax.set_ylabel("headline score (dashed: chance)")
        ax.set_ylim(0, 1)
        ax.set_title("Scores by task and stage (hatched: the ablated mask)")
        _plot_differences(dax, df, tasks, colors)
        if seeded:
            _plot_seed_spread(sax[0], df)
        handles, labels = ax.get_legend_handles_labels()
        more = dax.get_legend_handles_labels()
        fig.legend(
            handles + more[0],
            labels + more[1],
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=min(6, len(labels + more[1])),
        )
        if "protocol" in df:  # which scoring and SFT format made these numbers
            finetunes = df.loc[df["stage"] > 2, "sft_format"]
            fig.suptitle(
                protocol_line(df["protocol"], df.loc[df["task"] != MACRO, "metric"], finetunes)
            )
        fig.tight_layout()
        return _save(fig, out, {SCORES_KEY: json.dumps(_drawn_scores(df), sort_keys=True)})


def _plot_seed_spread(ax, df: pd.DataFrame) -> None:
    """Each seed's macro score per seeded variant and policy, a bar at their mean."""
    macro = df[(df["task"] == MACRO) & df["seed"].notna()]
    groups = list(macro.groupby(["stage", "base_variant", "eval_policy"], sort=True))
    for i, (_, sel) in enumerate(groups):
        ax.scatter([i] * len(sel), sel["score"], color="tab:blue", zorder=3)
        for seed, score in zip(sel["seed"], sel["score"]):
            ax.annotate(
                # the CSV reads the seed column as float (blank on unseeded rows): 5.0 -> s5
                f"s{int(seed)}",
                (i, score),
                xytext=(5, 0),
                textcoords="offset points",
            )
        ax.hlines(sel["score"].mean(), i - 0.3, i + 0.3, colors="black", linewidth=1.5)
    ax.set_xticks(
        range(len(groups)), [_evaluation_label(*k) for k, _ in groups], rotation=20, ha="right"
    )
    ax.set_ylabel("macro score")
    ax.set_title("Spread over seeds: each seed's macro score (bar: their mean)")


def _plot_differences(ax, df: pd.DataFrame, tasks: list[str], colors: dict) -> None:
    """Drop and recovery per task, with the table's confidence intervals."""
    ablated = df.loc[df.stage == 2, "eval_policy"].iloc[0] if (df.stage == 2).any() else None
    series = [("drop: S2 - S1", df[df.stage == 2], "delta_vs_stage1", (2, "base", ablated))]
    finetuned = df[(df.stage > 2) & (df.eval_policy == ablated)]
    for (stage, variant), sel in finetuned.groupby(["stage", "variant"], sort=True):
        label = f"recovery: S{stage} {variant} - S2"
        series.append((label, sel, "gain_vs_stage2", (stage, variant, ablated)))
    width = 0.8 / max(1, len(series))
    for i, (label, sel, col, key) in enumerate(series):
        sel = sel.set_index("task").reindex(tasks)
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(tasks))]
        lo = (sel[col] - sel[f"{col}_ci_low"]).clip(lower=0)
        hi = (sel[f"{col}_ci_high"] - sel[col]).clip(lower=0)
        color = colors.get(key, "gray")
        ax.errorbar(xs, sel[col], yerr=[lo, hi], fmt="none", ecolor=color, capsize=3, linewidth=1.2)
        noise = sel["within_noise"].astype("boolean").fillna(False).astype(bool)
        for filled, mask in ((True, ~noise), (False, noise)):
            ax.scatter(
                [x for x, m in zip(xs, mask) if m],
                sel[col][mask.values],
                color=color if filled else "white",
                edgecolors=color,
                zorder=3,
                label=label if filled or noise.all() else None,
            )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(tasks)), tasks, rotation=20)
    ax.set_ylabel("score difference (95% CI)")
    ax.set_title("Drop by the ablation, recovery by finetuning\n(hollow: within noise)")


def stopped_early(summary: dict) -> bool:
    """Whether a run stopped before its budget (a stop rule at the last step stops nothing)."""
    stop = (summary.get("stop") or {}).get("reason")
    done, budget = summary.get("steps_done"), summary.get("max_steps")
    if not stop or stop == "max_steps":
        return False
    return not (isinstance(done, int) and isinstance(budget, int) and done >= budget)


def plot_loss_curves(summaries: Iterable[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Train (lines) and held-out (markers) loss of each training summary.json."""
    runs = []
    for path in summaries:
        data = json.loads(Path(path).read_text())
        if "curves" not in data:
            raise ValueError(f"{path} has no 'curves' (not a training summary.json)")
        runs.append((Path(path).parent.name, data))
    if not runs:
        raise ValueError("no training summaries: nothing to plot")
    panels = [
        ("pretrain", [r for r in runs if r[1].get("kind") == "pretrain"]),
        ("finetune", [r for r in runs if r[1].get("kind") != "pretrain"]),
    ]
    panels = [p for p in panels if p[1]]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (kind, group) in zip(axes[0], panels):
        for i, (name, data) in enumerate(group):
            color = cmap(i % 10)
            # earlier runs drawn wider: identical curves stay visible
            width = max(1.0, 3.5 - 1.0 * i)
            label = f"{name} ({data.get('policy')})" if kind == "finetune" else name
            train = data["curves"].get("train") or []
            evals = data["curves"].get("eval") or []
            if train:
                xs, ys = [e["step"] for e in train], [e["loss"] for e in train]
                ax.plot(xs, ys, color=color, linewidth=width, alpha=0.8, label=f"{label} train")
            if evals:
                xs, ys = [e["step"] for e in evals], [e["eval_loss"] for e in evals]
                held_out = dict(color=color, markersize=2 + width, alpha=0.8)
                ax.plot(xs, ys, "o--", label=f"{label} held-out", **held_out)
            if train and stopped_early(data):
                ax.axvline(data.get("steps_done", train[-1]["step"]), color=color, linestyle=":")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss" + (" (response tokens)" if kind == "finetune" else ""))
        ax.set_title(
            "causal pretraining" if kind == "pretrain" else "finetunes (dotted: early stop)"
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)


def _save(fig, out: str | os.PathLike, text: dict[str, str] | None = None) -> Path:
    """Save ``fig``; a PNG carries :data:`MIN_FONT_KEY` and ``text`` as text chunks."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = None
    if out.suffix == ".png":
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text()]
        min_px = min(t.get_fontsize() for t in texts) * DPI / 72
        meta = {MIN_FONT_KEY: f"{min_px:.2f}", **(text or {})}
    # legends sit outside the axes
    fig.savefig(out, dpi=DPI, bbox_inches="tight", metadata=meta)
    plt.close(fig)
    return out
