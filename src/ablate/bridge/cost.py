"""What bridge work costs in tokens and FLOPs: one definition for the GPU benchmark
(bench/bench_bridge.py) and the planner (:mod:`ablate.bridge.plan`), so a measured tokens/s and a
planned token count always count the same tokens.

An example counts as :meth:`ablate.bridge.pair.Pair.loss` counts it; the KL teacher's prompt is
work (FLOPs), not counted tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ablate.bridge.params import BridgeParams

#: Generations per sample of the inference benchmark: one per baseline, the cascade's two.
INFER_GENERATIONS = 6


@dataclass(frozen=True)
class Lengths:
    """Token lengths of one example (means over a dataset, or a benchmark's fixed shape)."""

    source: int  # the source's input (the prompt in the source's tokenizer)
    prompt: int  # the target's text prompt (the KL teacher's input before the answer)
    answer: int  # the answer continuation (+ EOS)
    cue: int = 3  # "Answer:" after the soft tokens

    @classmethod
    def of(cls, spec: dict[str, Any], p: BridgeParams) -> Lengths:
        """From a ``bridge_lengths`` entry of the measurements file, cut like the pipeline cuts."""
        return cls(
            source=min(int(spec["source_tokens"]), p.max_source_len),
            prompt=min(int(spec["prompt_tokens"]), p.max_prompt_len),
            answer=int(spec["answer_tokens"]),
            cue=int(spec.get("cue_tokens", 3)),
        )


def latent_len(K: int, n: Lengths) -> int:
    """The target's latent input: BOS + K soft tokens + cue."""
    return 1 + K + n.cue


def example_tokens(K: int, n: Lengths) -> int:
    """Tokens of one training example, as Pair.loss counts them."""
    return n.source + latent_len(K, n) + n.answer


def kl_on(p: BridgeParams) -> bool:
    return p.kl_weight > 0


def example_flops(
    p: BridgeParams,
    n: Lengths,
    src: float,
    tgt: float,
    translator: float,
    cached_source: bool,
    cached_teacher: bool,
) -> float:
    """Matmul FLOPs of one training step's example (2 per parameter per token forward); the
    frozen target's backward has no weight gradients, so it costs about its forward."""
    f = 0.0 if cached_source else 2 * src * n.source
    f += 4 * tgt * (latent_len(p.K, n) + n.answer)
    if kl_on(p) and not cached_teacher:
        f += 2 * tgt * (n.prompt + n.answer)
    return f + 6 * translator * p.K


def frozen_tokens(what: str, n: Lengths) -> int:
    """Tokens one item costs a frozen-state cache job."""
    return n.source if what == "source" else n.prompt + n.answer


def n_evaluations(p: BridgeParams) -> int:
    """Bridged evaluations of a full run: step 0, every eval_every, the end, the restored best."""
    n = 1 + p.steps // p.eval_every + (1 if p.steps % p.eval_every else 0)
    return n + (1 if p.restore_best else 0)


def eval_generated_tokens(p: BridgeParams) -> int:
    """Upper bound of the tokens a run's evaluations generate (every answer max_new_tokens)."""
    return n_evaluations(p) * p.eval_size * p.max_new_tokens


def infer_generated_tokens(p: BridgeParams, n_samples: int) -> int:
    """Upper bound of the tokens the inference benchmark's quality pass generates."""
    return n_samples * INFER_GENERATIONS * p.max_new_tokens


def infer_timed_tokens(p: BridgeParams, timed_samples: int) -> int:
    """Upper bound of the tokens its latency pass generates: the timed items and one warm-up."""
    return infer_generated_tokens(p, timed_samples + 1) if timed_samples else 0
