"""Report figures from synthetic pipeline outputs (no model needed)."""

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


def test_plot_scores_png(tmp_path):
    df = recovery.build_recovery(
        [
            dict(stage=1, variant="base", metrics=_metrics("a", "causal", {"x": 0.8, "y": 0.7})),
            dict(
                stage=2,
                variant="base",
                metrics=_metrics("b", "prefill_bidir", {"x": 0.4, "y": 0.5}),
            ),
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
    import matplotlib.image

    img = matplotlib.image.imread(out)
    assert img.shape[0] > img.shape[1] * 0.6  # two panels stacked
