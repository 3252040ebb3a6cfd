"""Synthetic evaluations with per-item results (metrics.json + samples.parquet contents), so the
recovery table and the claims can be tested without a model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def correct_items(n: int, k: int, seed: int = 0) -> np.ndarray:
    """n items, exactly k correct, in a seeded order."""
    x = np.zeros(n)
    x[np.random.default_rng(seed).choice(n, k, replace=False)] = 1.0
    return x


def shift(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """``x`` with k wrong items made right (k > 0) or k right items made wrong (k < 0)."""
    y = x.copy()
    pool = np.flatnonzero(y == (0.0 if k > 0 else 1.0))
    y[np.random.default_rng(seed).choice(pool, abs(k), replace=False)] = 1.0 if k > 0 else 0.0
    return y


def evaluation(run_id: str, policy: str, per_task: dict[str, np.ndarray], chance: float = 0.25):
    """(metrics dict, samples frame) of an evaluation with these per-item results per task."""
    tasks, rows = {}, []
    for t, x in per_task.items():
        m = float(np.mean(x))
        se = float(np.std(x, ddof=1) / np.sqrt(len(x)))
        tasks[t] = dict(headline_metric="acc_norm", score=m, acc_norm=m, acc_norm_stderr=se)
        tasks[t].update(acc=m, acc_stderr=se, n=len(x), chance=chance)
        # two choice rows per doc, as samples.parquet has one row per (doc, choice)
        rows += [
            dict(task=t, doc_id=i, choice=c, acc=v, acc_norm=v)
            for i, v in enumerate(x)
            for c in range(2)
        ]
    scores = [v["score"] for v in tasks.values()]
    metrics = dict(
        run_id=run_id,
        policy=policy,
        tasks=tasks,
        macro=dict(score=sum(scores) / len(scores), chance=chance, n_tasks=len(scores)),
        provenance=dict(run_id=run_id),
    )
    return metrics, pd.DataFrame(rows)


def write(root: Path, model: str, policy: str, metrics: dict, samples: pd.DataFrame) -> Path:
    d = root / "eval" / model / policy
    d.mkdir(parents=True, exist_ok=True)
    (d / "metrics.json").write_text(json.dumps(metrics))
    samples.to_parquet(d / "samples.parquet", index=False)
    return d


def labels(
    root: Path,
    variants: dict[str, dict],
    ablated: str = "prefill_bidir",
    defaults: dict | None = None,
) -> dict:
    """metrics.json path -> {stage, variant, train_policy} under ``root`` (the layout of
    :func:`write`), from the study's job list, as the recovery rule passes them."""
    from ablate.core.config import validate_config
    from ablate.mask import layout
    from ablate.mask import variants as mask_variants

    config = {
        "mask": {
            "model": {"source": "pretrained", "path": "some/model"},
            "data": {"source": "hub", "sft": "some/sft"},
            "eval": {"ablated_policy": ablated, "tasks": [{"name": "a"}, {"name": "b"}]},
            # the schema asks for one variant at least; a base-only test reads none of its files
            "finetune": {
                "defaults": defaults or {},
                "variants": variants or {"3A": {"stage": 3, "policy": "causal"}},
            },
            # the labels read no claims; the default roles name variants a test may not declare
            "claims": dict.fromkeys(mask_variants.CLAIM_ROLES),
        },
    }
    validate_config(config)  # the defaults every job's config slice reads, as the Snakefile fills
    config["results"] = str(root)  # the schema takes a relative folder; the test's is absolute
    return layout.recovery_labels(layout.jobs(config))
