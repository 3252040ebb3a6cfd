"""Perturbation audit of the mask policies (masks.policy_forward_kwargs).

For each policy x {left, right} padding x backend, every token of every example is changed in
turn and the positions whose logits move are compared with the dependency set the policy
defines, composed over the layers (exact for random weights). Rows of a padded batch must equal
the example run alone, and every backend must agree with eager (fp32, <= 1e-5).

flex_attention compiles on CPU for seconds per mask function and once crashed the interpreter
(findings 1), so its audit runs in a subprocess (this file run as a script, slow) for the families
of FLEX_AUDITS; eager, sdpa and the split-sdpa backend run in-process for every family.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache, lru_cache
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))  # for the subprocess run (the package is installed editable)

from ablate.mask import families, masks  # noqa: E402

VOCAB = 300
PAD = 0
#: (prompt, response) lengths; different total lengths so that batches pad.
SHAPES = ((7, 4), (4, 2), (9, 5))
SIDES = ("left", "right")
CHANGED = 1e-5  # |d logit| that counts as "this position changed"; see test_dependency_margin
AGREE = 1e-5  # fp32: padded vs alone, backend vs eager
IN_PROCESS_IMPLS = ("eager", "sdpa", masks.PREFIX_SDPA)


# ----------------------------------------------------------------------------- models


def _config(family: str, **overrides):
    from transformers import (
        Gemma2Config,
        Gemma3TextConfig,
        LlamaConfig,
        MinistralConfig,
        MistralConfig,
        Olmo2Config,
        Phi3Config,
        Qwen2Config,
        Qwen3Config,
    )

    from ablate.mask.tiny import tiny_ministral3_config

    common = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        pad_token_id=PAD,
        bos_token_id=1,
        eos_token_id=2,
    )
    common.update(overrides)
    if "layer_types" in common:
        common["layer_types"] = list(common["layer_types"])
    if family == "ministral3":
        return tiny_ministral3_config(**common)
    if family == "mistral":
        return MistralConfig(**{"sliding_window": None, **common})
    if family == "llama":
        return LlamaConfig(**common)
    if family == "ministral":  # alternating sliding / full layers (config.layer_types)
        return MinistralConfig(**common)
    if family == "qwen2":
        return Qwen2Config(**common)
    if family == "qwen3":
        return Qwen3Config(**common)
    if family == "gemma2":  # 2 layers: sliding, full (its default layer_types)
        return Gemma2Config(
            **{"sliding_window": 3, "query_pre_attn_scalar": 16, **GEMMA2_CAPS, **common}
        )
    if family == "gemma3_text":
        gemma3 = dict(
            sliding_window=3,
            layer_types=["sliding_attention", "full_attention"],
            query_pre_attn_scalar=16,
            final_logit_softcapping=GEMMA2_CAPS["final_logit_softcapping"],
        )
        return Gemma3TextConfig(**{**gemma3, **common})
    if family == "phi3":
        return Phi3Config(**{k: v for k, v in common.items() if k != "head_dim"})
    if family == "olmo2":
        return Olmo2Config(**{k: v for k, v in common.items() if k != "head_dim"})
    raise ValueError(family)


#: Gemma 2's soft-capping, small enough to move the tiny random model's logits
#: (test_soft_capping_is_visible; at Gemma 2's own 50 and 30 it would not show).
GEMMA2_CAPS = dict(attn_logit_softcapping=0.1, final_logit_softcapping=1.0)


def _vlm_text_model(dtype=torch.float32, **overrides):
    """The text model of a tiny Mistral3 vision-language checkpoint (ministral3 text config,
    pixtral vision tower), saved and loaded as ``modeling.load_causal_lm`` loads the study model."""
    import shutil
    import tempfile

    from helpers import tiny_mistral3

    from ablate.core.models.modeling import load_causal_lm
    from ablate.mask import families

    folder = tempfile.mkdtemp(prefix="tiny-mistral3-")
    try:
        tiny_mistral3(_config("ministral3", **overrides).to_dict()).to(dtype).save_pretrained(
            folder
        )
        return load_causal_lm(folder, dtype=dtype, verify=False, config_check=families.check_config)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def new_model(family: str, dtype=torch.float32, **overrides):
    from transformers import AutoModelForCausalLM

    if family == "mistral3":
        return _vlm_text_model(dtype, **overrides).eval()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_config(family, **overrides), dtype=dtype)
    return model.eval()


build = lru_cache(maxsize=None)(new_model)  # one model per config, shared across backends


def with_impl(model, impl: str):
    model.set_attn_implementation(impl)
    return model


# ----------------------------------------------------------------------------- data


def examples(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randint(4, VOCAB, (p,), generator=g), torch.randint(4, VOCAB, (r,), generator=g))
        for p, r in SHAPES
    ]


def make_batch(exs, side: str):
    seqs = [torch.cat([p, r]) for p, r in exs]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), PAD)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for b, s in enumerate(seqs):
        cols = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
        ids[b, cols] = s
        mask[b, cols] = 1
    return ids, mask, torch.tensor([len(p) for p, _ in exs])


@torch.no_grad()
def run(model, exs, side: str, policy: str):
    """Per-example logits at the real positions, in sequence order."""
    ids, mask, lengths = (t.to(model.device) for t in make_batch(exs, side))
    logits = model(**masks.policy_forward_kwargs(model, ids, mask, lengths, policy)).logits
    return [logits[b][mask[b].bool()].float().cpu() for b in range(len(exs))]


def perturb(exs, b: int, pos: int):
    p, r = exs[b]
    s = torch.cat([p, r]).clone()
    s[pos] = (s[pos] + 50 - 4) % (VOCAB - 4) + 4
    out = list(exs)
    out[b] = (s[: len(p)], s[len(p) :])
    return out


# ----------------------------------------------------------------------------- expectations


def layer_allowed(policy: str, n: int, prompt: int, window: int | None) -> torch.Tensor:
    """[i, j]: may query i attend to key j in one layer (real tokens of one example)."""
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    causal = j <= i
    if window:
        causal = causal & (i - j < window)  # HF: kv_idx > q_idx - sliding_window
    if policy == "causal":
        return causal
    if policy == "prefix_bidir":
        block = (i < prompt) & (j < prompt)
        if window:
            block = block & ((i - j).abs() < window)
        return causal | block
    if window:  # prefill_bidir: HF's bidirectional window is inclusive (|q - kv| <= window)
        return (i - j).abs() <= window
    return torch.ones(n, n, dtype=torch.bool)


def expected_dependencies(policy, n, prompt, layer_windows) -> torch.Tensor:
    """[i, j]: may logits at i depend on token j, composed over the layers (residual included)."""
    dep = torch.eye(n, dtype=torch.bool)
    for window in layer_windows:
        step = layer_allowed(policy, n, prompt, window).float()
        dep = (step @ dep.float()) > 0
    return dep


def layer_windows(model) -> list[int | None]:
    cfg = model.config
    types = getattr(cfg, "layer_types", None) or [None] * cfg.num_hidden_layers
    win = getattr(cfg, "sliding_window", None)
    return [win if (t == "sliding_attention" or (t is None and win)) else None for t in types]


# ----------------------------------------------------------------------------- the audit


def audit(model, policy: str, side: str) -> dict:
    """Mismatches between observed and expected dependencies, plus padding invariance."""
    exs = examples()
    base = run(model, exs, side, policy)
    assert all(torch.isfinite(x).all() for x in base), "NaN/inf in logits"
    pad_diff = max(
        (base[b] - run(model, [exs[b]], side, policy)[0]).abs().max().item()
        for b in range(len(exs))
    )
    windows = layer_windows(model)
    mismatches, cross_row = [], 0.0
    dep_min, indep_max = float("inf"), 0.0
    for b, (p, r) in enumerate(exs):
        n = len(p) + len(r)
        expected = expected_dependencies(policy, n, len(p), windows)
        for j in range(n):
            out = run(model, perturb(exs, b, j), side, policy)
            diff = (out[b] - base[b]).abs().amax(-1)
            changed = diff > CHANGED
            for i in torch.nonzero(changed != expected[:, j]).flatten().tolist():
                mismatches.append(
                    f"ex{b} (prompt {len(p)}): token {j} {'moved' if changed[i] else 'did not move'}"
                    f" logits at {i} (|d|={diff[i]:.1e})"
                )
            if expected[:, j].any():
                dep_min = min(dep_min, diff[expected[:, j]].min().item())
            if (~expected[:, j]).any():
                indep_max = max(indep_max, diff[~expected[:, j]].max().item())
            cross_row = max(
                cross_row,
                max((out[o] - base[o]).abs().max().item() for o in range(len(exs)) if o != b),
            )
    return dict(
        mismatches=mismatches,
        pad_diff=pad_diff,
        cross_row=cross_row,
        dep_min=dep_min,
        indep_max=indep_max,
        logits=[x.tolist() for x in base],
    )


@cache
def cached_audit(family: str, impl: str, policy: str, side: str, **overrides) -> dict:
    return audit(with_impl(build(family, **overrides), impl), policy, side)


def check(result: dict, reference: dict | None, label: str) -> None:
    assert not result["mismatches"], f"{label}: " + "; ".join(result["mismatches"][:8])
    assert result["pad_diff"] <= AGREE, f"{label}: padded row != alone ({result['pad_diff']:.1e})"
    assert result["cross_row"] == 0.0, f"{label}: a token moved another row ({result['cross_row']})"
    if reference is not None:
        diff = max(
            (torch.tensor(a) - torch.tensor(e)).abs().max().item()
            for a, e in zip(result["logits"], reference["logits"])
        )
        assert diff <= AGREE, f"{label}: differs from eager by {diff:.1e}"


# ----------------------------------------------------------------------------- tests


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("policy", masks.POLICIES)
@pytest.mark.parametrize("impl", IN_PROCESS_IMPLS)
@pytest.mark.parametrize("family", ["ministral3", "mistral", "llama"])
def test_audit(family, impl, policy, side):
    ref = cached_audit(family, "eager", policy, side)
    result = cached_audit(family, impl, policy, side)
    check(result, None if impl == "eager" else ref, f"{family}/{impl}/{policy}/{side}")


def test_dependency_margin():
    """The 'changed' threshold sits far from both observed populations (not a tuned knife-edge)."""
    results = [
        cached_audit("ministral3", impl, pol, side, **window)
        for impl in IN_PROCESS_IMPLS
        for pol in masks.POLICIES
        for side in SIDES
        for window in ({}, {"sliding_window": 3})
    ]
    assert min(r["dep_min"] for r in results) > 30 * CHANGED
    assert max(r["indep_max"] for r in results) < CHANGED / 30


#: the family whose text model the Mistral3 wrapper loads (its flex proof is this family's)
FLEX_FAMILY = "ministral3"
#: model_type -> the config the flex_attention subprocess audits (family of _config, overrides):
#: the study model's family, and Mistral (Ministral-8B's) with a window
FLEX_AUDITS = {"ministral3": ("ministral3", {}), "mistral": ("mistral", {"sliding_window": 3})}


#: The xdist group of every test that reads flex_results: one worker makes it, once a session.
FLEX_GROUP = "flex_audit"


@pytest.fixture(scope="session")  # not per module: that worker's other modules' tests interleave
def flex_results():
    """flex_attention's audit (a subprocess: _flex_main), once per session: its tests (FLEX_GROUP)
    run on one worker. A minute of CPU; per module it ran three times a suite run."""
    proc = subprocess.run(
        [sys.executable, __file__, "--flex"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert proc.returncode == 0, (
        f"flex_attention audit subprocess failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # the subprocess compiles a flex kernel per mask: about a minute on 2 cores
@pytest.mark.xdist_group(FLEX_GROUP)  # one worker: the subprocess runs once, not once per worker
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("policy", masks.POLICIES)
@pytest.mark.parametrize("model_type", sorted(FLEX_AUDITS))
def test_audit_flex_attention(flex_results, model_type, policy, side):
    res = flex_results[f"{model_type}/{policy}/{side}"]
    check(res["flex_attention"], res["eager"], f"{model_type}/flex_attention/{policy}/{side}")


@pytest.mark.parametrize("policy", masks.POLICIES)
@pytest.mark.parametrize("impl", ["eager", "sdpa", masks.PREFIX_SDPA])
@pytest.mark.parametrize("family", ["ministral3", "mistral"])
def test_sliding_window_kept(family, impl, policy):
    """Window 3 over 2 layers: a token further than the composed window has no influence.

    The expected sets above encode the window, so a mask that dropped it (e.g. HF's plain
    ``block_sequence_ids`` overlay on a sliding layer) fails here as 'moved logits at i'."""
    for side in SIDES:
        ref = cached_audit(family, "eager", policy, side, sliding_window=3)
        res = cached_audit(family, impl, policy, side, sliding_window=3)
        check(res, None if impl == "eager" else ref, f"{family}+window/{impl}/{policy}/{side}")
    # The window is visible: the longest example (14 tokens) cannot see across it.
    dep = expected_dependencies(policy, 14, 9, [3, 3])
    assert not dep.all(), "window too large for the audit to see it"


@pytest.mark.parametrize("policy", masks.POLICIES)
def test_alternating_layer_types(policy):
    """Ministral-style configs (``layer_types``) get one mask per layer type."""
    cfg = dict(sliding_window=3, layer_types=("sliding_attention", "full_attention"))
    for side in SIDES:
        ref = cached_audit("ministral", "eager", policy, side, **cfg)
        res = cached_audit("ministral", "sdpa", policy, side, **cfg)
        check(res, ref, f"ministral/{policy}/{side}")
    model = with_impl(build("ministral", **cfg), "sdpa")
    ids, mask, lengths = make_batch(examples(), "right")
    mapping = masks.prefix_lm_mask(model, mask, lengths, dtype=torch.float32)
    assert set(mapping) == {"sliding_attention", "full_attention"}
    full, sliding = mapping["full_attention"][2, 0], mapping["sliding_attention"][2, 0]
    # Row 2: prompt of 9 tokens. Query 0 sees prompt key 8 only without the window.
    assert bool(full[0, 8]) and not bool(sliding[0, 8])
    assert bool(sliding[0, 2]) and not bool(sliding[0, 3])  # |q - kv| < 3 inside the prompt
    assert not bool(full[9, 10]) and not bool(sliding[9, 10])  # responses stay causal


def test_position_ids_left_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    pos = masks.position_ids_from_mask(mask)
    assert pos.tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4], [0, 1, 2, 2, 2]]
    prompt = masks.prompt_token_mask(mask, [2, 1, 3])
    assert prompt.tolist() == [
        [False, False, True, True, False],
        [True, False, False, False, False],
        [True, True, True, False, False],
    ]


@pytest.mark.parametrize("policy", masks.POLICIES)
def test_left_padding_positions_matter(policy):
    """RoPE is shift-invariant, so the audit alone cannot see wrong positions. Ministral-3's
    position-dependent query scaling (llama_4_scaling, here every 4 positions) can: the mask's
    positions keep left-padded rows equal to the example alone, ``arange`` positions do not."""
    from ablate.mask.tiny import tiny_ministral3_config

    rope = dict(
        tiny_ministral3_config().rope_parameters,
        original_max_position_embeddings=4,
        llama_4_scaling_beta=1.0,
    )
    model = with_impl(new_model("ministral3", rope_parameters=rope), "sdpa")
    exs = examples()
    ids, mask, lengths = make_batch(exs, "left")
    kw = masks.policy_forward_kwargs(model, ids, mask, lengths, policy)
    assert torch.equal(kw["position_ids"], masks.position_ids_from_mask(mask))
    alone = [run(model, [ex], "left", policy)[0] for ex in exs]
    with torch.no_grad():
        good = model(**kw).logits
        kw["position_ids"] = torch.arange(ids.shape[1]).expand_as(ids)
        bad = model(**kw).logits
    err = lambda lg: max(  # noqa: E731
        (lg[b][mask[b].bool()] - alone[b]).abs().max().item() for b in range(len(exs))
    )
    assert err(good) <= AGREE
    assert err(bad) > 1e-3, "position-dependent scaling did not show: the test lost its teeth"


def test_prefix_split_only_on_right_padding():
    """The split backend's fast path needs rows starting at column 0; otherwise the mask path."""
    model = with_impl(build("ministral3"), masks.PREFIX_SDPA)
    ids, mask, lengths = make_batch(examples(), "right")
    kw = masks.policy_forward_kwargs(model, ids, mask, lengths, "prefix_bidir")
    assert kw["attention_mask"] is None and kw["ablate_prompt_lengths"] == (7, 4, 9)
    ids, mask, lengths = make_batch(examples(), "left")
    kw = masks.policy_forward_kwargs(model, ids, mask, lengths, "prefix_bidir")
    assert kw["attention_mask"].dim() == 4 and "ablate_prompt_lengths" not in kw
    model.set_attn_implementation("sdpa")


@pytest.mark.parametrize("family", ["ministral3", "llama"])
def test_prefix_split_gradients_match_dense_mask(family):
    """Training uses the split backend: its loss and every weight gradient equal the sdpa
    dense-mask path's (right padding, varied prompt lengths incl. a 1-token prompt)."""
    model = new_model(family)
    exs = examples() + [(torch.tensor([5]), torch.tensor([6, 7, 8]))]
    ids, mask, lengths = make_batch(exs, "right")
    labels = torch.where(mask.bool(), ids, -100)
    grads = {}
    for impl in ("sdpa", masks.PREFIX_SDPA):
        model.set_attn_implementation(impl)
        model.zero_grad()
        kw = masks.policy_forward_kwargs(model, ids, mask, lengths, "prefix_bidir")
        loss = model(**kw, labels=labels).loss
        loss.backward()
        grads[impl] = (loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()})
    (loss_ref, ref), (loss_split, split) = grads["sdpa"], grads[masks.PREFIX_SDPA]
    assert loss_split == pytest.approx(loss_ref, abs=1e-6)
    worst = max((split[n] - ref[n]).abs().max().item() for n in ref)
    assert worst <= 1e-5, f"gradients differ by {worst:.1e}"
    assert all(ref[n].abs().max() > 0 for n in ref), "some parameter got no gradient"


def test_bad_arguments():
    model = build("ministral3")
    ids, mask, lengths = make_batch(examples(), "right")
    with pytest.raises(masks.UnknownPolicyError, match="'bidir'"):
        masks.policy_forward_kwargs(model, ids, mask, lengths, "bidir")
    with pytest.raises(ValueError, match="prompt_lengths"):
        masks.policy_forward_kwargs(model, ids, mask, None, "prefix_bidir")
    with pytest.raises(ValueError, match="2 entries for a batch of 3"):
        masks.policy_forward_kwargs(model, ids, mask, lengths[:2], "prefix_bidir")
    with pytest.raises(ValueError, match="does not cover"):
        masks.policy_forward_kwargs(model, ids, mask[:, :4], lengths, "causal")


def _right_padded_rows(real: list[int]):
    g = torch.Generator().manual_seed(3)
    width = max(real)
    ids = torch.full((len(real), width), PAD)
    mask = torch.zeros(len(real), width, dtype=torch.long)
    for b, n in enumerate(real):
        ids[b, :n] = torch.randint(4, VOCAB, (n,), generator=g)
        mask[b, :n] = 1
    return ids, mask


@pytest.mark.parametrize("impl", IN_PROCESS_IMPLS)
def test_prompt_longer_than_its_row_is_refused(impl):
    """Row 1 has 6 real tokens but a prompt length of 8: the split backend would take pads 6, 7
    into its prompt block (real tokens attending to pads, logits off by ~1), the others would
    quietly clip it. Every backend refuses it, naming the row."""
    model = with_impl(build("ministral3"), impl)
    ids, mask = _right_padded_rows([9, 6, 11])
    for lengths in ([9, 8, 11], torch.tensor([9, 8, 11])):
        with pytest.raises(ValueError, match=r"prompt_lengths\[1\] = 8 but row 1 has 6 real"):
            masks.policy_forward_kwargs(model, ids, mask, lengths, "prefix_bidir")
    with pytest.raises(ValueError, match=r"row 0 has 9 real"):
        masks.policy_forward_kwargs(model, ids, mask, [-1, 6, 11], "prefix_bidir")
    # the same rows with valid prompt lengths pass (a prompt may be the whole row)
    masks.policy_forward_kwargs(model, ids, mask, [9, 6, 11], "prefix_bidir")


@pytest.mark.parametrize(
    "built_for, runs",
    [(masks.PREFIX_SDPA, "sdpa"), (masks.PREFIX_SDPA, "eager"), ("sdpa", "eager")],
)
def test_kwargs_refused_under_another_backend(built_for, runs):
    """prefix_bidir kwargs are backend-specific (the split path's prompt lengths, a mask in the
    backend's format). Built for one implementation and run after set_attn_implementation to
    another they would run plain causal attention (or misread the mask): refused at forward time,
    through the model and through its decoder (the fast paths), and fine again once rebuilt."""
    model = new_model("ministral3")
    ids, mask, lengths = make_batch(examples(), "right")
    model.set_attn_implementation(built_for)
    kw = masks.policy_forward_kwargs(model, ids, mask, lengths, "prefix_bidir")
    with torch.no_grad():
        want = model(**dict(kw)).logits
        model.set_attn_implementation(runs)
        for module in (model, model.get_decoder()):
            with pytest.raises(
                masks.BackendMismatchError,
                match=rf"built .* for attention implementation '{built_for}', but the model now "
                rf"runs '{runs}'",
            ):
                module(**dict(kw))
        again = masks.policy_forward_kwargs(model, ids, mask, lengths, "prefix_bidir")
        got = model(**again).logits
    real = mask.bool()
    assert (got[real] - want[real]).abs().max().item() <= AGREE


def test_causal_and_prefill_kwargs_are_backend_free():
    """Only prefix_bidir kwargs depend on the backend: causal and prefill_bidir kwargs carry no
    tag and keep working after a switch."""
    model = new_model("ministral3")
    ids, mask, lengths = make_batch(examples(), "right")
    for policy in ("causal", "prefill_bidir"):
        model.set_attn_implementation("sdpa")
        kw = masks.policy_forward_kwargs(model, ids, mask, lengths, policy)
        assert "ablate_built_for_attn" not in kw
        with torch.no_grad():
            a = model(**kw).logits
            model.set_attn_implementation("eager")
            b = model(**kw).logits
        assert (a - b)[mask.bool()].abs().max().item() <= AGREE


# ----------------------------------------------------------------------------- families

ALTERNATING = dict(sliding_window=3, layer_types=("sliding_attention", "full_attention"))
#: model_type -> the configs its proof audits: (family of _config, overrides); a windowed one
#: where the family has sliding windows. Its keys are ablate.mask.families.PROVEN's
#: (test_registry_matches_the_audit).
FAMILIES = {
    "ministral3": (("ministral3", {}), ("ministral3", {"sliding_window": 3})),
    "mistral3": (("mistral3", {}),),
    "mistral": (("mistral", {}), ("mistral", {"sliding_window": 3})),
    "ministral": (("ministral", ALTERNATING),),
    "llama": (("llama", {}),),
    "qwen2": (
        ("qwen2", {}),
        ("qwen2", dict(use_sliding_window=True, sliding_window=3, max_window_layers=1)),
    ),
    "qwen3": (("qwen3", {}),),
    "gemma2": (("gemma2", {}),),
    "gemma3_text": (("gemma3_text", {}),),
    "phi3": (("phi3", {}), ("phi3", {"sliding_window": 3})),
    "olmo2": (("olmo2", {}),),
}
#: (prompt, response) rows of the decode check: a 1-token prompt among them
DECODE_SHAPES = ((7, 4), (4, 2), (9, 5), (1, 3))
#: prompts no longer than the audit's window of 3 (where prefill_bidir's inclusive window and
#: prefix_bidir's agree) and responses longer than it
SHORT_PROMPTS = ((3, 6), (2, 5), (1, 7))


def in_process_backends(model_type: str) -> list[str]:
    return [b for b in families.PROVEN[model_type].backends if b in IN_PROCESS_IMPLS]


def proven_on_flex(model_type: str) -> bool:
    """Whether the registry lists flex_attention for the family: its proof reads flex_results."""
    return model_type in families.PROVEN and families.FLEX in families.PROVEN[model_type].backends


def decode_rows(shapes, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randint(4, VOCAB, (p,), generator=g), torch.randint(4, VOCAB, (r,), generator=g))
        for p, r in shapes
    ]


def check_decode(model, label: str, policies=masks.POLICIES) -> None:
    """A prefill under the policy then cached one-token steps (oracles.incremental_logits, what
    generation runs): under causal and prefix_bidir equal to the full teacher-forced forward;
    under prefill_bidir the steps stay causal, so its generation equals prefix_bidir's where the
    two prefills agree (prompts within the window)."""
    from oracles import incremental_logits  # here: bench/bench_masks.py imports this module

    for side in SIDES:
        for policy in policies:
            shapes = SHORT_PROMPTS if policy == "prefill_bidir" else DECODE_SHAPES
            ids, mask, lengths = make_batch(decode_rows(shapes), side)
            inc = incremental_logits(model, ids, mask, lengths, policy)
            with torch.no_grad():
                if policy == "prefill_bidir":
                    want = incremental_logits(model, ids, mask, lengths, "prefix_bidir")
                    tf = model(**masks.policy_forward_kwargs(model, ids, mask, lengths, policy))
                    leak = (tf.logits - inc)[mask.bool()].abs().max().item()
                    assert leak > 1e-3, f"{label}/{side}: prefill_bidir's forward read no future"
                else:
                    kw = masks.policy_forward_kwargs(model, ids, mask, lengths, policy)
                    want = model(**kw).logits
            diff = (inc - want)[mask.bool()].abs().max().item()
            assert diff <= AGREE, f"{label}/{policy}/{side}: decode differs by {diff:.1e}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "model_type",
    [  # a proof that reads the flex audit waits for it on the worker that made it (FLEX_GROUP)
        pytest.param(t, marks=pytest.mark.xdist_group(FLEX_GROUP)) if proven_on_flex(t) else t
        for t in sorted(FAMILIES)
    ],
)
def test_family_proven(model_type, request):
    """The proof of one family (ablate.mask.families.proof): the audit of every policy x padding
    side on each of its configs and every proven in-process backend (== eager), the decode step,
    and flex_attention's subprocess audit where the registry lists it."""
    backends = in_process_backends(model_type)
    for family, overrides in FAMILIES[model_type]:
        for policy in masks.POLICIES:
            for side in SIDES:
                ref = cached_audit(family, "eager", policy, side, **overrides)
                for impl in backends:
                    res = cached_audit(family, impl, policy, side, **overrides)
                    label = f"{model_type}{overrides or ''}/{impl}/{policy}/{side}"
                    check(res, None if impl == "eager" else ref, label)
        for impl in backends:
            check_decode(with_impl(build(family, **overrides), impl), f"{model_type}/{impl}")
    if proven_on_flex(model_type):
        flex = request.getfixturevalue("flex_results")
        # the wrapper's flex proof is its loaded text model's
        audited = model_type if model_type in FLEX_AUDITS else FLEX_FAMILY
        for policy in masks.POLICIES:
            for side in SIDES:
                res = flex[f"{audited}/{policy}/{side}"]
                check(res["flex_attention"], res["eager"], f"flex/{audited}/{policy}/{side}")
        assert build(FAMILIES[model_type][0][0]).config.model_type == audited


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_family_fast(model_type):
    """The fast tier's check of each family (its whole proof: test_family_proven, slow):
    prefix_bidir under left padding on its last proven backend, against eager, and that
    backend's prefix_bidir decode step on its first config."""
    family, overrides = FAMILIES[model_type][-1]
    impl = in_process_backends(model_type)[-1]
    ref = cached_audit(family, "eager", "prefix_bidir", "left", **overrides)
    res = cached_audit(family, impl, "prefix_bidir", "left", **overrides)
    check(res, None if impl == "eager" else ref, f"{model_type}/{impl}/prefix_bidir/left")
    family, overrides = FAMILIES[model_type][0]
    model = with_impl(build(family, **overrides), impl)
    check_decode(model, f"{model_type}/{impl}", policies=("prefix_bidir",))


def test_registry_matches_the_audit():
    """ablate.mask.families.PROVEN and this file's FAMILIES name the same model types, each
    proof is a node of test_family_proven, each family's configs build a model of that
    model_type, and flex_attention is listed only where its subprocess audit runs."""
    assert set(families.PROVEN) == set(FAMILIES)
    marks = {m.name: m for m in test_family_proven.pytestmark}["parametrize"].args[1]
    params = [getattr(p, "values", (p,))[0] for p in marks]  # a pytest.param's or the plain value
    for model_type in families.PROVEN:
        node = families.proof(model_type)
        path, name = node.split("::")
        assert (ROOT / path).resolve() == Path(__file__).resolve()
        assert name == f"test_family_proven[{model_type}]" and model_type in params
        assert set(families.PROVEN[model_type].backends) <= {*IN_PROCESS_IMPLS, families.FLEX}
        assert in_process_backends(model_type), f"{model_type}: no in-process backend proven"
        for family, overrides in FAMILIES[model_type]:
            if family == "mistral3":  # the wrapper's own config, as the loader reads it
                continue
            assert _config(family, **overrides).model_type == model_type
    with_flex = {t for t, f in families.PROVEN.items() if families.FLEX in f.backends}
    # _flex_main audits FLEX_AUDITS; mistral3's loader returns ministral3's text model
    # (test_family_proven checks the loaded model's type)
    assert with_flex == {*FLEX_AUDITS, "mistral3"}


def test_vlm_wrapper_loads_its_text_model():
    """The Mistral3 wrapper's audited model is what modeling.load_causal_lm returns for a
    checkpoint of model_type mistral3: a Ministral3ForCausalLM with the text config."""
    from ablate.core.models.modeling import VLM_MODEL_TYPES

    model = build("mistral3")
    assert "mistral3" in VLM_MODEL_TYPES
    assert type(model).__name__ == "Ministral3ForCausalLM"
    assert model.config.model_type == FLEX_FAMILY


def test_soft_capping_is_visible():
    """Gemma 2's attention and final soft-capping and Gemma 3's final soft-capping move the tiny
    models' logits, so the audit runs with them on (Gemma 3's attention soft-capping key is read
    by no code of the installed transformers: not set)."""
    exs = examples()
    for family, caps in (
        ("gemma2", GEMMA2_CAPS),
        ("gemma3_text", {"final_logit_softcapping": 1.0}),
    ):
        base = run(build(family), exs, "right", "causal")
        for key in caps:
            other = run(new_model(family, **{key: None}), exs, "right", "causal")
            moved = max((a - b).abs().max().item() for a, b in zip(base, other))
            assert moved > 1e-4, f"{family}: {key} does not show ({moved:.1e})"


def test_gemma2_refuses_sdpa_upstream():
    """Why Gemma 2 is proven on eager only: transformers refuses sdpa (and so the split backend)
    for it. If this flips, audit those backends and list them in ablate.mask.families.PROVEN."""
    model = new_model("gemma2")
    for impl in ("sdpa", masks.PREFIX_SDPA):
        with pytest.raises(ValueError, match="does not support"):
            model.set_attn_implementation(impl)
    assert families.PROVEN["gemma2"].backends == ("eager",)


def test_bidirectional_config_overrides_the_policy_upstream():
    """A Gemma 3 config with use_bidirectional_attention builds its own bidirectional masks: the
    causal policy is silently not causal (the audit fails), so such a config is refused."""
    model = new_model("gemma3_text", use_bidirectional_attention=True)
    assert audit(with_impl(model, "eager"), "causal", "right")["mismatches"]
    with pytest.raises(families.UnprovenFamilyError, match="use_bidirectional_attention: True"):
        families.check_config(model.config, "eager")


# ----------------------------------------------------------------------------- subprocess


def _flex_main() -> None:
    torch.set_num_threads(1)
    out = {}
    for model_type, (family, overrides) in FLEX_AUDITS.items():
        model = build(family, **overrides)
        for policy in masks.POLICIES:
            for side in SIDES:
                out[f"{model_type}/{policy}/{side}"] = {
                    impl: audit(with_impl(model, impl), policy, side)
                    for impl in ("eager", "flex_attention")
                }
                print(f"flex audit {model_type}/{policy}/{side} done", file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__" and sys.argv[1:] == ["--flex"]:
    _flex_main()
