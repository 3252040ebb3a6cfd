"""The mask study's report figures (ablate.mask.report) from synthetic recovery tables and
training summaries (no model): the scores figure (drop and recovery with intervals, a colour per
series and the spread over seeds), the loss curves and their early-stop line, the smallest text's
size in the PNG."""

from __future__ import annotations

import json

import pytest

from ablate.mask import recovery, report


def _metrics(run_id, policy, scores):
    return {
        "run_id": run_id,
        "policy": policy,
        "tasks": {
            t: {"headline_metric": "acc", "score": s, "acc_stderr": 0.01, "n": 10, "chance": 0.25}
            for t, s in scores.items()
        },
        "macro": {
            "score": sum(scores.values()) / len(scores),
            "chance": 0.25,
            "n_tasks": len(scores),
        },
    }


def base_stages() -> list[dict]:
    """Stages 1 and 2 of a recovery table: the base under causal and under the ablation."""
    return [
        dict(stage=1, variant="base", metrics=_metrics("a", "causal", {"x": 0.8, "y": 0.7})),
        dict(stage=2, variant="base", metrics=_metrics("b", "prefill_bidir", {"x": 0.4, "y": 0.5})),
    ]


def test_plot_scores_png(tmp_path):
    df = recovery.build_recovery(
        [
            *base_stages(),
            dict(
                stage=4,
                variant="3B",
                train_policy="prefix_bidir",
                metrics=_metrics("c", "prefill_bidir", {"x": 0.6, "y": 0.6}),
            ),
        ]
    )
    csv = tmp_path / "r.csv"
    df.to_csv(csv, index=False)
    out = report.plot_scores(csv, tmp_path / "plots" / "scores.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_plot_scores_with_seeds_gives_each_series_its_colour_and_integer_seeds(
    tmp_path, monkeypatch
):
    """The seeds3 overlay's shape: 3A and 3B with seeds 5, 6, 7 evaluated under both policies,
    14 bar series. tab10 alone repeated colours (3B-s6 looked like the base model), and the
    seeds read back from the CSV as floats were labelled s5.0."""
    import matplotlib.pyplot as plt

    entries = [
        dict(stage=1, variant="base", metrics=_metrics("a", "causal", {"x": 0.8, "y": 0.7})),
        dict(stage=2, variant="base", metrics=_metrics("b", "prefill_bidir", {"x": 0.4, "y": 0.5})),
    ]
    for v, policy in (("3A", "causal"), ("3B", "prefix_bidir")):
        for seed in (5, 6, 7):
            for p in ("causal", "prefill_bidir"):
                score = 0.5 + seed / 100
                entries.append(
                    dict(
                        stage=4,
                        variant=f"{v}-s{seed}",
                        base=v,
                        seed=seed,
                        train_policy=policy,
                        metrics=_metrics(f"{v}{seed}{p}", p, {"x": score, "y": score}),
                    )
                )
    csv = tmp_path / "r.csv"
    recovery.build_recovery(entries).to_csv(csv, index=False)
    monkeypatch.setattr(report.plt, "close", lambda fig: None)  # keep the figure to look at
    report.plot_scores(csv, tmp_path / "scores.png")
    fig = plt.figure(plt.get_fignums()[-1])
    bars, _, spread = fig.axes
    colors = [c.patches[0].get_facecolor() for c in bars.containers]
    assert len(colors) == 14 and len(set(colors)) == 14, colors
    seeds = sorted({t.get_text() for t in spread.texts})
    plt.close(fig)
    assert seeds == ["s5", "s6", "s7"]


def test_the_early_stop_line_marks_only_a_run_stopped_before_its_budget(tmp_path, monkeypatch):
    """The loss panel drew an "early stop" line at 5B's max_steps: its plateau rule fired at its
    last step. A dotted line now marks a run that stopped before its step budget only."""
    import matplotlib.axes

    drawn = []
    monkeypatch.setattr(matplotlib.axes.Axes, "axvline", lambda ax, x, **kw: drawn.append(x))
    paths = []
    for name, done in (("5B", 400), ("3C", 250)):  # plateau at the budget; plateau before it
        p = tmp_path / name / "summary.json"
        p.parent.mkdir()
        p.write_text(
            json.dumps(
                {
                    "kind": "finetune",
                    "policy": "causal",
                    "max_steps": 400,
                    "steps_done": done,
                    "stop": {"reason": "plateau", "step": done},
                    "curves": {"train": [{"step": s, "loss": 3 / s} for s in range(1, done + 1)]},
                }
            )
        )
        paths.append(p)
    report.plot_loss_curves(paths, tmp_path / "loss.png")
    assert drawn == [250]


def test_plot_loss_curves_png(tmp_path):
    paths = []
    for name, kind, stop in [("base", "pretrain", "max_steps"), ("3B", "finetune", "plateau")]:
        p = tmp_path / name / "summary.json"
        p.parent.mkdir()
        p.write_text(
            json.dumps(
                {
                    "kind": kind,
                    "policy": "causal",
                    "steps_done": 30,
                    "stop": {"reason": stop},
                    "curves": {
                        "train": [{"step": s, "loss": 3 / s} for s in range(1, 31)],
                        "eval": [{"step": s, "eval_loss": 3.5 / s} for s in (10, 20, 30)],
                    },
                }
            )
        )
        paths.append(p)
    out = report.plot_loss_curves(paths, tmp_path / "loss.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="has no 'curves'"):
        report.plot_loss_curves([bad], tmp_path / "x.png")


def test_plot_scores_shows_drop_and_recovery(tmp_path):
    """The second panel draws the drop and the recovery with their intervals (from the CSV,
    where within_noise comes back as text)."""
    from fake_evals import correct_items, evaluation, shift

    s1 = {"x": correct_items(100, 80, 0)}
    s2 = {"x": shift(s1["x"], -30, 1)}
    entries = [
        (1, "base", "causal", s1),
        (2, "base", "prefill_bidir", s2),
        (4, "3B", "prefill_bidir", {"x": shift(s2["x"], 10, 2)}),
        (5, "5B", "prefill_bidir", {"x": shift(s2["x"], 1, 3)}),
    ]
    df = recovery.build_recovery(
        [
            dict(stage=st, variant=v, metrics=m, samples=s)
            for st, v, p, items in entries
            for m, s in [evaluation(f"{v}-{p}", p, items)]
        ]
    )
    csv = tmp_path / "r.csv"
    df.to_csv(csv, index=False)
    out = report.plot_scores(csv, tmp_path / "scores.png")
    from PIL import Image

    img = Image.open(out)
    width, height = img.size
    assert width > 2 * height  # two panels side by side, the legend under them
    # its smallest text, as the report test scales it by the size the browser shows it
    assert float(img.text[report.MIN_FONT_KEY]) == pytest.approx(
        report.MIN_FONT_PT * report.DPI / 72, abs=0.01
    )


def test_the_score_plot_carries_the_scores_it_draws(tmp_path):
    """The PNG's text chunk holds every bar's score (macro and per task, per model and policy)
    named as ``ablate runs`` and docs/expected_results.csv name them, so a test reads what the
    README's copy of the picture shows."""
    from PIL import Image

    from ablate.mask import layout, status

    df = recovery.build_recovery(
        [
            *base_stages(),
        ]
    )
    csv = tmp_path / layout.PATTERNS["recovery_csv"]
    df.to_csv(csv, index=False)
    out = report.plot_scores(csv, tmp_path / "scores.png")
    drawn = json.loads(Image.open(out).text[report.SCORES_KEY])
    assert drawn == {
        "base under causal": 0.75,
        "base under causal: x": 0.8,
        "base under causal: y": 0.7,
        "base under prefill_bidir": 0.45,
        "base under prefill_bidir: x": 0.4,
        "base under prefill_bidir: y": 0.5,
    }
    assert drawn == status.run_scores(tmp_path)  # the names and numbers ablate expected records
