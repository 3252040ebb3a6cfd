"""The generation engine (ablate.core.models.generation) decodes the same tokens as the bridge's old
path.

The reference is transformers' ``generate`` exactly as ``ablate.bridge.evaluate`` called it at
9d9d427: the latent evaluation one ``eval_batch_size`` chunk at a time, every text baseline of
the inference benchmark one item at a time (batch 1), prompts fed as embeddings. The engine
batches across items (length buckets, left padding); greedy tokens must not change.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import replace

import pytest
import torch
from bridge_fixtures import MICRO_PARAMS
from helpers import tiny_llama
from references import transformers_generate

from ablate.bridge import evaluate, world
from ablate.bridge import params as bridge_params
from ablate.bridge import translator as tr
from ablate.bridge.pair import load_pair
from ablate.core.models import generation

# Micro models: one OpenMP thread (a second one only adds barrier waits: the engine's old-path
# comparison took 8 s on an idle 2-core machine, 62-237 s beside other jobs).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def old_generate(model, tok, embeds, mask, p, eos=None) -> list[list[int]]:
    """9d9d427's ``generate_from_embeds``: new tokens up to and including the first EOS."""
    eos = tok.eos_token_id if eos is None else eos
    kw = dict(
        max_new_tokens=p.max_new_tokens,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=eos,
    )
    if p.hygiene:
        kw.update(repetition_penalty=1.1, no_repeat_ngram_size=3)
    with torch.no_grad():
        out = model.generate(inputs_embeds=embeds, attention_mask=mask, **kw).tolist()
    return [generation.trim(row, eos) for row in out]


def old_from_ids(model, tok, ids, p, eos=None) -> list[int]:
    """9d9d427's ``generate_from_ids`` at batch 1 (the inference benchmark's text baselines)."""
    with torch.no_grad():
        embeds = model.get_input_embeddings()(torch.tensor([ids]))
    mask = torch.ones(1, len(ids), dtype=torch.long)
    return old_generate(model, tok, embeds, mask, p, eos)[0]


@contextmanager
def gpu_path(exact: bool = True):
    """The engine's CUDA path on this CPU, the test's control: its two device decisions turned
    (``uses_static``: the static cache, so embedding prompts go through the engine's own loop,
    ablate.core.models.decode_loop, uncompiled on CPU; ``exact_lengths``: one-length batches as the
    CPU's engine, or padded ones as the GPU's)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(generation, "uses_static", lambda model, dec: True)
        mp.setattr(generation, "exact_lengths", lambda model: exact)
        yield


def own_loop(model, prompts, dec) -> list[list[int]]:
    """The static path through the engine's own loop, in exact-length batches."""
    with gpu_path():
        return generation.generate(model, prompts, dec)


@pytest.fixture(scope="module")
def pair_items(bridge_cards, bridge_world):
    torch.manual_seed(0)
    out = {}
    for kind, split in (("gsm8k", "gsm8k_test"), ("qa", "qa_test")):
        p = bridge_params.check(
            bridge_params.resolve({**MICRO_PARAMS, "max_new_tokens": 24, "eval_batch_size": 3})
        )
        pair = load_pair(bridge_cards["source"], bridge_cards["target"], kind, p)
        translator = tr.build(p, pair.source, pair.target).eval()
        out[kind] = (pair, translator, world.load_dataset(bridge_world[split], kind))
    return out


@pytest.mark.parametrize(
    "kind, hygiene",
    [
        ("gsm8k", True),  # the fast tier's case: hygiene on, rows that stop early
        pytest.param("gsm8k", False, marks=pytest.mark.slow),
        pytest.param("qa", True, marks=pytest.mark.slow),
        pytest.param("qa", False, marks=pytest.mark.slow),
    ],
)
def test_engine_tokens_equal_the_old_path(pair_items, kind, hygiene):
    pair, translator, items = pair_items[kind]
    p = replace(pair.p, hygiene=hygiene)
    # latent evaluation: the old path decoded each eval_batch_size chunk as one batch
    rows = pair.latent_rows(translator, items)
    old = []
    for i in range(0, len(rows), p.eval_batch_size):
        embeds = torch.stack(rows[i : i + p.eval_batch_size])
        mask = torch.ones(embeds.shape[:2], dtype=torch.long)
        old.extend(old_generate(pair.target, pair.tgt_tok, embeds, mask, p))
    new = generation.generate(pair.target, rows, evaluate.decoding(p, pair.tgt_tok))
    assert new == old
    assert own_loop(pair.target, rows, evaluate.decoding(p, pair.tgt_tok)) == old
    # text baselines: the old path decoded one item at a time; the engine pads and buckets
    texts = {
        "source": [pair.source_ids(i) for i in items],
        "target": [pair.prompt_ids(i) for i in items],
        "budget": [pair.prompt_ids(i)[:3] + evaluate.cue_ids(pair.tgt_tok) for i in items],
    }
    assert len({len(x) for x in texts["target"]}) > 1  # the batches are padded
    varied = 0  # prompt sets whose rows stop at different steps
    for which, id_lists in texts.items():
        model, tok = (
            (pair.source, pair.src_tok) if which == "source" else (pair.target, pair.tgt_tok)
        )
        prompts = evaluate.embed_ids(model, id_lists)
        old = [old_from_ids(model, tok, ids, p) for ids in id_lists]
        # a generated token as EOS where rows then stop at different steps (the batch runs on)
        eos = next((
            t
            for t, _ in Counter(t for row in old for t in row).most_common()
            if len({len(generation.trim(row, t)) for row in old}) > 1
        ), None)  # fmt: skip
        if eos is None:  # every row the same answer (micro models): no early stop to test here
            eos = tok.eos_token_id
        stopped = [old_from_ids(model, tok, ids, p, eos) for ids in id_lists]
        varied += len({len(r) for r in stopped}) > 1
        for bs in (1, 3, len(id_lists)):
            dec = evaluate.decoding(p, tok, bs)
            assert generation.generate(model, prompts, dec) == old, (which, bs)
            assert own_loop(model, prompts, dec) == old, (which, bs, "own")
            dec = replace(dec, eos_token_id=eos)
            assert generation.generate(model, prompts, dec) == stopped, (which, bs, "eos")
            got = own_loop(model, prompts, dec)
            assert got == stopped, (which, bs, "own, eos")
    # early stops exercised (without hygiene the micro models answer every QA item alike)
    assert varied or (kind, hygiene) == ("qa", False)


@pytest.mark.parametrize("cache", [None, "static"])
def test_left_padding_changes_only_rounding(pair_items, cache):
    """The padded batches of the GPU path (left padding, the static cache): each row's logits at
    every step are its logits alone up to float rounding (position ids from the mask, padded
    keys masked, the static cache's unused slots masked)."""
    pair, _, items = pair_items["gsm8k"]
    model = pair.source
    prompts = evaluate.embed_ids(model, [pair.source_ids(i) for i in items])
    assert len({len(x) for x in prompts}) > 1
    batch, mask = generation.left_pad(prompts, pair.src_tok.pad_token_id)
    kw = dict(max_new_tokens=8, do_sample=False, output_logits=True, return_dict_in_generate=True,
              pad_token_id=0, eos_token_id=None)  # fmt: skip
    with torch.no_grad():
        padded = model.generate(
            inputs_embeds=batch, attention_mask=mask, cache_implementation=cache, **kw
        )
        for r, x in enumerate(prompts):
            alone = model.generate(inputs_embeds=x[None], **kw)
            assert torch.equal(padded.sequences[r], alone.sequences[0]), r
            for step, (lp, la) in enumerate(zip(padded.logits, alone.logits, strict=True)):
                assert torch.allclose(lp[r], la[0], atol=1e-5, rtol=0), (r, step)


def test_static_cache_decodes_the_eager_tokens_on_cpu(pair_items, monkeypatch):
    """The engine's GPU path (static cache; transformers compiles it on CUDA only) run on CPU in
    exact-length batches: the eager path's tokens, hygiene on."""
    import torch._dynamo.config as dynamo

    pair, _, items = pair_items["gsm8k"]
    limits = []  # torch's recompile limit while each batch decodes
    batch = generation.generate_batch

    def recording(*args, **kwargs):
        limits.append(dynamo.recompile_limit)
        return batch(*args, **kwargs)

    monkeypatch.setattr(generation, "generate_batch", recording)
    before = dynamo.recompile_limit
    for model, tok, ids in (
        (pair.source, pair.src_tok, [pair.source_ids(i) for i in items]),
        (pair.target, pair.tgt_tok, [pair.prompt_ids(i) for i in items]),
    ):
        prompts = evaluate.embed_ids(model, ids)
        dec = evaluate.decoding(pair.p, tok, 4)
        assert not generation.uses_static(model, dec)
        eager = generation.generate(model, prompts, dec)
        with gpu_path():
            assert generation.uses_static(model, dec)
            assert generation.generate(model, prompts, dec) == eager
    # the static path keeps a compiled step per shape: torch's default of 8 would drop to eager;
    # raised for its decoding only
    assert max(limits) >= generation.RECOMPILE_LIMIT > before == min(limits)
    assert dynamo.recompile_limit == before


def test_buckets_restore_order():
    lengths = [5, 2, 5, 1, 3, 2]
    batches = generation.buckets(lengths, 4)
    assert batches == [[3, 1, 5, 4], [0, 2]]  # sorted by length, ties in input order
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))


def test_left_pad_fills_rows_and_masks():
    a, b = torch.tensor([7, 8, 9]), torch.tensor([4])
    batch, mask = generation.left_pad([a, b], pad_token_id=0, rows=3)
    assert batch.tolist() == [[7, 8, 9], [0, 0, 4], [0, 0, 4]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 0, 1]]
    e = torch.ones(2, 4)
    batch, mask = generation.left_pad([e, e[:1]], pad_token_id=5)
    assert batch.shape == (2, 2, 4) and batch[1, 0].abs().sum() == 0  # embeddings pad with 0


def test_bench_generate_tiny_shape_runs_on_cpu(tmp_path, monkeypatch):
    """bench/bench_generate.py --shape tiny on CPU (seconds): every section, its table file, and
    the measurement rows the planner would read (flagged as CPU-only)."""
    import importlib.util
    from pathlib import Path

    import yaml

    bench_dir = Path(__file__).resolve().parents[3] / "bench"
    monkeypatch.syspath_prepend(str(bench_dir))  # its modules, as when run as a script
    spec = importlib.util.spec_from_file_location("bench_generate", bench_dir / "bench_generate.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "g.md"
    args = ["--shape", "tiny", "--batches", "1", "3", "--new", "4", "--prompt", "6",
            "--eval-items", "5", "--state-items", "5", "--out", str(out)]  # fmt: skip
    assert bench.main(args) == 0
    text = out.read_text()
    for section in ("## decode", "## eval", "## states", "| engine | 3 |", "| eager | 1 |"):
        assert section in text, section
    rows = yaml.safe_load(text.split("```yaml\n")[1].split("```")[0])
    kinds = sorted((r["kind"], r.get("policy")) for r in rows)
    # batch 1 and 3 of the decode section, the evaluation's batch, source and teacher states
    assert ("generate", "batch1") in kinds and ("generate", "batch3") in kinds
    assert [k for k in kinds if k[0] == "eval"] == [("eval", None)] * 2
    assert all(r["source"].startswith(bench.CPU_FLAG) and str(out) in r["source"] for r in rows)


def test_static_cache_only_where_it_is_faster():
    """On CUDA the static cache up to STATIC_MAX_BATCH rows (the largest batch measured faster
    than the dynamic cache on an H100), the dynamic cache above; never on CPU. Batches of one
    prompt length on CPU, padded on CUDA."""
    from types import SimpleNamespace

    gpu, cpu = (SimpleNamespace(device=torch.device(d)) for d in ("cuda", "cpu"))
    dec = generation.Decoding(max_new_tokens=4, pad_token_id=0, eos_token_id=None)
    small = replace(dec, batch_size=generation.STATIC_MAX_BATCH)
    large = replace(dec, batch_size=generation.STATIC_MAX_BATCH + 1)
    assert generation.uses_static(gpu, small) and not generation.uses_static(gpu, large)
    assert not generation.uses_static(cpu, small)
    assert generation.exact_lengths(cpu) and not generation.exact_lengths(gpu)


def test_packed_attention_is_sdpa_with_repeated_heads():
    """The static decode step's attention: one query token over grouped KV heads, padding masked,
    equals SDPA over repeat_kv copies; several query tokens (prefill, training) go to
    transformers' own SDPA function unchanged."""
    from types import SimpleNamespace

    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    g = torch.Generator().manual_seed(0)
    module = SimpleNamespace(num_key_value_groups=4, is_causal=True, training=False)
    k, v = (torch.randn(3, 2, 11, 8, generator=g, dtype=torch.float64) for _ in range(2))
    q = torch.randn(3, 8, 1, 8, generator=g, dtype=torch.float64)
    mask = torch.ones(3, 1, 1, 11, dtype=torch.bool)
    mask[0, ..., :4] = False  # a left-padded row
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, repeat_kv(k, 4), repeat_kv(v, 4), attn_mask=mask, scale=0.3
    ).transpose(1, 2)
    out, _ = generation.packed_gqa_attention(module, q, k, v, mask, scaling=0.3)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    q5 = torch.randn(3, 8, 5, 8, generator=g, dtype=torch.float64)
    mask5 = torch.ones(3, 1, 5, 11, dtype=torch.bool)
    ref5, _ = sdpa_attention_forward(module, q5, k, v, mask5, scaling=0.3)
    out5, _ = generation.packed_gqa_attention(module, q5, k, v, mask5, scaling=0.3)
    assert torch.equal(out5, ref5)


def test_padded_batches_decode_alike_through_both_loops_with_hygiene():
    """Left-padded embedding prompts with the repetition penalty: transformers' loop (with the
    engine's workaround of its padded-row penalty, generation.embeds_repetition_penalty) and the
    engine's own loop decode the same tokens; without the workaround they did not (a row padded
    by k had its first k generated tokens exempt from the penalty)."""
    model = tiny_llama(64, 128, layers=2, heads=4, kv_heads=2, vocab=96)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randn(12 - i % 6, 64, generator=g) * 0.5 for i in range(8)]
    dec = generation.Decoding(
        max_new_tokens=24, pad_token_id=0, eos_token_id=None, hygiene=True, batch_size=8
    )
    with gpu_path(exact=False):
        hf = transformers_generate(model, prompts, dec)
        own = generation.generate(model, prompts, dec)
        assert hf == own
        # the workaround is what makes them agree here
        plain = generation.embeds_repetition_penalty
        try:
            generation.embeds_repetition_penalty = lambda kwargs: kwargs
            assert transformers_generate(model, prompts, dec) != own
        finally:
            generation.embeds_repetition_penalty = plain


def test_own_loop_keeps_its_cache_between_calls_of_one_shape():
    """The own loop decodes every call of one (rows, cache length) into the same static cache,
    reset (a new cache at new addresses has torch record the compiled step's CUDA graph again):
    the tokens are those of a freshly allocated cache; another shape replaces the cache, and
    ``release`` frees it."""
    from ablate.core.models import decode_loop

    model = tiny_llama(64, 128, layers=2, heads=4, kv_heads=2, vocab=96)
    g = torch.Generator().manual_seed(2)
    first, second = (
        [torch.randn(12 - i % 5, 64, generator=g) * 0.5 for i in range(4)] for _ in "ab"
    )
    dec = generation.Decoding(
        max_new_tokens=16, pad_token_id=0, eos_token_id=None, hygiene=True, batch_size=4,
        cache_len=40,
    )  # fmt: skip

    def keys():
        return decode_loop._CACHES[model][1].layers[0].keys

    generation.release(model)
    with gpu_path(exact=False):
        alone = generation.generate(model, second, dec)  # a fresh cache
        generation.generate(model, first, dec)
        held = keys()
        assert generation.generate(model, second, dec) == alone  # in the first call's cache
        assert keys() is held
        generation.generate(model, second[:2], replace(dec, batch_size=2))
        assert keys().shape[0] == 2  # another shape: another cache, the old one dropped
    generation.release(model)
    assert model not in decode_loop._CACHES
