"""The frozen pair and its losses (ablate.bridge.pair): InfoNCE in groups (``infonce_group``, more
rows per process: the data-parallel loss, fast); on the micro pair: both models frozen, the
training forward without a KV cache, the latent mode's input.

The data-parallel equivalence through torchrun itself (one process x 4 rows in groups of 2 =
two processes x 2 rows) is tests/bridge/test_parallel.py's loss-curve test."""

from __future__ import annotations

import torch
from bridge_fixtures import MICRO_PARAMS

from ablate.bridge import evaluate, world
from ablate.bridge import params as bridge_params
from ablate.bridge import translator as tr
from ablate.bridge.pair import infonce, load_pair

ROWS, GROUP, DIM, TEMPERATURE = 40, 10, 32, 0.07


def _pooled(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    soft = torch.randn(ROWS, DIM, generator=g, dtype=torch.float32, requires_grad=True)
    return soft, torch.randn(ROWS, DIM, generator=g, dtype=torch.float32)


def test_groups_of_one_process_are_the_processes_losses_and_gradients():
    """40 rows in groups of 10 = the mean of 4 processes' losses over 10 rows each (DDP's
    gradient average), loss and gradient, to float32 tolerance."""
    soft, prompt = _pooled(0)
    grouped = infonce(soft, prompt, TEMPERATURE, GROUP)
    (grad_grouped,) = torch.autograd.grad(grouped, soft)
    shares = [
        infonce(soft[i : i + GROUP], prompt[i : i + GROUP], TEMPERATURE, GROUP)
        for i in range(0, ROWS, GROUP)
    ]
    separate = torch.stack(shares).mean()
    (grad_separate,) = torch.autograd.grad(separate, soft)
    torch.testing.assert_close(grouped, separate, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad_grouped, grad_separate, rtol=1e-5, atol=1e-7)
    # the whole batch as one group is another loss: its negatives are all 39 other rows
    whole = infonce(soft, prompt, TEMPERATURE, ROWS)
    assert not torch.allclose(whole, grouped, rtol=1e-3)


def test_one_group_is_the_batch_loss_as_before():
    """A group of the whole batch (the default) is the single in-batch cross-entropy, bit for bit."""
    soft, prompt = _pooled(1)
    a = torch.nn.functional.normalize(soft, dim=-1)
    b = torch.nn.functional.normalize(prompt, dim=-1)
    before = torch.nn.functional.cross_entropy(a @ b.T / TEMPERATURE, torch.arange(ROWS))
    assert torch.equal(infonce(soft, prompt, TEMPERATURE, ROWS), before)


def test_latent_mode_feeds_no_question_text(bridge_cards, bridge_world):
    p = bridge_params.check(bridge_params.resolve(MICRO_PARAMS))
    pair = load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k", p)
    item = world.load_dataset(bridge_world["gsm8k_test"], "gsm8k")[0]
    before, after = evaluate.latent_target_ids(pair.tgt_tok)
    assert before == [pair.tgt_tok.bos_token_id]
    assert pair.tgt_tok.decode(after).strip() == world.ANSWER_CUE
    soft = torch.zeros(1, p.K, pair.target.config.hidden_size)
    embeds, mask, n = pair.latent_embeds(soft)
    assert embeds.shape[1] == n == 1 + p.K + len(after)  # nothing but BOS, K soft, the cue
    emb = pair.target.get_input_embeddings()
    expect = emb(torch.tensor(after))
    assert torch.equal(embeds[0, 1 + p.K :], expect)
    fed = pair.fed_latent(item)["target input (around the soft tokens)"]
    assert item["question"] not in fed and fed.strip() == world.ANSWER_CUE


def test_frozen_models_only_translator_learns(bridge_cards):
    p = bridge_params.check(bridge_params.resolve(MICRO_PARAMS))
    pair = load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k", p)
    for m in (pair.source, pair.target):
        assert not m.training and not any(t.requires_grad for t in m.parameters())


def test_training_forward_fills_no_kv_cache(bridge_cards, bridge_world, monkeypatch):
    """The training loss runs the frozen target without a KV cache (a hub model's config asks
    for one: a training forward would only fill it, and compiled layers recompile per layer on
    it) and with its layers compiled when the pair says so (train.fit: on CUDA)."""
    from ablate.core.training import speed

    p = bridge_params.check(bridge_params.resolve(MICRO_PARAMS))
    pair = load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k", p)
    pair.target.config.use_cache = True  # as a hub model's config says
    calls, switched = [], []
    body = pair.target.base_model
    forward = body.forward
    monkeypatch.setattr(body, "forward", lambda *a, **k: calls.append(k) or forward(*a, **k))
    monkeypatch.setattr(
        speed, "layers_compiled", lambda model, on=True: switched.append(on) or _nothing()
    )
    items = world.load_dataset(bridge_world["gsm8k_train"], "gsm8k")[:2]
    translator = tr.BottleneckedGatedTranslator(
        d_src=pair.source.config.hidden_size,
        d_tgt=pair.target.config.hidden_size,
        target_rms=1.0,
        **{k: getattr(p, k) for k in tr.ARCH_KEYS},
    )
    for compiled in (False, True):
        pair.compiled = compiled
        pair.loss(translator, items, 1)
    assert calls and all(k.get("use_cache") is False for k in calls)
    assert switched == [False, True]


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def test_the_benchmark_pair_takes_a_variant_whose_group_is_its_batch():
    """bench/bridge_work.pipeline_pair, the pair bench/bridge_speed.py's ``train`` builds for each
    variant: a variant of 2 rows in InfoNCE groups of 2 (``--rows 4 2 --group 2``'s second) is one
    group, whose canonical spelling is ``infonce_group: null``; the pair takes it resolved."""
    import bridge_work

    s = bridge_work.setup("tiny")
    models = [bridge_work.build_lm(s.cfgs[r], torch.float32, torch.device("cpu")) for r in s.cfgs]
    s.p = {**s.p, "batch_size": 2, "infonce_group": 2}
    pair, items = bridge_work.pipeline_pair(s, models, 2)
    assert len(items) == 2
    assert pair.p.batch_size == 2 and pair.p.infonce_group is None
