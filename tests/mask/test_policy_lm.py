"""The lm-eval model of the mask study (ablate.mask.policy_lm.MaskPolicyLM, ``maskpolicy-hf``):
its registration and arguments, and its scores under every policy on the real model's class."""

from __future__ import annotations

import pytest
import torch

from ablate.mask.masks import POLICIES

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_registered_in_lm_eval(tiny_model_dir):
    from lm_eval.api.registry import get_model

    import ablate.mask.policy_lm  # noqa: F401  (registers the model)

    lm = get_model("maskpolicy-hf").create_from_arg_string(
        f"pretrained={tiny_model_dir},mask_policy=prefix_bidir,max_batch_tokens=512,"
        "share_contexts=False",
        {"batch_size": 4, "max_batch_size": None, "device": "cpu"},
    )
    assert (lm.mask_policy, lm.max_batch_tokens, lm.share_contexts) == ("prefix_bidir", 512, False)
    ((ll, _),) = lm._loglikelihood_tokens([(None, [1, 5, 6], [7, 8])])
    assert ll < 0


def test_mistral3_vlm_checkpoint_under_all_policies(tmp_path, tokenizer):
    """The real model's class: a tiny Mistral3ForConditionalGeneration, saved with Tekken."""
    from helpers import tiny_mistral3
    from references import score_naive

    from ablate.mask.policy_lm import MaskPolicyLM
    from ablate.mask.tiny import tiny_ministral3_config

    vlm = tiny_mistral3(tiny_ministral3_config()).eval()
    vlm.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    text = "question : what is two plus three ? answer : five"
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    ctx = tokenizer("question : what is two plus three ? answer :")["input_ids"]
    requests = [(ctx, ids[0, len(ctx) :].tolist()), (ctx[:4], ids[0, 4:].tolist())]

    lm = MaskPolicyLM(str(tmp_path), "causal")  # loads through load_causal_lm
    assert type(lm.model).__name__ == "Ministral3ForCausalLM"
    with torch.no_grad():
        ref = torch.log_softmax(vlm(input_ids=ids).logits[0].float(), -1)
        torch.testing.assert_close(lm.model(input_ids=ids).logits, vlm(input_ids=ids).logits)
    for (ctx_, cont), (ll, _) in zip(
        requests, lm._loglikelihood_tokens([(None, *r) for r in requests])
    ):
        pos = torch.arange(len(ctx_) - 1, len(ctx_) + len(cont) - 1)
        assert ll == pytest.approx(float(ref[pos, torch.tensor(cont)].sum()), abs=1e-4)

    got = {}
    for policy in POLICIES:
        plm = MaskPolicyLM(lm.model, policy, tokenizer=lm.tokenizer)
        got[policy] = plm._loglikelihood_tokens([(None, *r) for r in requests])
        expected = score_naive(lm.model, requests, policy, max_length=plm.max_length)
        for (a, _), (b, _) in zip(got[policy], expected):
            assert a == pytest.approx(b, abs=1e-4)
    assert abs(got["causal"][0][0] - got["prefix_bidir"][0][0]) > 1e-4
