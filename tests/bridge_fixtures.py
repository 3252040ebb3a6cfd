"""Session fixtures of the bridge tests: a small generated world and two micro model pairs.

Imported by conftest.py. The models are prepared by the real ``prepare_model`` (tokenizer trained
here, Trainer pretraining, manifest, card) with micro sizes and a few steps: seconds, not minutes.
"""

from __future__ import annotations

import pytest
from helpers import shared

MICRO_ARCH = {
    "mistral": {
        "tokenizer": {"vocab_size": 300},
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
    },
    "llama": {
        "tokenizer": {"vocab_size": 350},
        "hidden_size": 48,
        "intermediate_size": 96,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 24,
    },
}
MICRO_PRETRAIN = {
    "max_steps": 3,
    "batch_size": 4,
    "max_seq_len": 64,
    "eval_steps": 0,
    "logging_steps": 1,
    "eval_size": 2,
}
#: Bridge params small enough for a test: a few steps, four eval items, four new tokens.
MICRO_PARAMS = {
    "K": 2,
    "depth": 1,
    "bottleneck": 16,
    "heads": 2,
    "steps": 4,
    "warmup_steps": 1,
    "batch_size": 2,
    "eval_every": 2,
    "eval_size": 4,
    "eval_batch_size": 4,
    "max_new_tokens": 4,
    "log_every": 2,
    "kl_positions": 4,
}
#: Bridge params of deterministic steps (the data-parallel and the states cache tests): no
#: dropout (each process draws its own masks); a loss logged every step. InfoNCE on: its
#: negatives are each process's batch, the one process's in groups of that size.
EXACT = {**MICRO_PARAMS, "dropout": 0.0, "kl_after_warmup": False,
         "log_every": 1, "steps": 4, "early_stopping": False, "eval_every": 4,
         "model_dtype": "float32"}  # fmt: skip


#: The sizes of the generated world the bridge tests share (`bridge_world`).
WORLD = dict(seed=0, n_train=16, n_test=8, n_qa_train=16, n_qa_test=8, n_corpus=200)
#: Each role's micro model family (`bridge_cards`).
ROLES = {"source": "mistral", "target": "llama"}


@pytest.fixture(scope="session")
def bridge_world(tmp_path_factory):
    """{name: jsonl path} of the generated world, written once for every pytest-xdist worker
    (`shared`): the bridge tests of the fast tier run on both workers."""
    from ablate.bridge import world

    folder = shared(tmp_path_factory, "bridge_world", lambda out: world.write_world(out, **WORLD))
    return {path.stem: path for path in sorted(folder.glob("*.jsonl"))}


@pytest.fixture(scope="session")
def bridge_cards(bridge_world, tmp_path_factory):
    """{"source": card path (tiny Mistral), "target": card path (tiny Llama)}, prepared once for
    every pytest-xdist worker (`shared`)."""

    def make(root):
        import torch

        from ablate.bridge import models

        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for family in ROLES.values():
                models.prepare_model(
                    family=family,
                    arch=MICRO_ARCH[family],
                    pretrain=MICRO_PRETRAIN,
                    corpus=bridge_world["corpus"],
                    out_dir=root / family,
                    config_slice={"family": family},
                )
        finally:
            torch.set_num_threads(before)

    root = shared(tmp_path_factory, "bridge_models", make)
    return {role: root / family / "card.json" for role, family in ROLES.items()}


@pytest.fixture(scope="session")
def bridge_entry(bridge_world, bridge_cards, tmp_path_factory):
    """One micro grid entry trained by train_entry: (out_dir, summary)."""
    from ablate.bridge.params import RunSpec
    from ablate.bridge.training import entries

    out = tmp_path_factory.mktemp("bridge_entry")
    summary = entries.train_entry(
        RunSpec.parse("micro-0001", MICRO_PARAMS, "gsm8k", identity={"entry": "micro"}),
        source_card=bridge_cards["source"],
        target_card=bridge_cards["target"],
        train_file=bridge_world["gsm8k_train"],
        eval_file=bridge_world["gsm8k_test"],
        out_dir=out,
    )
    return out, summary
