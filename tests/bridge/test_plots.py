"""The bridge study's figures (ablate.bridge.plots) on small fabricated tables: one curve per run
(entries sharing a run share its line), accuracy against K in K's order, the baselines in the
benchmark's order, each written as a PNG (fast)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from ablate.bridge import plots

PNG = b"\x89PNG"


@pytest.fixture
def figures(monkeypatch):
    """The figures a plot function closes after saving, kept to be read."""
    kept = []
    monkeypatch.setattr(plt, "close", kept.append)
    yield kept
    monkeypatch.undo()
    for fig in kept:
        plt.close(fig)


SUMMARY = pd.DataFrame(
    {
        "entry": ["1a", "2c", "1b", "2a"],
        "run_id": ["r1", "r1", "r2", "r3"],  # 2c reuses 1a's run
        "dataset": ["gsm8k"] * 4,
        "direction": ["s->t"] * 4,
        "K": [8, 8, 2, 4],
        "peak": [0.5, 0.5, 0.3, 0.4],
        "final": [0.4, 0.4, 0.2, 0.35],
    }
)


def test_entries_sharing_a_run_are_one_curve(tmp_path, figures):
    rows = [("r1", s, a) for s, a in ((0, 0.1), (2, 0.3), (4, 0.4))]
    rows += rows  # the summary's curves carry a run once per entry that reads it
    rows += [("r2", 0, 0.1), ("r2", 2, 0.2)]
    curves = pd.DataFrame(rows, columns=["run_id", "step", "accuracy"])
    out = plots.plot_curves(curves, SUMMARY, tmp_path / "curves.png")
    assert out.read_bytes().startswith(PNG)
    (ax,) = figures[0].axes
    lines = {line.get_label(): list(line.get_xdata()) for line in ax.get_lines()}
    assert lines == {"1a = 2c": [0, 2, 4], "1b": [0, 2]}


def test_accuracy_against_k_has_one_point_per_run_in_ks_order(tmp_path, figures):
    out = plots.plot_k(SUMMARY, tmp_path / "k.png")
    assert out.read_bytes().startswith(PNG)
    (ax,) = figures[0].axes
    (final,) = ax.get_lines()
    assert list(final.get_xdata()) == [2, 4, 8] and list(final.get_ydata()) == [0.2, 0.35, 0.4]


def test_baselines_keep_the_benchmarks_order_and_say_when_there_is_none(tmp_path, figures):
    order = ["target_alone", "latent", "cascade"]  # not alphabetical
    paths = []
    for run, acc in (("ra", [0.1, 0.5, 0.3]), ("rb", [0.2, 0.4, 0.3])):
        (tmp_path / run).mkdir()
        frame = pd.DataFrame({"baseline": order, "accuracy": acc, "kv_cache_total_mb": [1, 2, 3]})
        frame.to_csv(tmp_path / run / "summary.csv", index=False)
        paths.append(tmp_path / run / "summary.csv")
    out = plots.plot_baselines(paths, tmp_path / "baselines.png")
    assert out.read_bytes().startswith(PNG)
    acc, kv = figures[0].axes
    assert [t.get_text() for t in acc.get_xticklabels()] == order
    assert [t.get_text() for t in acc.get_legend().get_texts()] == ["ra", "rb"]
    plots.plot_baselines([], tmp_path / "none.png")
    assert figures[1].axes[0].get_title() == "no inference benchmark in this configuration"
