"""The bridge study's figures: accuracy over training steps per entry, accuracy against K, and the
inference benchmark's baselines side by side."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes or CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ablate.core.outputs import io  # noqa: E402


def _save(fig, out: str | os.PathLike) -> Path:
    fig.tight_layout()
    path = io.atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return path


def plot_curves(curves: pd.DataFrame, summary: pd.DataFrame, out) -> Path:
    """Bridged accuracy at each evaluation, one line per run (entries sharing a run: one line)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    names = summary.groupby("run_id", sort=False)["entry"].apply(lambda s: " = ".join(s))
    for run_id, c in curves.drop_duplicates(["run_id", "step"]).groupby("run_id", sort=False):
        ax.plot(c["step"], c["accuracy"], marker="o", ms=3, label=names.get(run_id, run_id))
    ax.set_xlabel("training step")
    ax.set_ylabel("bridged accuracy")
    ax.set_title("Accuracy over training steps")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, out)


def plot_k(summary: pd.DataFrame, out) -> Path:
    """Peak and final accuracy against K, per dataset and direction (one point per run)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    runs = summary.drop_duplicates("run_id")
    for (dataset, direction), g in runs.groupby(["dataset", "direction"]):
        g = g.sort_values("K")
        ax.plot(g["K"], g["final"], marker="o", label=f"{dataset} {direction} final")
        ax.scatter(g["K"], g["peak"], marker="^", alpha=0.5, label=f"{dataset} {direction} peak")
    ax.set_xlabel("K (soft tokens)")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy against K")
    ax.legend(fontsize=7)
    return _save(fig, out)


def plot_baselines(infer_summaries: Iterable[str | os.PathLike], out) -> Path:
    """Accuracy and KV-cache MB per request of each baseline, per benchmarked run."""
    tables = [pd.read_csv(p).assign(run=Path(p).parent.name) for p in infer_summaries]
    fig, (acc, kv) = plt.subplots(1, 2, figsize=(10, 4))
    if not tables:
        acc.set_title("no inference benchmark in this configuration")
        return _save(fig, out)
    df = pd.concat(tables)
    order = df["baseline"].drop_duplicates()  # the benchmark's order, not alphabetical
    for ax, col in ((acc, "accuracy"), (kv, "kv_cache_total_mb")):
        df.pivot(index="baseline", columns="run", values=col).loc[order].plot.bar(ax=ax, rot=30)
    acc.set_ylabel("accuracy")
    kv.set_ylabel("KV cache per request, source + target (MB)")
    acc.set_title("Baselines: accuracy")
    kv.set_title("Baselines: KV cache")
    for ax in (acc, kv):
        ax.legend(fontsize=6)
    return _save(fig, out)


def plot_all(summary_csv, curves_csv, infer_summaries, out_curves, out_k, out_baselines) -> None:
    summary = pd.read_csv(summary_csv)
    plot_curves(pd.read_csv(curves_csv), summary, out_curves)
    plot_k(summary, out_k)
    plot_baselines(infer_summaries, out_baselines)
