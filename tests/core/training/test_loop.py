"""The training loop (ablate.core.training.loop): each step's share of the global batch, the
tokens it counts, its autocast around the fast head, and the step's losses read only where the
loop logs, evaluates, saves or ends."""

from __future__ import annotations

import pytest
import torch
from helpers import FAST, causal_finetune

from ablate.core.models.modeling import load_causal_lm
from ablate.core.training import loop, params
from ablate.core.training.loop import shares
from ablate.core.training.params import TrainingConfigError
from ablate.core.training.recipe import Recipe


def test_shares_keep_the_global_batch():
    """(examples per step and process, examples per micro-batch): the step's batch_size x
    grad_accum examples split evenly over the processes, in micro-batches of batch_size where the
    accumulation splits."""
    assert shares(1, 16, 1) == (16, 1)
    assert shares(1, 16, 2) == (8, 1)  # the accumulation is split first: 8 micro-batches of 1
    assert shares(2, 4, 4) == (2, 2)  # one micro-batch of the batch each
    assert shares(16, 1, 2) == (8, 8)  # packed: one step's pairs, split
    with pytest.raises(TrainingConfigError, match="does not split over 2"):
        shares(3, 1, 2)


class TokensAtLogs:
    """A loop reporter: the tokens seen the loop reports with each step's log."""

    def __init__(self):
        self.at: dict[int, int] = {}

    def begin(self, step):
        pass

    def log(self, step, logs, tokens):
        if "loss" in logs:
            self.at[step] = tokens

    def end(self):
        pass


def test_token_count_without_sync_is_exact(tiny_model_dir, tmp_path):
    """The loop's non-pad token count, kept on the device and added to the state before each log:
    at every log (steps 1, 2, 4: step 3's tokens wait on the device for step 4's) and at the end
    it equals the non-pad tokens of the steps' examples (padded rows of several lengths here)."""
    model = load_causal_lm(tiny_model_dir, dtype=torch.float32)
    max_len, batch, accum, steps = 24, 2, 2, 4
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(batch * accum * steps):
        k = int(torch.randint(10, max_len + 1, (1,), generator=g))
        rows.append(
            {"input_ids": torch.randint(1000, 2000, (k,), generator=g).tolist(), "prompt_length": 8}
        )
    assert len({len(r["input_ids"]) for r in rows}) > 1  # micro-batches carry padding
    p = params.resolve_params(
        dict(
            max_steps=steps,
            batch_size=batch,
            grad_accum=accum,
            logging_steps=2,
            eval_size=0,
            save_steps=0,
            warmup_ratio=0.0,
            max_seq_len=max_len,
            optim="adamw_torch",
            no_learning_steps=0,
        ),
        "finetune",
    )
    seen = TokensAtLogs()
    trainer = loop.setup(
        loop.Spec(tmp_path, "tokens", pad_token_id=11, recipe=Recipe(p), reporters=(seen,)),
        model=model,
        train_dataset=rows,
        eval_dataset=None,
    )
    per_step = [
        sum(len(ex["input_ids"]) for ex in loop.step_examples(trainer, s)) for s in range(steps)
    ]
    padded = sum(
        b["input_ids"].numel()
        for s in range(steps)
        for b in trainer.spec.recipe.micro_batches(loop.step_examples(trainer, s), trainer.micro)
    )
    assert padded > sum(per_step)  # a count of padded positions would be off
    loop.train(trainer)
    assert seen.at == {s: sum(per_step[:s]) for s in (1, 2, 4)}
    assert trainer.state.tokens_seen == sum(per_step) == trainer.throughput.tokens


def test_fast_head_runs_under_the_loops_autocast(tiny_model_dir, tmp_path):
    """fp32 weights with bf16 on: the loop's autocast must wrap the loss, whose fast head calls
    the decoder directly, not the model's forward (an autocast around ``model.forward`` alone
    left it in full fp32: 10x slower on an H200, bench/results/h200x2_pool_ddp.md). The
    decoder's matmuls run in bf16, and the head only at the labelled positions."""
    model = load_causal_lm(tiny_model_dir, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    rows = [
        {"input_ids": torch.randint(1000, 2000, (16,), generator=g).tolist(), "prompt_length": 4}
        for _ in range(4)
    ]
    p = params.resolve_params(
        dict(max_steps=1, batch_size=2, grad_accum=1, logging_steps=1, eval_size=0, save_steps=0,
             warmup_ratio=0.0, max_seq_len=16, optim="adamw_torch", no_learning_steps=0,
             bf16=True, model_dtype="float32", master_weights=False),
        "finetune",
    )  # fmt: skip
    trainer = loop.setup(
        loop.Spec(tmp_path, "autocast", pad_token_id=11, recipe=Recipe(p)),
        model=model, train_dataset=rows, eval_dataset=None,
    )  # fmt: skip
    assert trainer.master is None and next(model.parameters()).dtype == torch.float32
    seen, head_rows = [], []
    layer = model.get_decoder().layers[0].mlp.down_proj
    layer.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    head = model.get_output_embeddings()
    head.register_forward_hook(lambda mod, args, out: head_rows.append(tuple(args[0].shape)))
    loop.train(trainer)
    assert seen and set(seen) == {torch.bfloat16}
    # the fast head: lm_head on the (2 x 12) labelled positions only, not on every position
    assert head_rows == [(2 * (16 - 4), head.in_features)]


@pytest.mark.slow
def test_the_loop_reads_losses_only_at_a_step_that_logs_evaluates_saves_or_ends(
    tiny_model_dir, sft_file, tmp_path, monkeypatch
):
    """No host sync on the steps between: 7 steps logging every 3 (and the first), evaluating at
    6, saving at 4, read at steps 1, 3, 4, 6 and 7 only."""
    from ablate.core.training.monitor import StopRules

    read_at = []
    real = StopRules.nonfinite

    def nonfinite(self):
        read_at.append(self._micro[-1][0])
        return real(self)

    monkeypatch.setattr(StopRules, "nonfinite", nonfinite)
    params = {**FAST, "max_steps": 7, "logging_steps": 3, "eval_steps": 6, "save_steps": 4}
    causal_finetune(params, tiny_model_dir, sft_file, tmp_path / "o")
    assert read_at == [1, 3, 4, 6, 7]
