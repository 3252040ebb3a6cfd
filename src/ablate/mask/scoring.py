"""Fast batched log-likelihood scoring of (context, continuation) token pairs under a mask policy.

Independent of lm-eval (the GPU benchmark needs only torch + transformers), with its
``loglikelihood`` semantics: lm-eval's truncation, the continuation's summed log-probability and
``is_greedy``. ``whole_continuation`` keeps the continuation's last token in the row and
``softmax_in_model_dtype`` takes the log-softmax and each sum in the weights' dtype, as the
original study's ``eval_mcq.py`` did. ``share_contexts`` encodes a context once for all its
continuations, exact only where the context never sees them (not under ``prefill_bidir``).
What each policy sees and why it is fast: docs/evaluation.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ablate.mask.masks import check_policy, policy_forward_kwargs, text_config

Request = tuple[Sequence[int], Sequence[int]]  # (context tokens, continuation tokens)

#: Rows of vocab-sized fp32 logits materialised at once (1024 x 131072 x 4 B = 0.5 GiB).
_LOGIT_CHUNK_ROWS = 1024


@dataclass(frozen=True)
class _Row:
    index: int  # position in the caller's request list
    inp: tuple[int, ...]  # model input: (context + continuation)[-(max_length+1):][:-1]
    n_prompt: int  # context tokens inside ``inp`` (>= 1)
    # (whole continuation: (context + continuation)[-max_length:], the last token never predicts)
    targets: tuple[int, ...]  # continuation tokens, predicted from inp[n_prompt-1:]


def prepare(
    requests: Sequence[Request], max_length: int, whole_continuation: bool = False
) -> list[_Row]:
    """lm-eval's truncation, each request split into input row and targets."""
    rows = []
    for i, (ctx, cont) in enumerate(requests):
        ctx, cont = list(ctx), list(cont)
        if not ctx or not cont:
            raise ValueError(
                f"request {i}: context and continuation must both be non-empty "
                f"(got {len(ctx)} and {len(cont)} tokens)"
            )
        if len(cont) > max_length:
            raise ValueError(
                f"request {i}: continuation of {len(cont)} tokens exceeds max_length {max_length}"
            )
        if whole_continuation:
            inp = (ctx + cont)[-max_length:]
            n_prompt = len(inp) - len(cont)
        else:
            inp = (ctx + cont)[-(max_length + 1) :][:-1]
            n_prompt = len(inp) - len(cont) + 1
        if n_prompt < 1:
            raise ValueError(
                f"request {i}: no context token left in a row of max_length {max_length}"
            )
        rows.append(_Row(i, tuple(inp), n_prompt, tuple(cont)))
    return rows


def _body_and_head(model):
    try:
        body = model.get_decoder()
    except (AttributeError, ValueError, NotImplementedError) as exc:
        raise TypeError(f"{type(model).__name__} has no decoder body to score with: {exc}") from exc
    head = model.get_output_embeddings()
    if body is None or head is None:
        raise TypeError(
            f"{type(model).__name__} is not a causal LM with a decoder body and an lm_head"
        )
    return body, head


def _token_scores(
    head,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    softcap: float | None,
    in_model_dtype: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per scored position: log p(target) (computed in fp32, or ``in_model_dtype``: the
    log-softmax of the head's logits in their own dtype; returned as fp32) and whether target is
    the argmax."""
    logps, greedy = [], []
    for s in range(0, hidden.shape[0], _LOGIT_CHUNK_ROWS):
        logits = head(hidden[s : s + _LOGIT_CHUNK_ROWS])
        logits = logits if in_model_dtype else logits.float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        tgt = targets[s : s + _LOGIT_CHUNK_ROWS]
        if in_model_dtype:  # the original's log_softmax, its output rounded to the dtype
            logps.append(logits.log_softmax(-1).gather(1, tgt[:, None])[:, 0].float())
        else:
            logps.append(logits.gather(1, tgt[:, None])[:, 0] - torch.logsumexp(logits, dim=-1))
        # max's index is argmax's (the first of tied maxima) at half its cost on a CPU
        greedy.append(logits.max(dim=-1).indices == tgt)
    return torch.cat(logps), torch.cat(greedy)


class _Results:
    """Accumulates per-token scores into per-request (sum log-prob, all greedy); each sum rounded
    to ``round_to`` at the end (None: kept in float64)."""

    def __init__(self, n: int, round_to: torch.dtype | None = None):
        self.logp = [0.0] * n
        self.greedy = [True] * n
        self.round_to = round_to

    def add(self, owners: Sequence[int], logp: torch.Tensor, greedy: torch.Tensor):
        for i, lp, g in zip(owners, logp.tolist(), greedy.tolist()):
            self.logp[i] += lp
            self.greedy[i] = self.greedy[i] and g

    def out(self) -> list[tuple[float, bool]]:
        logp = self.logp
        if self.round_to is not None:  # a bf16 tensor's sum: accumulated in fp32, then rounded
            logp = torch.tensor(logp, dtype=torch.float32).to(self.round_to).tolist()
        return list(zip(logp, self.greedy))


def _batches(items: list, cost: Callable[[list], int], budget: int, max_rows: int, size=len):
    """Greedy consecutive batching of (already sorted) items under a token budget."""
    batch: list = []
    for item in items:
        grown = batch + [item]
        if batch and (size(grown) > max_rows or cost(grown) > budget):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _padded(seqs: list, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows padded with 0 to the longest (on the right, or the left) and their 0/1 mask."""
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    am = torch.zeros(len(seqs), width, dtype=torch.long)
    for b, s in enumerate(seqs):
        cols = slice(width - len(s), width) if left else slice(0, len(s))
        ids[b, cols] = torch.tensor(s)
        am[b, cols] = 1
    return ids, am


def _score_at(hidden, picks: list[tuple[int, int, int, int]], score, results) -> None:
    """Score the ``picks`` (batch row, column, target, request index) of ``hidden``."""
    b_idx, t_idx, targets, owners = zip(*picks)
    device = hidden.device
    at = hidden[torch.tensor(b_idx, device=device), torch.tensor(t_idx, device=device)]
    logp, greedy = score(at, torch.tensor(targets, device=device))
    results.add(owners, logp, greedy)


def _flat_batch(body, score, rows: list[_Row], policy, results, device):
    """One padded forward of whole rows (any policy), scoring only continuation positions."""
    ids, am = _padded([r.inp for r in rows])
    prompt_lengths = torch.tensor([r.n_prompt for r in rows], device=device)
    kw = policy_forward_kwargs(body, ids.to(device), am.to(device), prompt_lengths, policy)
    hidden = body(**kw, use_cache=False).last_hidden_state
    picks = [
        (b, r.n_prompt - 1 + k, tok, r.index)
        for b, r in enumerate(rows)
        for k, tok in enumerate(r.targets)
    ]
    _score_at(hidden, picks, score, results)


def _shared_batch(body, score, groups, policy, results, device):
    """Encode each distinct context once, then its continuations on the expanded KV cache.

    ``groups`` is a list of (context tokens, [rows sharing it]). Contexts are left-padded so the
    position predicting every continuation's first token is the last column.
    """
    ids, am = _padded([ctx for ctx, _ in groups], left=True)
    ids, am = ids.to(device), am.to(device)
    ctx_lengths = torch.tensor([len(ctx) for ctx, _ in groups], device=device)
    # The whole context row is the prompt: bidirectional under prefix_bidir, causal under causal.
    kw = policy_forward_kwargs(body, ids, am, ctx_lengths, policy)
    out = body(**kw, use_cache=True)
    last = ids.shape[1] - 1
    first = [(g, last, r.targets[0], r.index) for g, (_, rows) in enumerate(groups) for r in rows]
    _score_at(out.last_hidden_state, first, score, results)
    cont_rows = [(g, r) for g, (_, rows) in enumerate(groups) for r in rows if len(r.targets) > 1]
    if not cont_rows:
        return

    group_index = torch.tensor([g for g, _ in cont_rows], device=device)
    cache = out.past_key_values
    cache.reorder_cache(group_index)
    q_ids, q_am = _padded(
        [r.inp[r.n_prompt : r.n_prompt + len(r.targets) - 1] for _, r in cont_rows]
    )
    full_am = torch.cat([am[group_index], q_am.to(device)], dim=1)
    # Continuation tokens attend causally (to the whole context and earlier continuation
    # tokens) under both policies that may share contexts.
    kw = policy_forward_kwargs(
        body, q_ids.to(device), full_am, None, "causal", past_key_values=cache
    )
    hidden = body(**kw, use_cache=True).last_hidden_state
    picks = [
        (b, k, r.targets[k + 1], r.index)
        for b, (_, r) in enumerate(cont_rows)
        for k in range(len(r.targets) - 1)
    ]
    _score_at(hidden, picks, score, results)


def score_requests(
    model,
    requests: Sequence[Request],
    policy: str = "causal",
    *,
    max_length: int | None = None,
    max_batch_tokens: int = 16384,
    max_batch_rows: int = 256,
    share_contexts: bool = True,
    whole_continuation: bool = False,
    softmax_in_model_dtype: bool = False,
    progress: bool = False,
    desc: str = "scoring",
) -> list[tuple[float, bool]]:
    """Per request (context tokens, continuation tokens), in order: ``(sum log-prob of the
    continuation, is_greedy)`` under ``policy``. ``max_length`` defaults to the model's
    ``max_position_embeddings``. A batch holds at most ``max_batch_rows`` rows (with shared
    contexts: continuation rows, each holding a copy of its context's KV cache) and at most
    ``max_batch_tokens`` padded tokens per forward."""
    from tqdm.auto import tqdm

    check_policy(policy)
    if max_length is None:
        max_length = text_config(model).max_position_embeddings
    rows = prepare(requests, max_length, whole_continuation)
    body, head = _body_and_head(model)
    softcap = getattr(text_config(model), "final_logit_softcapping", None)
    device = next(model.parameters()).device

    def score(hidden, targets):
        return _token_scores(head, hidden, targets, softcap, softmax_in_model_dtype)

    results = _Results(len(rows), head.weight.dtype if softmax_in_model_dtype else None)
    bar = tqdm(total=len(rows), desc=desc, disable=not progress)
    with torch.inference_mode():
        if share_contexts and policy != "prefill_bidir":
            by_ctx: dict[tuple[int, ...], list[_Row]] = {}
            for r in rows:
                by_ctx.setdefault(r.inp[: r.n_prompt], []).append(r)
            groups = sorted(
                by_ctx.items(),
                key=lambda kv: (-len(kv[0]), -max(len(r.targets) for r in kv[1])),
            )

            def cost(batch):  # tokens computed: padded contexts + padded continuations
                n_rows = sum(len(rs) for _, rs in batch)
                tq = max(len(r.targets) for _, rs in batch for r in rs) - 1
                return len(batch[0][0]) * len(batch) + n_rows * tq

            def rows_of(batch):  # continuation rows: each holds a copy of its context's cache
                return sum(len(rs) for _, rs in batch)

            for batch in _batches(groups, cost, max_batch_tokens, max_batch_rows, size=rows_of):
                _shared_batch(body, score, batch, policy, results, device)
                bar.update(rows_of(batch))
        else:
            rows_sorted = sorted(rows, key=lambda r: -len(r.inp))
            for batch in _batches(
                rows_sorted, lambda b: len(b) * len(b[0].inp), max_batch_tokens, max_batch_rows
            ):
                _flat_batch(body, score, batch, policy, results, device)
                bar.update(len(batch))
    bar.close()
    return results.out()
