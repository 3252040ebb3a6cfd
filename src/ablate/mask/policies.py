"""The mask study's attention policies and the one wording of what each lets a token see (every
help text and document uses it). Pure Python (no torch): the Snakefile and the command line import
it too.
"""

from __future__ import annotations

POLICIES: tuple[str, ...] = ("causal", "prefill_bidir", "prefix_bidir")
#: What each policy lets a token see: the one wording every help text and document uses.
POLICY_DESCRIPTIONS: dict[str, str] = {
    "causal": "the standard causal mask: each token sees itself and the tokens before it",
    "prefill_bidir": (
        "no causal mask in any forward of more than one token, over prompt and answer alike; "
        "single-token decode steps stay causal (the prefill-mask ablation study's ablation). "
        "Teacher-forced, the prediction of an answer token sees that token and the later ones: a label leak in "
        "training, and in scoring for every answer token but the last (the last is not in "
        "lm-eval's input row), so only multi-token answers are affected; under the original "
        "study's rows (mask.eval.protocol: original) every answer token is in the input and "
        "every answer leaks"
    ),
    "prefix_bidir": (
        "prompt tokens see the whole prompt in both directions; answer tokens stay causal (the "
        "whole prompt and earlier answer tokens): a prefix-LM, no leakage"
    ),
}
assert set(POLICY_DESCRIPTIONS) == set(POLICIES)


def policy_help() -> str:
    """One line per policy, for command-line help and logs."""
    return "; ".join(f"{p}: {POLICY_DESCRIPTIONS[p]}" for p in POLICIES)
