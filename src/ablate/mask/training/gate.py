"""The leakage gate of a finetune: the probe's verdict on the training policy (run here, or the
pipeline's probe rule's), and the refusal of a policy that leaks labels unless allowed."""

from __future__ import annotations

import json
from pathlib import Path

from ablate.core.training.params import TrainingConfigError, TrainingError
from ablate.mask.training.params import PROBE_PARAMS, MaskParams


class LeakageGateError(TrainingError):
    pass


def check(
    model, pairs, policy: str, allow_leakage: bool, params: MaskParams, probe_result: dict | None
) -> dict:
    """Run (on ``pairs``) or take the leakage probe of the training ``policy``; a leaking policy
    is a :class:`LeakageGateError` naming the evidence, unless ``allow_leakage``. Returns the
    probe's result and whether a leak was allowed."""
    if probe_result is None:
        missing = [k for k in PROBE_PARAMS if k in params.unset]
        if missing:  # the pipeline's finetune takes its policy's probe result
            raise TrainingConfigError(f"no probe result and no {', '.join(missing)} to run one")
        from ablate.mask import leakage

        kw = {"batch_size": params.probe_batch_size}
        if params.probe_threshold is not None:
            kw["threshold"] = params.probe_threshold
        sample = pairs[: params.probe_size]
        print(f"[finetune {policy}] leakage probe on {len(sample)} held-out pairs", flush=True)
        probe_result = leakage.probe(model, sample, policy, **kw)
    elif probe_result.get("policy") != policy:
        raise TrainingConfigError(
            f"leakage gate: the given probe result is for policy {probe_result.get('policy')!r}, "
            f"but training uses {policy!r}"
        )
    if probe_result.get("leaks") and not allow_leakage:
        # a verdict (leakage.verdict) names the record that holds the evidence the refusal cites;
        # on a rented host only the verdict was shipped: the refusal names the record instead
        record = probe_result.get("record")
        if record and Path(record).is_file():
            probe_result = {**json.loads(Path(record).read_text()), **probe_result}

        def g(key):
            value = probe_result.get(key)
            return f"{value:.4g}" if isinstance(value, (int, float)) else "?"

        evidence = []
        if probe_result.get("future_dependent"):
            evidence.append(
                f"response losses move by up to {g('future_sensitivity')} nats when only a later "
                f"token changes"
            )
        if "loss_policy" in probe_result:
            evidence.append(
                f"response loss {g('loss_policy')} under {policy} vs {g('loss_causal')} causal "
                f"(ratio {g('ratio')}, leak threshold < {g('threshold')})"
            )
        else:
            evidence.append(f"the probe's evidence is in {record}")
        raise LeakageGateError(
            f"leakage gate: training under policy {policy!r} leaks labels: {'; '.join(evidence)}. "
            f"The model would learn to read the answer. To reproduce this on purpose set "
            f"allow_leakage: true for this finetune variant (CLI: --allow-leakage)."
        )
    return {**probe_result, "allowed": bool(allow_leakage and probe_result.get("leaks"))}
