"""How much of a packed seed step's flex_attention mask is computed, per policy: the 128 x 128
blocks of the BlockMask that the pipeline builds (ablate.mask.training.packing.packed_mask) for
bench/bench_packing.py's Alpaca-like rows, 16 examples per packed row. A partial block evaluates
the policy's mask function per element; a full one does not; an empty one is skipped. Builds the
masks only (no attention), so it runs on a CPU in seconds.

    PYTHONPATH=src:bench python bench/packed_mask_blocks.py [--steps 8] [--max-len 1024]
"""

from __future__ import annotations

import argparse

import torch
from bench_packing import SEED_EXAMPLES_PER_STEP, alpaca_like_lengths
from transformers import MistralConfig

from ablate.mask.training.packing import PROMPT_MASK, SEQ_IDS, packed_mask

POLICIES = ("causal", "prefix_bidir", "prefill_bidir")


def _config() -> MistralConfig:
    # the mask depends on the backend and the layer types only, not on the model's size
    cfg = MistralConfig(
        hidden_size=64,
        intermediate_size=64,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_hidden_layers=1,
        vocab_size=128,
        max_position_embeddings=1 << 16,
    )
    cfg._attn_implementation = "flex_attention"
    return cfg


def packed_row(lengths: list[tuple]) -> dict[str, torch.Tensor]:
    """seq ids and prompt flags of one row holding ``lengths`` ((total, prompt) each) end to end."""
    seq, prompt = [], []
    for i, (total, p) in enumerate(lengths):
        seq += [i] * total
        prompt += [True] * p + [False] * (total - p)
    return {SEQ_IDS: torch.tensor([seq]), PROMPT_MASK: torch.tensor([prompt])}


def count(steps: int, max_len: int) -> list[dict]:
    cfg = _config()
    lengths = alpaca_like_lengths(steps * SEED_EXAMPLES_PER_STEP, seed=1, max_len=max_len)
    rows = []
    for s in range(steps):
        batch = packed_row(lengths[s * SEED_EXAMPLES_PER_STEP : (s + 1) * SEED_EXAMPLES_PER_STEP])
        row = {"step": s + 1, "tokens": batch[SEQ_IDS].shape[1]}
        for policy in POLICIES:
            m = packed_mask(cfg, batch, policy, torch.bfloat16)
            row[policy] = (int(m.kv_num_blocks.sum()), int(m.full_kv_num_blocks.sum()))
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=1024)
    a = ap.parse_args(argv)
    rows = count(a.steps, a.max_len)
    head = " | ".join(f"{p} partial + full" for p in POLICIES[1:])
    print(f"| step | tokens | causal partial + full | {head} | prefix_bidir x causal blocks |")
    print("|---" * (4 + len(POLICIES) - 1) + "|")
    for r in rows:
        cells = [f"{r[p][0]} + {r[p][1]}" for p in POLICIES]
        ratio = sum(r["prefix_bidir"]) / sum(r["causal"])
        print(f"| {r['step']} | {r['tokens']} | {' | '.join(cells)} | {ratio:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
