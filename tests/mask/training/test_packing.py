"""ablate.mask.training.packing: packed SFT steps equal unpacked ones (loss and gradients, every
policy, alone and through the loop with the policy's recipe), the collator's row layout, the mask
backends a packed row needs, flex_attention's BlockMask equal to the dense mask, and the bench's
controls built on it; on CPU (seconds)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from references import policy_loss_sum

from ablate.core.training import loop
from ablate.core.training.data import PolicyCollator
from ablate.core.training.params import IGNORE_INDEX, TrainingConfigError
from ablate.mask import PREFIX_SDPA
from ablate.mask.policies import POLICIES
from ablate.mask.tiny import tiny_ministral3_config
from ablate.mask.training import packing
from ablate.mask.training import policy as mask_policy
from ablate.mask.training.params import resolve_params

# fp32 on CPU: packed and unpacked differ only in float summation order (softmax over more
# masked keys, matmuls over more rows)
LOSS_RTOL = 1e-5
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-6


#: The tiny models: the study's (no window) and two with a window of 3, shorter than every example
#: (4 to 39 tokens), so a window that is one too small or too large changes the loss.
WINDOW = 3
MODELS = ["ministral3", "ministral3+window", "mistral+window"]


def tiny_model(attn: str, kind: str = "ministral3"):
    from transformers import Ministral3ForCausalLM, MistralConfig, MistralForCausalLM

    family, _, windowed = kind.partition("+")
    sizes = dict(
        vocab_size=512,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        # larger than the default 0.02, so that attention moves the loss: with near-uniform
        # logits a wrong mask would change the loss by less than the tolerance
        initializer_range=0.2,
        sliding_window=WINDOW if windowed else None,
    )
    if family == "mistral":
        config, cls = MistralConfig(**sizes, pad_token_id=11), MistralForCausalLM
    else:
        config, cls = tiny_ministral3_config(**sizes), Ministral3ForCausalLM
    assert config.sliding_window == (WINDOW if windowed else None)
    config._attn_implementation = attn
    torch.manual_seed(0)
    model = cls(config).float()
    model.config.use_cache = False
    return model


def examples(n: int = 7, seed: int = 1) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        k = int(torch.randint(4, 40, (1,), generator=g))
        pl = int(torch.randint(1, k, (1,), generator=g))
        ids = torch.randint(12, 512, (k,), generator=g).tolist()
        out.append({"input_ids": ids, "prompt_length": pl})
    return out


def grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def unpacked_step(model, exs, policy, micro: int):
    """Today's path: right-padded micro-batches of ``micro`` examples, each loss sum divided by
    the response tokens of the whole step (as the loop's step divides), grads accumulated."""
    model.zero_grad()
    batches = [PolicyCollator(11)(exs[i : i + micro]) for i in range(0, len(exs), micro)]
    total = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in batches)
    loss = 0.0
    for b in batches:
        s, _ = policy_loss_sum(model, b, policy)
        (s / total).backward()
        loss += float(s.detach() / total)
    return loss, grads(model)


def packed_step(model, exs, policy, row_tokens: int):
    model.zero_grad()
    batch = packing.PackedCollator(11, row_tokens, pad_to_multiple_of=16)(exs)
    total = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    loss = 0.0
    for row in packing.split_rows(batch):
        s, _ = policy_loss_sum(model, row, policy)
        (s / total).backward()
        loss += float(s.detach() / total)
    return loss, grads(model), batch


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("attn", ["eager", "sdpa", PREFIX_SDPA])
@pytest.mark.parametrize("policy", POLICIES)
def test_packed_step_equals_unpacked(policy, attn, kind):
    model = tiny_model(attn, kind)
    exs = examples()
    # unpacked: 4 micro-batches (grad accumulation); packed: rows of <= 96 tokens, so the step
    # needs several rows, each holding several examples
    ref_loss, ref_grads = unpacked_step(model, exs, policy, micro=2)
    loss, got, batch = packed_step(model, exs, policy, row_tokens=96)
    assert batch["input_ids"].shape[0] > 1
    assert (batch[packing.SEQ_IDS].max(-1).values >= 1).any()  # rows of several examples
    assert loss == pytest.approx(ref_loss, rel=LOSS_RTOL)
    assert set(got) == set(ref_grads)
    for name in ref_grads:
        torch.testing.assert_close(
            got[name], ref_grads[name], rtol=GRAD_RTOL, atol=GRAD_ATOL, msg=name
        )


def test_packing_is_not_a_no_op():
    """The equality above is not vacuous: the same packed row under a plain causal mask (one long
    document, examples attending to earlier ones) is far off in loss and gradients."""
    model = tiny_model("sdpa")
    exs = examples()
    ref, ref_grads = unpacked_step(model, exs, "causal", micro=2)
    batch = packing.PackedCollator(11, 10_000)(exs)
    leaky = {k: v for k, v in batch.items() if k not in (packing.SEQ_IDS, packing.PROMPT_MASK)}
    model.zero_grad()
    s, n = policy_loss_sum(model, leaky, "causal")
    (s / n).backward()
    assert abs(float(s.detach() / n) - ref) > 1e-3 * ref
    w = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(model.get_parameter(w).grad, ref_grads[w], rtol=0.1, atol=1e-4)


def test_collator_layout():
    exs = [
        {"input_ids": [1, 5, 6, 7], "prompt_length": 2},
        {"input_ids": [1, 8, 9], "prompt_length": 1},
        {"input_ids": [1, 4, 4, 4, 4], "prompt_length": 3},
    ]
    b = packing.PackedCollator(0, row_tokens=8, pad_to_multiple_of=4)(exs)
    assert b["input_ids"].tolist() == [[1, 5, 6, 7, 1, 8, 9, 0], [1, 4, 4, 4, 4, 0, 0, 0]]
    assert b["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2, 0], [0, 1, 2, 3, 4, 0, 1, 2]]
    assert b[packing.SEQ_IDS].tolist() == [[0, 0, 0, 0, 1, 1, 1, -1], [0, 0, 0, 0, 0, -1, -1, -1]]
    x = IGNORE_INDEX
    # prompts, pads and every example's first token are not targets
    assert b["labels"].tolist() == [[x, x, 6, 7, x, 8, 9, x], [x, x, x, 4, 4, x, x, x]]
    assert b[packing.PROMPT_MASK].long().tolist() == [
        [1, 1, 0, 0, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0],
    ]
    with pytest.raises(TrainingConfigError, match="packing_row_tokens"):
        packing.PackedCollator(0, row_tokens=4)(exs)


def _params(packed: bool, **over):
    return resolve_params(
        dict(
            max_steps=3,
            batch_size=1,
            grad_accum=5,
            # SGD: Adam would blow float noise in near-zero gradients up to full-size updates
            learning_rate=0.5,
            lr_scheduler="constant",
            optim="sgd",
            weight_decay=0.0,
            warmup_ratio=0.0,
            max_seq_len=64,
            eval_size=0,
            logging_steps=1,
            no_learning_steps=0,
            plateau_patience=0,
            packing=packed,
            packing_row_tokens=64,
            attn_implementation=PREFIX_SDPA,
            **over,
        ),
        "finetune",
    )


def _setup(tmp_path, name, p, policy: str) -> loop.Trainer:
    """The run the pipeline builds (loop.setup with the policy's recipe), without saves."""
    return loop.setup(
        loop.Spec(
            tmp_path / name,
            name,
            pad_token_id=11,
            recipe=mask_policy.recipe(policy, dataclasses.replace(p, save_steps=0), 11),
        ),
        model=tiny_model(PREFIX_SDPA),
        train_dataset=examples(15, seed=3),
        eval_dataset=None,
    )


def _train(tmp_path, name, packed: bool, policy: str):
    trainer = _setup(tmp_path, name, _params(packed), policy)
    batches = trainer.spec.recipe.micro_batches(loop.step_examples(trainer, 0), trainer.micro)
    loop.train(trainer)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    weights = {n: t.detach().clone() for n, t in trainer.model.state_dict().items()}
    return losses, weights, batches


@pytest.mark.parametrize("policy", ["causal", "prefix_bidir"])
def test_loop_packed_run_equals_unpacked(tmp_path, policy):
    """Through loop.setup with the policy's recipe and loop.train: batch 1 x grad_accum 5 unpacked
    vs the same 5 examples per step packed (rows of 64 tokens: several per step): same logged
    losses, same weights after 3 steps."""
    ref_losses, ref_weights, ref_batches = _train(tmp_path, "unpacked", False, policy)
    losses, weights, batches = _train(tmp_path, "packed", True, policy)
    # the unpacked step is 5 micro-batches of one example; the packed one fewer rows, one of
    # several examples: the two runs took different paths
    assert len(ref_batches) == 5 and not any(packing.is_packed(b) for b in ref_batches)
    assert 1 < len(batches) < 5 and all(packing.is_packed(b) for b in batches)
    assert any(int(b[packing.SEQ_IDS].max()) >= 1 for b in batches)
    assert len(losses) == len(ref_losses) == 3
    assert abs(ref_losses[-1] - ref_losses[0]) > 1e-2  # the steps moved the weights
    assert losses == pytest.approx(ref_losses, rel=1e-4)
    for n in ref_weights:
        torch.testing.assert_close(weights[n], ref_weights[n], rtol=1e-4, atol=1e-5, msg=n)


def _weight_delta(trainer: loop.Trainer) -> dict[str, torch.Tensor]:
    """One loop.step on the trainer's first examples: each weight's change (SGD at learning rate
    0.5: -0.5 x the step's gradient)."""
    before = {n: t.detach().clone() for n, t in trainer.model.named_parameters()}
    loop.step(trainer, loop.step_examples(trainer, 0))
    return {n: t.detach() - before[n] for n, t in trainer.model.named_parameters()}


@pytest.mark.parametrize("policy", POLICIES)
def test_loop_packed_step_equals_unpacked_gradients(tmp_path, policy):
    """One loop.step, every policy, no clip: the packed step's update (its gradient, under SGD)
    equals the unpacked step's with grad accumulation over 5 micro-batches, and both equal
    -lr x the reference step's gradient (unpacked_step: every micro-batch's loss divided by the
    whole step's labelled tokens)."""
    ref_trainer = _setup(tmp_path, "unpacked", _params(False, max_grad_norm=0), policy)
    exs = loop.step_examples(ref_trainer, 0)
    _, want = unpacked_step(tiny_model(PREFIX_SDPA), exs, policy, micro=1)
    ref = _weight_delta(ref_trainer)
    got = _weight_delta(_setup(tmp_path, "packed", _params(True, max_grad_norm=0), policy))
    assert any(float(d.abs().max()) > 1e-4 for d in ref.values())  # the step moved the weights
    for name, grad in want.items():
        torch.testing.assert_close(ref[name], -0.5 * grad, rtol=GRAD_RTOL, atol=GRAD_ATOL)
        torch.testing.assert_close(got[name], ref[name], rtol=GRAD_RTOL, atol=GRAD_ATOL, msg=name)


def test_packed_needs_a_mask_backend():
    model = tiny_model("sdpa")
    model.config._attn_implementation = "flash_attention_2"
    batch = packing.PackedCollator(11, 256)(examples(3))
    with pytest.raises(TrainingConfigError, match="attn_implementation"):
        packing.packed_mask(model, batch, "causal", torch.float32)


def test_the_leaky_control_lets_examples_see_each_other():
    """bench/bench_packing.py's controls: the leaky row's forward (the row as one document) lets
    the examples of a row see each other, and only that; the -hfmask row's forward carries HF's
    composed mask; the policy's own forward carries packed_mask's."""
    import bench_packing

    model = tiny_model("sdpa")
    batch = packing.PackedCollator(11, 96, pad_to_multiple_of=16)(examples(9))
    right = packing.packed_mask(model, batch, "prefix_bidir", torch.float32)
    given = bench_packing.leaky_forward(model, batch, "prefix_bidir")
    default = packing.packed_forward_kwargs(model, batch, "prefix_bidir")
    assert torch.equal(default["attention_mask"], right)
    assert not torch.equal(given["attention_mask"], right)
    inside = given["attention_mask"]
    assert bool((inside & ~right).any()) and not bool((right & ~inside).any())  # only more seen
    composed = packing.composed_mask(model, batch, "prefix_bidir", torch.float32)
    hf = bench_packing.hfmask_forward(model, batch, "prefix_bidir")
    assert torch.equal(hf["attention_mask"], composed)


def test_bench_packing_tiny_shape(tmp_path, monkeypatch):
    """bench/bench_packing.py at --shape tiny on CPU (seconds): runs, writes its JSON, and the
    packed row's per-step losses equal the default row's (fp32 here; the GPU run checks bf16)."""
    import json
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parents[3] / "bench"))
    import bench_finetune
    import bench_packing

    # main() resizes the shape and moves the device: keep both for other tests
    monkeypatch.setattr(bench_finetune, "SHAPE", dict(bench_finetune.SHAPE))
    monkeypatch.setattr(bench_finetune, "DEVICE", bench_finetune.DEVICE)
    out = tmp_path / "packing.json"
    only = ["--only", "seed-default", "seed-packed-sdpa", "seed-packed-leaky"]
    assert bench_packing.main(["--shape", "tiny", "--steps", "2", *only, "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {(r["row"], r["policy"]) for r in rows} == {
        (n, p) for n in only[1:3] for p in ("causal", "prefix_bidir")
    } | {("seed-packed-leaky", "causal")}
    for r in rows:
        assert r["tokens_per_step"] > 0 and r["s_per_step"] > 0
        leaky = r["row"] == "seed-packed-leaky"  # a wrong mask: the loss check must see it
        assert (
            (r["loss_rel_diff_vs_default"] > 1e-4)
            if leaky
            else r["loss_rel_diff_vs_default"] < 1e-5
        ), r


@pytest.fixture
def uncompiled_block_masks(monkeypatch):
    """BlockMasks built uncompiled, by HF's builders and by packing's (compiling costs ~15 s on
    a CPU; the mask is the same)."""
    from torch.nn.attention import flex_attention
    from transformers import masking_utils

    build = flex_attention.create_block_mask

    def uncompiled(*args, **kw):
        return build(*args, **{**kw, "_compile": False})

    monkeypatch.setattr(masking_utils, "create_block_mask", uncompiled)
    monkeypatch.setattr(flex_attention, "create_block_mask", uncompiled)


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("policy", POLICIES)
def test_flex_block_mask_equals_the_dense_mask(policy, kind, uncompiled_block_masks):
    """flex_attention (GPU only) gets a BlockMask of key spans (packing.key_spans); its mask
    function, evaluated densely on CPU, is the sdpa mask the equality test above proves, and the
    BlockMask HF's builders compose (packing.composed_mask): several rows, pads, windows."""
    from torch.nn.attention import flex_attention

    model = tiny_model("sdpa", kind)
    batch = packing.PackedCollator(11, 96, pad_to_multiple_of=16)(examples(9))
    rows, width = batch["input_ids"].shape
    assert rows > 1 and bool((batch[packing.SEQ_IDS] == -1).any())
    dense = packing.packed_mask(model, batch, policy, torch.float32)
    model.config._attn_implementation = "flex_attention"

    def evaluated(block_mask):
        return flex_attention.create_mask(block_mask.mask_mod, rows, None, width, width, "cpu")

    block_mask = packing.packed_mask(model, batch, policy, torch.float32)
    assert dense.dtype == torch.bool and torch.equal(evaluated(block_mask), dense)
    composed = packing.composed_mask(model.config, batch, policy, torch.float32)
    assert torch.equal(evaluated(composed), dense)
    # the same blocks skipped, partial and full
    for attr in ("kv_num_blocks", "full_kv_num_blocks"):
        assert torch.equal(getattr(block_mask, attr), getattr(composed, attr)), attr


def test_packed_mask_blocks_counts_the_non_empty_tiles(monkeypatch, uncompiled_block_masks):
    """bench/packed_mask_blocks.py (cited by bench/results/mfu_h100.md): its BlockMask block counts
    equal the non-empty 128 x 128 tiles of each policy's dense mask, written out here."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parents[3] / "bench"))
    import packed_mask_blocks as pmb

    lengths = [(300, 120), (90, 30), (500, 200), (40, 39)]
    batch = pmb.packed_row(lengths)
    seq, prompt = batch[packing.SEQ_IDS][0], batch[packing.PROMPT_MASK][0]
    q, kv = torch.arange(len(seq))[:, None], torch.arange(len(seq))[None, :]
    same, causal = seq[q] == seq[kv], kv <= q
    dense = {
        "causal": same & causal,
        "prefix_bidir": same & (causal | (prompt[q] & prompt[kv])),
        "prefill_bidir": same,
    }
    tiles = -(-len(seq) // 128)
    config = pmb._config()
    for policy, d in dense.items():
        padded = torch.zeros(tiles * 128, tiles * 128, dtype=torch.bool)
        padded[: len(seq), : len(seq)] = d
        non_empty = int(padded.view(tiles, 128, tiles, 128).any(3).any(1).sum())
        m = packing.packed_mask(config, batch, policy, torch.bfloat16)
        assert int(m.kv_num_blocks.sum() + m.full_kv_num_blocks.sum()) == non_empty, policy


def test_bench_packing_counts_the_frames_compiled(monkeypatch):
    """bench/bench_packing.py's ``compiled_frames`` (a row's ``window_compiles`` and each
    process's ``compiles_by_rank``): one more for each compile, a new shape's recompile too."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parents[3] / "bench"))
    import bench_packing

    def double(x):
        return x * 2

    compiled = torch.compile(double, backend="eager", dynamic=False)
    before = bench_packing.compiled_frames()
    compiled(torch.ones(3))
    compiled(torch.ones(3))  # the same shape: no compile
    assert bench_packing.compiled_frames() == before + 1
    compiled(torch.ones(5))  # a new shape: a recompile
    assert bench_packing.compiled_frames() == before + 2
