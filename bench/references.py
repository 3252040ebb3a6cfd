"""References shared by the benchmarks and the tests (a test imports them from here: one
definition; bench/ never imports tests/): the slow, obviously right computations that the
package's fast paths are measured and checked against. Not product code: the package never calls
them."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from ablate.core.models import generation
from ablate.core.training.loss import head_loss_sum, loss_sum
from ablate.mask.masks import check_policy, policy_forward_kwargs
from ablate.mask.scoring import Request, prepare
from ablate.mask.training.policy import batch_forward_kwargs


def score_naive(
    model,
    requests: Sequence[Request],
    policy: str = "causal",
    *,
    max_length: int,
    whole_continuation: bool = False,
) -> list[tuple[float, bool]]:
    """Reference: one full-model forward per request and a full-vocab fp32 log-softmax.

    The slow path :func:`ablate.mask.scoring.score_requests` must reproduce (tests, bench); the
    original study's evaluator ran one such forward per request, on whole-continuation rows.
    """
    check_policy(policy)
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for r in prepare(requests, max_length, whole_continuation):
            ids = torch.tensor([r.inp], device=device)
            am = torch.ones_like(ids)
            kw = policy_forward_kwargs(
                model, ids, am, torch.tensor([r.n_prompt], device=device), policy
            )
            logp = torch.log_softmax(model(**kw).logits[0].float(), dim=-1)
            pos = torch.arange(r.n_prompt - 1, r.n_prompt - 1 + len(r.targets), device=device)
            tgt = torch.tensor(r.targets, device=device)
            out.append(
                (
                    float(logp[pos, tgt].sum()),
                    bool((logp[pos].argmax(-1) == tgt).all()),
                )
            )
    return out


class Wrapped(torch.nn.Module):
    """A model as DDP wraps it (``module``, no decoder of its own): the loss then takes the
    model's own logits over the whole vocabulary, not the fast head."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, **kwargs):
        return self.module(**kwargs)


def policy_loss_sum(
    model,
    batch: dict[str, torch.Tensor],
    policy: str,
    *,
    fast_head: bool = True,
    head_loss=head_loss_sum,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`ablate.core.training.loss.loss_sum` under ``policy``, the forward that
    :func:`ablate.mask.training.policy.recipe` gives the loop; ``fast_head`` False: the model
    wrapped (:class:`Wrapped`), so the loss takes the model's own logits."""
    forward = functools.partial(batch_forward_kwargs, policy=policy)
    model = model if fast_head else Wrapped(model)  # False: the model's own logits
    return loss_sum(model, batch, forward, head_loss=head_loss)


@torch.no_grad()
def transformers_generate(model, prompts: list[torch.Tensor], dec, static: bool = True):
    """:func:`ablate.core.models.generation.generate` with every batch through transformers' own
    ``generate`` (not the engine's own loop): the same batches, the same static cache (``static``
    False: the dynamic one), the tokens the engine must equal."""
    out = [None] * len(prompts)
    for idx, batch, mask, extra in generation.batches(model, prompts, dec):
        extra = extra if static else {}
        new = generation.transformers_batch(model, batch, mask, dec, **extra).tolist()
        for i, row in zip(idx, new, strict=False):  # copies filling the last batch dropped
            out[i] = generation.trim(row, dec.eos_token_id)
    return out


def eval_mcq_logprob(model, prompt_ids: Sequence[int], full_ids: Sequence[int]) -> float:
    """The original study's scorer (``eval_mcq.py``'s ``sequence_logprob``, transcribed, without
    its ``--length-normalize``): one forward of the prompt + the whole continuation, the
    log-softmax of the model's logits in their dtype (bf16 logits stay bf16), the continuation's
    token log-probabilities summed by that dtype's tensor ``sum``."""
    if len(full_ids) <= len(prompt_ids):
        return float("-inf")
    device = next(model.parameters()).device
    input_ids = torch.tensor([list(full_ids)], dtype=torch.long, device=device)
    with torch.no_grad():
        logits = model(input_ids=input_ids, use_cache=False).logits
    log_probs = torch.log_softmax(logits[:, :-1, :], dim=-1)
    targets = input_ids[:, 1:]
    start = max(len(prompt_ids) - 1, 0)
    token_log_probs = log_probs[:, start:, :].gather(-1, targets[:, start:].unsqueeze(-1))
    return float(token_log_probs.sum().item())


def original_later_kl_rows(pair, soft: torch.Tensor, items, side: str):
    """The bridge original's later-era KL term, transcribed (LatentWire's cross_attention.py from
    15 Nov 2025): the training batch (its build_batch_inputs: soft tokens, then
    tgt_tok(answers)) and the teacher's input (tgt_tok(answers)) padded on ``side`` (the
    original's tokenizers: left), here after the pipeline's leading <s>. Its kl_div(...,
    "batchmean") over the window of the first n padded positions is rows[:, :n].sum() / B;
    returned: rows [B, W] (every position of the padded width) and the mask of its real tokens."""
    import torch.nn.functional as F

    enc = pair.tgt_tok(
        [str(i["answer"]).strip() for i in items],
        padding=True,
        padding_side=side,
        return_tensors="pt",
    )
    b = len(items)
    embed = pair.target.get_input_embeddings()
    lead = embed(torch.as_tensor([pair.tgt_tok.bos_token_id])).float().expand(b, 1, -1)
    embeds = torch.cat([lead, soft, embed(enc.input_ids).float()], dim=1)
    k_soft = 1 + soft.shape[1]
    mask = torch.cat([torch.ones(b, k_soft, dtype=torch.long), enc.attention_mask], dim=1)
    with torch.no_grad():
        bridged = pair.target(inputs_embeds=embeds, attention_mask=mask).logits.float()
        teacher = pair.target(**enc).logits.float()
    rows = F.kl_div(
        F.log_softmax(bridged[:, k_soft:], dim=-1), F.softmax(teacher, dim=-1), reduction="none"
    ).sum(-1)
    return rows, enc.attention_mask
