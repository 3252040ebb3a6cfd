"""The bridge losses' definitions (``nll_labels``, ``kl_reduction``, ``kl_teacher``, ``kl_rows``,
``infonce_prompt``, ``prompt_align``), the batch layout (``padding``) and the soft tokens' rescaling
(``rms_detach``): each original setting against the value its formula in the original script
(LatentWire ``paper_writing/cross_attention.py``, both eras) gives on the micro pair, computed here
with plain torch ops from the model's own forward; and the differences the defaults keep, measured
(fast: one micro pair, a few forwards)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from bridge_fixtures import MICRO_PARAMS
from bridge_work import HeldStates
from references import original_later_kl_rows

from ablate.bridge import evaluate, world
from ablate.bridge import params as bridge_params
from ablate.bridge import translator as tr
from ablate.bridge.pair import load_pair

# KL on from step 1; three rows, one InfoNCE group; OFF: the terms a test turns off
BASE = {**MICRO_PARAMS, "K": 4, "kl_positions": 4, "warmup_steps": 0, "batch_size": 3}
OFF = {"kl_weight": 0.0, "infonce_weight": 0.0, "prompt_align_weight": 0.0}


@pytest.fixture(scope="module")
def micro(bridge_cards, bridge_world):
    """A loader of (pair, translator, items) for given params: a translator whose gates are open
    (its soft tokens depend on the source), in eval mode (no dropout: two forwards agree)."""
    items = world.load_dataset(bridge_world["gsm8k_train"], "gsm8k")[:3]

    def load(**kw):
        p = bridge_params.check(bridge_params.resolve({**BASE, **kw}))
        pair = load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k", p)
        torch.manual_seed(0)
        translator = tr.build(p, pair.source, pair.target).eval()
        with torch.no_grad():
            for gates in translator.gate_parameters():
                gates.fill_(0.7)
        return pair, translator, items

    return load


def _target_logits(pair, embeds) -> torch.Tensor:
    with torch.no_grad():
        return pair.target(inputs_embeds=embeds).logits.float()


def _embed(pair, ids) -> torch.Tensor:
    return pair.target.get_input_embeddings()(torch.as_tensor(ids)).float()


def _original_tail(pair, item) -> list[int]:
    """The original's training text after the soft tokens: tgt_tok(answer.strip()), BOS first."""
    return pair.tgt_tok(str(item["answer"]).strip())["input_ids"]


def test_original_nll_labels_the_bos_with_no_cue_and_no_eos(micro):
    """The original's NLL: HF's loss over the soft tokens + BOS + answer, labels = those ids
    (the BOS predicted by the last soft token), -100 on the soft tokens; here after the
    pipeline's leading <s>."""
    pair, translator, items = micro(**OFF, nll_labels="original")
    item = items[0]
    with torch.no_grad():
        _, parts, _ = pair.loss(translator, [item], 1)
        soft = pair.soft(translator, [item]).float()
    tail = _original_tail(pair, item)
    assert tail[0] == pair.tgt_tok.bos_token_id and tail[-1] != pair.tgt_tok.eos_token_id
    lead = [pair.tgt_tok.bos_token_id]
    embeds = torch.cat([_embed(pair, lead), soft[0], _embed(pair, tail)])[None]
    labels = torch.tensor([[-100] * (1 + soft.shape[1]) + tail])
    with torch.no_grad():
        expected = pair.target(inputs_embeds=embeds, labels=labels).loss
    assert parts["nll"] == pytest.approx(float(expected), rel=1e-5)
    # the default's labels (cue, answer + EOS) are another loss
    pair.p = replace(pair.p, nll_labels="answer")
    with torch.no_grad():
        assert pair.loss(translator, [item], 1)[1]["nll"] != pytest.approx(parts["nll"], rel=1e-3)


def test_later_era_kl_answer_only_teacher_batchmean(micro):
    """The later era's KL: kl_div(log_softmax(bridged[:, K : K + n]), softmax(teacher[:, :n]),
    "batchmean"), the teacher fed the answer alone (BOS + answer), the bridged rows from the
    answer's BOS on; n = kl_tokens. Its batchmean is n x the per-position mean."""
    kw = {"infonce_weight": 0.0, "prompt_align_weight": 0.0, "nll_labels": "original"}
    pair, translator, items = micro(**kw, kl_teacher="answer_only", kl_reduction="batchmean")
    n = BASE["kl_positions"]
    with torch.no_grad():
        _, parts, _ = pair.loss(translator, items, 1)
        soft = pair.soft(translator, items).float()
    tails = [_original_tail(pair, i) for i in items]
    width = min(len(t) for t in tails)  # the original pads; n rows of every answer are real
    assert width > n
    tails = [t[:width] for t in tails]
    lead = _embed(pair, [pair.tgt_tok.bos_token_id])
    embeds = torch.stack(
        [torch.cat([lead, s, _embed(pair, t)]) for s, t in zip(soft, tails, strict=True)]
    )
    bridged = _target_logits(pair, embeds)
    k_soft = 1 + soft.shape[1]  # the original's K_soft: where the answer's BOS is fed
    teacher = _target_logits(pair, _embed(pair, tails))
    expected = F.kl_div(
        F.log_softmax(bridged[:, k_soft : k_soft + n], dim=-1),
        F.softmax(teacher[:, :n], dim=-1),
        reduction="batchmean",
    )
    assert parts["kl"] == pytest.approx(float(expected), rel=1e-4)
    pair.p = replace(pair.p, kl_reduction="mean")
    with torch.no_grad():
        mean = pair.loss(translator, items, 1)[1]["kl"]
    assert parts["kl"] / mean == pytest.approx(n, rel=1e-5)  # every row has n answer positions


def test_early_era_kl_soft_positions_against_the_prompt_only_teacher(micro):
    """The early era's KL: the bridged logits at the first n positions (the soft tokens') against
    the target fed the prompt alone at its first n positions (the answer never read), batchmean;
    here after the leading <s>, n = min(kl_positions, K)."""
    kw = {"infonce_weight": 0.0, "prompt_align_weight": 0.0, "nll_labels": "original"}
    pair, translator, items = micro(**kw, kl_teacher="prompt_only", kl_reduction="batchmean")
    n = min(BASE["kl_positions"], BASE["K"])
    with torch.no_grad():
        _, parts, _ = pair.loss(translator, items, 1)
        soft = pair.soft(translator, items).float()
    lead = _embed(pair, [pair.tgt_tok.bos_token_id])
    bridged = _target_logits(pair, torch.stack([torch.cat([lead, s]) for s in soft]))
    prompts = [pair.prompt_ids(i)[:n] for i in items]
    assert all(len(pr) == n for pr in prompts)
    teacher = _target_logits(pair, _embed(pair, prompts))
    expected = F.kl_div(
        F.log_softmax(bridged[:, 1 : 1 + n], dim=-1),
        F.softmax(teacher, dim=-1),
        reduction="batchmean",
    )
    assert parts["kl"] == pytest.approx(float(expected), rel=1e-4)


def test_per_position_prompt_alignment_is_the_originals(micro):
    """The original's prompt alignment: tgt_tok(prompt, max_length=K) embedded, zero-padded to
    K, diff = (soft - prompt) x mask, sum(diff^2) / mask.sum(); the pooled MSE of the default is
    a far smaller number (measured: the ratio stays above 10 on the micro pair)."""
    kw = {"kl_weight": 0.0, "infonce_weight": 0.0}
    pair, translator, items = micro(**kw, prompt_align="per_position")
    k = BASE["K"]
    with torch.no_grad():
        _, parts, _ = pair.loss(translator, items, 1)
        soft = pair.soft(translator, items).float()
    texts = [world.prompt("gsm8k", i) for i in items]
    enc = pair.tgt_tok(texts, truncation=True, max_length=k)["input_ids"]
    pe = torch.zeros_like(soft)
    mask = torch.zeros(soft.shape[:2] + (1,))
    for r, ids in enumerate(enc):
        pe[r, : len(ids)] = _embed(pair, ids)
        mask[r, : len(ids)] = 1
    expected = ((soft - pe) * mask).pow(2).sum() / mask.sum()
    assert parts["align"] == pytest.approx(float(expected), rel=1e-5)
    pair.p = replace(pair.p, prompt_align="pooled")
    with torch.no_grad():
        pooled = pair.loss(translator, items, 1)[1]["align"]
    assert parts["align"] / pooled > 10


def test_first_k_infonce_prompt_is_the_later_eras(micro):
    """The later era's InfoNCE: the target prompt cut to its first K tokens (max_length=K, BOS
    included), its embeddings mean-pooled, against the mean-pooled soft tokens (cosine / 0.07)."""
    kw = {"kl_weight": 0.0, "prompt_align_weight": 0.0}
    pair, translator, items = micro(**kw, infonce_prompt="first_k")
    with torch.no_grad():
        _, parts, _ = pair.loss(translator, items, 1)
        soft = pair.soft(translator, items).float()
    texts = [world.prompt("gsm8k", i) for i in items]
    enc = pair.tgt_tok(texts, truncation=True, max_length=BASE["K"])["input_ids"]
    assert len({len(ids) for ids in enc}) == 1  # no padding: the original's mean is the same
    pooled = _embed(pair, enc).mean(1)
    logits = F.normalize(soft.mean(1), dim=-1) @ F.normalize(pooled, dim=-1).T / 0.07
    expected = F.cross_entropy(logits, torch.arange(len(items)))
    assert parts["infonce"] == pytest.approx(float(expected), rel=1e-5)
    pair.p = replace(pair.p, infonce_prompt="full")
    with torch.no_grad():
        full = pair.loss(translator, items, 1)[1]["infonce"]
    assert full != pytest.approx(parts["infonce"], rel=1e-4)


def test_pooled_prompt_counts_no_padding(micro):
    """A deliberate fix: the original's early-era InfoNCE averaged the padded prompt embeddings,
    so a row's pooled prompt moved with the batch's longest prompt; here it does not (measured:
    the original's pooled vector of the shortest prompt moves, this one stays)."""
    pair, _, items = micro()
    prompts = [pair.prompt_ids(i) for i in items]
    short = min(range(len(items)), key=lambda r: len(prompts[r]))
    longer = prompts[short] + prompts[short]  # a batch mate longer than the short prompt
    alone = pair.pooled_prompt([prompts[short]])[0]
    beside = pair.pooled_prompt([prompts[short], longer])[0]
    torch.testing.assert_close(alone, beside)
    ids = torch.tensor([prompts[short] + [pair.tgt_tok.pad_token_id] * len(prompts[short])])
    padded_mean = pair.target.get_input_embeddings()(ids).float().mean(1)[0]  # the original's
    assert (padded_mean - alone).norm() > 0.1 * alone.norm()


@pytest.mark.parametrize(
    "key, weight_off",
    [
        ("kl_reduction", "kl_weight"),
        ("kl_teacher", "kl_weight"),
        ("infonce_prompt", "infonce_weight"),
        ("prompt_align", "prompt_align_weight"),
    ],
)
def test_a_definition_of_a_term_that_is_off_splits_no_run(key, weight_off):
    """The definitions are switches: one of a term that is off is reset to its default."""
    other = {"kl_reduction": "batchmean", "kl_teacher": "answer_only"}.get(key)
    other = other or {"infonce_prompt": "first_k", "prompt_align": "per_position"}[key]
    off = {weight_off: 0.0}
    assert bridge_params.resolve({**off, key: other}) == bridge_params.resolve(off)
    assert bridge_params.resolve({key: other})[key] == other


def test_kl_rows_acts_only_where_no_label_follows_the_answer():
    """kl_rows: original adds the row at the answer's last token; under nll_labels: answer that
    row predicts the EOS label and counts either way, a prompt_only teacher never reads the
    answer, and without the KL there is no row: there it is reset, splitting no run."""
    acts = {"nll_labels": "original", "kl_rows": "original"}
    assert bridge_params.resolve(acts)["kl_rows"] == "original"
    for inert in ({"nll_labels": "answer"}, {"kl_teacher": "prompt_only"}, {"kl_weight": 0.0}):
        without = {**acts, **inert, "kl_rows": "answer"}
        assert bridge_params.resolve({**acts, **inert}) == bridge_params.resolve(without)


def test_definitions_at_their_defaults_keep_recorded_params():
    """Runs recorded before the definitions existed keep their params and run ids."""
    p = bridge_params.resolve({})
    names = {"nll_labels", "kl_reduction", "kl_teacher", "infonce_prompt", "prompt_align"}
    names |= {"kl_rows", "padding", "rms_detach"}
    assert names <= set(p) and not names & set(bridge_params.recorded(p))
    q = bridge_params.resolve({"nll_labels": "original"})
    assert bridge_params.recorded(q)["nll_labels"] == "original"


@pytest.mark.parametrize("kl_teacher", ["full", "prompt_only", "answer_only"])
@pytest.mark.parametrize("nll_labels", ["answer", "original"])
@pytest.mark.parametrize(
    "layout", [{}, {"kl_rows": "original", "padding": "left"}], ids=["default", "original"]
)
def test_the_teacher_rows_a_cache_stores_give_the_live_kl(micro, kl_teacher, nll_labels, layout):
    """``Pair.teacher_states`` (what the teacher cache holds) are the rows the live KL compares,
    for each teacher, each labelling, and the original's rows and padding (the cache key holds
    them: caches.teacher_key)."""
    kw = {"infonce_weight": 0.0, "prompt_align_weight": 0.0, **layout}
    pair, translator, items = micro(**kw, kl_teacher=kl_teacher, nll_labels=nll_labels)
    with torch.no_grad():
        live = pair.loss(translator, items, 1)[1]["kl"]
        rows, _ = pair.teacher_states(items)
        stored = replace(pair, teacher_cache=HeldStates(rows)).loss(translator, items, 1)[1]["kl"]
    assert stored == pytest.approx(live, rel=1e-5) and live > 0


def test_the_original_overlay_sets_each_eras_definitions(monkeypatch):
    """config/latentwire-original.yaml over config/latentwire.yaml: the later era's definitions
    for every entry, the early era's for 1b, every run under a run id of its own."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the run ids name the branches: no hub lookup
    import yaml
    from helpers import ROOT, bridge_config
    from snakemake.utils import update_config

    from ablate.bridge import grid
    from ablate.core.config import validate_config

    cfg = yaml.safe_load((ROOT / "config" / "latentwire.yaml").read_text())
    update_config(cfg, yaml.safe_load((ROOT / "config" / "latentwire-original.yaml").read_text()))
    validate_config(cfg)
    assert cfg["results"] != "results/latentwire"
    original = grid.resolve(cfg["bridge"]).entries
    default = grid.resolve(bridge_config("latentwire.yaml")).entries
    assert set(original) == set(default)
    later = {
        "nll_labels": "original",
        "kl_reduction": "batchmean",
        "kl_teacher": "answer_only",
        "kl_rows": "original",
        "padding": "left",
        "rms_detach": True,
    }
    for name, e in original.items():
        p = bridge_params.check(e.params)  # complete: late keys at defaults filled in
        assert {k: getattr(p, k) for k in later} == {
            **later,
            # the early era: kl_rows cannot act (its teacher never reads the answer)
            **({"kl_teacher": "prompt_only", "kl_rows": "answer"} if name == "1b" else {}),
        }
        assert p.infonce_prompt == ("first_k" if p.infonce_weight > 0 else "full")
        assert p.prompt_align == ("per_position" if p.prompt_align_weight > 0 else "pooled")
        assert e.run_id != default[name].run_id
    assert original["1b"].params["prompt_align_weight"] == 0


def test_kl_rows_past_an_answers_end_are_not_counted(micro):
    """A deliberate fix: the later era's KL runs over the padded batch, so a shorter answer's
    pad rows add to the sum; here only rows predicting a real answer token count (measured: the
    pipeline's batchmean is the real rows' sum / rows, the padded sum is another number)."""
    kw = {"infonce_weight": 0.0, "prompt_align_weight": 0.0, "nll_labels": "original"}
    n = 200  # past every answer's end
    pair, translator, items = micro(
        **kw, kl_teacher="answer_only", kl_reduction="batchmean", kl_positions=n
    )
    with torch.no_grad():
        _, parts, _ = pair.loss(translator, items, 1)
        soft = pair.soft(translator, items).float()
    tails = [_original_tail(pair, i) for i in items]
    width = max(len(t) for t in tails)
    assert len({len(t) for t in tails}) > 1 and width < n
    pad = pair.tgt_tok.pad_token_id
    padded = [t + [pad] * (width - len(t)) for t in tails]
    mask = torch.tensor([[int(j < len(t)) for j in range(width)] for t in tails])
    lead = _embed(pair, [pair.tgt_tok.bos_token_id])
    embeds = torch.stack(
        [torch.cat([lead, s, _embed(pair, t)]) for s, t in zip(soft, padded, strict=True)]
    )
    k_soft = 1 + soft.shape[1]
    full_mask = torch.cat([torch.ones(len(items), k_soft, dtype=torch.long), mask], dim=1)
    with torch.no_grad():
        bridged = pair.target(inputs_embeds=embeds, attention_mask=full_mask).logits.float()
        teacher = pair.target(input_ids=torch.tensor(padded), attention_mask=mask).logits.float()
    rows = F.kl_div(
        F.log_softmax(bridged[:, k_soft:], dim=-1), F.softmax(teacher, dim=-1), reduction="none"
    ).sum(-1)  # [B, width]: row j predicts answer token j + 1 (the last real row: none)
    real = torch.tensor([[float(j < len(t) - 1) for j in range(width)] for t in tails])
    assert parts["kl"] == pytest.approx(float((rows * real).sum() / len(items)), rel=1e-4)
    assert parts["kl"] != pytest.approx(float(rows.sum() / len(items)), rel=1e-2)


def test_prompt_alignment_weight_is_applied_once(micro):
    """A deliberate fix: the later era's last script multiplied the alignment by its weight in
    the batch builder and again in the loss (0.001 x 0.001); here the total adds it once."""
    pair, translator, items = micro(kl_weight=0.0, infonce_weight=0.0, prompt_align="per_position")
    with torch.no_grad():
        total, parts, _ = pair.loss(translator, items, 1)
    expected = parts["nll"] + pair.p.prompt_align_weight * parts["align"]
    assert float(total) == pytest.approx(expected, rel=1e-6)


LATER_KL = {
    "infonce_weight": 0.0,
    "prompt_align_weight": 0.0,
    "nll_labels": "original",
    "kl_teacher": "answer_only",
    "kl_reduction": "batchmean",
    "kl_positions": 200,  # past every answer's end: every real row counts
}


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_and_kl_rows_are_the_later_eras_batch(micro, side):
    """The original's batch padded on ``side``: under padding: <side> and kl_rows: original the
    KL is its term over the real rows of its window (the BOS and every answer token, the last one
    included: min(kl_tokens, 1 + len(answer)) rows); its pad rows, which the original's window
    also sums (right: past an answer's end; left: before a shorter answer, where the teacher's
    rows attend to nothing), are the fault that stays fixed. kl_rows: answer counts one row
    fewer per item (the one at the answer's last token)."""
    pair, translator, items = micro(**LATER_KL, padding=side, kl_rows="original")
    with torch.no_grad():
        _, parts, _ = pair.loss(translator, items, 1)
        soft = pair.soft(translator, items).float()
    rows, real = original_later_kl_rows(pair, soft, items, side)
    assert len(set(real.sum(1).tolist())) > 1  # unequal lengths: pad rows in the batch
    b = len(items)
    assert parts["kl"] == pytest.approx(float((rows * real).sum() / b), rel=1e-4)
    assert parts["kl"] != pytest.approx(float(rows.sum() / b), rel=1e-2)  # the original's
    last = real * (real.cumsum(1) == real.sum(1, keepdim=True))  # each row's last real token
    pair.p = replace(pair.p, kl_rows="answer")
    with torch.no_grad():
        fewer = pair.loss(translator, items, 1)[1]["kl"]
    assert fewer == pytest.approx(float((rows * (real - last)).sum() / b), rel=1e-4)


def test_left_padding_is_the_originals_nll(micro):
    """The original's NLL on its left-padded batch (HF's loss over soft tokens + pads + BOS +
    answer, pads and soft tokens unlabelled): a shorter answer sits after masked pad positions,
    its BOS predicted from the last of them; padding: left gives it, right another number."""
    pair, translator, items = micro(**OFF, nll_labels="original", padding="left")
    with torch.no_grad():
        _, parts, _ = pair.loss(translator, items, 1)
        soft = pair.soft(translator, items).float()
    enc = pair.tgt_tok(
        [str(i["answer"]).strip() for i in items],
        padding=True,
        padding_side="left",
        return_tensors="pt",
    )
    assert (enc.attention_mask == 0).any()
    b, k_soft = len(items), 1 + soft.shape[1]
    lead = _embed(pair, [pair.tgt_tok.bos_token_id]).expand(b, 1, -1)
    embeds = torch.cat([lead, soft, _embed(pair, enc.input_ids)], dim=1)
    mask = torch.cat([torch.ones(b, k_soft, dtype=torch.long), enc.attention_mask], dim=1)
    labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
    labels = torch.cat([torch.full((b, k_soft), -100), labels], dim=1)
    with torch.no_grad():
        expected = pair.target(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss
    assert parts["nll"] == pytest.approx(float(expected), rel=1e-5)
    pair.p = replace(pair.p, padding="right")
    with torch.no_grad():
        right = pair.loss(translator, items, 1)[1]["nll"]
    assert abs(right - parts["nll"]) > 1e-4 * parts["nll"]


def test_the_sources_padding_side_moves_no_soft_token(micro):
    """The original pads the source's input on the left too; the pipeline keeps it right-padded:
    the translator's attention over the source states is order-free and a causal model's states
    of the real tokens do not depend on the pads before them (positions shift alike), so the
    soft tokens agree to rounding (measured: within 1e-5 on the micro pair)."""
    pair, translator, items = micro()
    ids = [pair.source_ids(i) for i in items]
    soft = {}
    for side in ("right", "left"):
        x, m = evaluate.pad(ids, pair.src_tok.pad_token_id, side)
        with torch.no_grad():
            h = pair.source.base_model(input_ids=x, attention_mask=m).last_hidden_state
            soft[side] = replace(pair, cache=HeldStates(h, m)).soft(translator, items)
    assert len({len(x) for x in ids}) > 1
    torch.testing.assert_close(soft["left"], soft["right"], atol=1e-5, rtol=1e-5)


def apply_rms_matching(soft_tokens, target_rms, eps=1e-8, detach_stats=True, clamp=(0.25, 4.0)):
    """cross_attention.py's rescaling of the soft tokens, transcribed (both eras; blend 1)."""
    current_rms = soft_tokens.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(eps)
    if detach_stats:
        current_rms = current_rms.detach()
    scale = target_rms / current_rms
    lo, hi = clamp
    scale = scale.clamp(min=lo, max=hi)
    return soft_tokens * scale


def test_rms_detach_is_the_originals_rescaling(micro):
    """rms_detach: the soft tokens' rescaling and its gradient are apply_rms_matching's
    (detach_stats=True); the default's forward is the same, its gradient another (the RMS the
    scale divides by is differentiated too), where the scale is inside its clamp."""
    torch.manual_seed(0)
    y = torch.randn(2, 4, 16) * torch.tensor([0.5, 1.0, 2.0, 3.0])[None, :, None]
    target, w = torch.tensor(1.3), torch.randn(2, 4, 16)
    assert ((target / y.pow(2).mean(-1).sqrt()) - 1).abs().lt(3).all()  # inside the clamp

    def grad(fn):
        leaf = y.clone().requires_grad_()
        out = fn(leaf)
        (out * w).sum().backward()
        return out.detach(), leaf.grad

    ref, ref_grad = grad(lambda v: apply_rms_matching(v, target))
    for detach in (True, False):
        out, g = grad(lambda v, d=detach: tr.match_rms(v, target, d))
        torch.testing.assert_close(out, ref)
        assert torch.allclose(g, ref_grad, atol=1e-6) is detach
    pair, translator, _ = micro(rms_detach=True)  # the run's translator, built from its params
    assert translator.detach_rms and bridge_params.recorded(pair.p.as_dict())["rms_detach"]
