"""The lm-eval model of the study: lm-eval's HF model scoring under a mask policy.

:class:`MaskPolicyLM` scores through :func:`ablate.mask.scoring.score_requests`, which knows each
request's context/continuation boundary and builds the padding mask and position ids itself (stock
lm-eval right-pads with token 0 and passes no mask). Under ``causal`` it returns what stock lm-eval
returns (tests/mask/test_evaluation.py). Importing this module registers it as ``maskpolicy-hf``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from ablate.core.models.modeling import load_causal_lm, load_tokenizer
from ablate.mask import families
from ablate.mask.masks import check_policy
from ablate.mask.scoring import score_requests

#: Each evaluation protocol's tokenization and rows: lm-eval's ``add_bos_token`` (None: the
#: tokenizer's default, which prepends BOS) and the scorer's ``whole_continuation``.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "lm_eval": {"add_bos_token": None, "whole_continuation": False},
    "original": {"add_bos_token": False, "whole_continuation": True},
}

#: Where a token's log-probability is computed (the scorer's ``softmax_in_model_dtype``):
#: ``float32``, the head's logits upcast; ``model``, the weights' dtype, each continuation's sum
#: rounded to it (the original study's eval_mcq.py, and stock lm-eval's ``softmax_dtype`` unset).
SOFTMAX_DTYPES = ("float32", "model")


@register_model("maskpolicy-hf")
class MaskPolicyLM(HFLM):
    """HFLM whose log-likelihoods are computed under ``mask_policy`` by the fast scorer.

    ``pretrained``: a model object, or a path or hub id for
    :func:`ablate.core.models.modeling.load_causal_lm`. ``continuation_tokens`` maps each scored
    (context, continuation) to the continuation's token count (the ``acc_tokens`` divisor).
    """

    def __init__(
        self,
        pretrained,
        mask_policy: str = "causal",
        *,
        tokenizer=None,
        revision: str | None = None,
        dtype: str | torch.dtype = "float32",
        device: str | None = None,
        attn_implementation: str = "sdpa",
        max_batch_tokens: int = 16384,
        share_contexts: bool = True,
        protocol: str = "lm_eval",
        softmax_dtype: str | None = None,
        **kwargs: Any,
    ):
        self.mask_policy = check_policy(mask_policy)
        if protocol not in PROTOCOLS:
            raise ValueError(
                f"unknown evaluation protocol {protocol!r} (mask.eval.protocol): "
                f"use one of {', '.join(PROTOCOLS)}"
            )
        if softmax_dtype not in (None, *SOFTMAX_DTYPES):
            raise ValueError(
                f"unknown softmax dtype {softmax_dtype!r} (mask.eval.softmax_dtype): "
                f"use one of {', '.join(SOFTMAX_DTYPES)}"
            )
        self.protocol = protocol
        self.softmax_in_model_dtype = softmax_dtype == "model"
        self.continuation_tokens: dict[tuple[str, str], int] = {}
        self.scoring_s = 0.0  # seconds inside the scorer (the rest of an evaluation is set-up)
        self.max_batch_tokens = int(max_batch_tokens)
        self.share_contexts = share_contexts not in (False, "False", "false", "0", 0)
        if isinstance(pretrained, (str, os.PathLike)):
            source = pretrained
            if device is None:
                device = "cuda" if torch.cuda.is_available() else "cpu"
            load = lambda: load_causal_lm(  # noqa: E731
                source,
                revision=revision,
                dtype=dtype,
                attn_implementation=attn_implementation,
                device=device,
                config_check=families.check_config,  # an unproven family: refused before weights
            )
            # A local dir: tokenizer first, so a dir without one fails before the slow load.
            # Anything else: the model loader says best what is wrong with the path or id.
            pretrained = None if os.path.isdir(source) else load()
            if tokenizer is None:
                tokenizer = load_tokenizer(source, revision=revision)
            pretrained = pretrained or load()
        elif tokenizer is None:
            raise ValueError("MaskPolicyLM needs a tokenizer when given a model object")
        kwargs.pop("batch_size", None)  # batches are bounded by max_batch_tokens instead
        kwargs.pop("max_batch_size", None)
        add_bos = PROTOCOLS[protocol]["add_bos_token"]
        if add_bos is not None:
            kwargs["add_bos_token"] = add_bos
        super().__init__(pretrained=pretrained, tokenizer=tokenizer, **kwargs)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        t0 = time.perf_counter()
        scores = score_requests(
            self.model,
            [(ctx, cont) for _, ctx, cont in requests],
            self.mask_policy,
            max_length=self.max_length,
            max_batch_tokens=self.max_batch_tokens,
            share_contexts=self.share_contexts,
            whole_continuation=PROTOCOLS[self.protocol]["whole_continuation"],
            softmax_in_model_dtype=self.softmax_in_model_dtype,
            progress=not disable_tqdm and self.rank == 0,
            desc=f"loglikelihood [{self.mask_policy}]",
        )
        self.scoring_s += time.perf_counter() - t0
        for (key, _, cont), answer in zip(requests, scores):
            if key is not None:  # rolling-loglikelihood pieces have no cache key
                self.continuation_tokens[tuple(key)] = len(cont)
                self.cache_hook.add_partial("loglikelihood", key, answer)
        return scores
