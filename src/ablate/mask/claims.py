"""The mask study's claims, computed from its evaluations (results/claims/mask.csv).

(a) the ablation hurts: stage 2 (base under the ablated policy) scores below stage 1 (base
    under causal), on the macro over tasks and on each task;
(b) prefix-LM finetuning recovers more than causal finetuning: under the ablated evaluation the
    ``prefix_variant`` (and the stage-5 ``long_variant``) scores above the ``causal_variant``;
(c) it costs little under causal evaluation: ``prefix_variant`` (and ``long_variant``) under
    causal is at most ``side_effect_margin`` below stage 1.

Every test is paired on per-item correctness (the tasks' headline metric, from samples.parquet).
The variants playing each role come from the config's ``claims:`` block (validated by
:func:`ablate.mask.study.resolve_claims`); an evaluation that does not exist yet makes its claims
"not run". Machinery and verdicts: :mod:`ablate.core.claims`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.core.claims import Claim, Evidence, Samples, beats, evaluate_claims, within_margin
from ablate.mask import items

STUDY = "mask"


def key(model: str, policy: str, task: str | None = None) -> str:
    """Name of an evaluation's per-item results in the evidence: ``3B@prefill_bidir[/task]``."""
    return f"{model}@{policy}" + (f"/{task}" if task else "")


def mask_claims(cfg: dict[str, Any], ablated: str, tasks: Iterable[str]) -> list[Claim]:
    """The claims of the study for a resolved ``claims:`` block (study.resolve_claims)."""
    alpha, min_n = cfg["alpha"], cfg["min_n"]
    prefix, causal, long = (
        cfg.get("prefix_variant"),
        cfg.get("causal_variant"),
        cfg.get("long_variant"),
    )
    s1, s2 = key("base", "causal"), key("base", ablated)
    out = [
        Claim(
            "ablation_hurts",
            f"Removing the causal mask at prefill ({ablated}) lowers the base model's macro score "
            "(stage 2 < stage 1).",
            beats(s1, s2, alpha=alpha, min_n=min_n),
        )
    ]
    out += [
        Claim(
            f"ablation_hurts/{t}",
            f"The ablation ({ablated}) lowers the base model's score on {t} (stage 2 < stage 1).",
            beats(key("base", "causal", t), key("base", ablated, t), alpha=alpha, min_n=min_n),
        )
        for t in tasks
    ]
    for role, name in (("prefix", prefix), ("long", long)):
        if name is None:
            continue
        what = "prefix-LM finetune" if role == "prefix" else "long-run finetune"
        if causal is not None:
            out.append(
                Claim(
                    f"{role}_recovers_more",
                    f"Under the ablated evaluation ({ablated}), the {what} {name} scores above "
                    f"the causal finetune {causal} (macro).",
                    beats(key(name, ablated), key(causal, ablated), alpha=alpha, min_n=min_n),
                )
            )
        margin = cfg["side_effect_margin"]
        out.append(
            Claim(
                f"{role}_side_effect_small",
                f"Under causal evaluation, the {what} {name} is at most {margin:g} below stage 1 "
                "(macro).",
                within_margin(key(name, "causal"), s1, margin, alpha=alpha, min_n=min_n),
            )
        )
    return out


def context(metrics_files: Iterable[str | Path], samples_files: Iterable[str | Path]) -> Evidence:
    """Per-item correctness of every evaluation ``.../eval/<model>/<policy>/`` whose metrics.json
    and samples.parquet both exist, pooled over tasks and per task."""
    samples = {Path(f).parent: Path(f) for f in samples_files}
    inputs: dict[str, Samples] = {}
    for m in map(Path, metrics_files):
        s = samples.get(m.parent)
        if not m.exists() or s is None or not s.exists():
            continue  # not run yet: claims that need it say so
        metrics = json.loads(m.read_text())
        correct = items.correctness(metrics, items.load(s), str(s))
        model, policy = m.parts[-3:-1]
        source = f"{m.parent} (run {metrics.get('run_id')})"
        inputs[key(model, policy)] = Samples(correct, source, f"{model} under {policy}")
        for task, values in correct.groupby(level=0):
            inputs[key(model, policy, task)] = Samples(
                values, source, f"{model} under {policy} on {task}"
            )
    return Evidence(inputs)


def claims_table(
    cfg: dict[str, Any],
    ablated: str,
    tasks: Iterable[str],
    metrics_files: Iterable[str | Path],
    samples_files: Iterable[str | Path],
) -> pd.DataFrame:
    ev = context(metrics_files, samples_files)
    return evaluate_claims(mask_claims(cfg, ablated, list(tasks)), ev, study=STUDY)
