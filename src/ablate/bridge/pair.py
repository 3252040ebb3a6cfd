"""A frozen (source, target) model pair and the translator between them: inputs, losses, generation.

Only the translator learns: both models are frozen. Every tensor the bridge builds is built here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ablate.bridge import evaluate, models, switches, world
from ablate.bridge.parallel import global_count
from ablate.bridge.params import BridgeParams
from ablate.core.execution import parallel
from ablate.core.training import params as training_params
from ablate.core.training import speed
from ablate.core.training.loss import share_of_mean
from ablate.core.training.params import IGNORE_INDEX


def model_dtype(p: BridgeParams) -> str:
    """The frozen pair's dtype name (the core's rule, :func:`ablate.core.training.params.weights_dtype`)."""
    dtype = training_params.weights_dtype(p.model_dtype)
    return training_params.dtype_name(dtype)


def infonce(
    pooled_soft: torch.Tensor, pooled_prompt: torch.Tensor, temperature: float, group: int
) -> torch.Tensor:
    """InfoNCE of the pooled soft tokens against the pooled prompts, each row's negatives the
    other rows of its group of ``group`` consecutive rows: one process's loss in groups is the
    data-parallel one (DDP averages the group losses), so rows per GPU can grow, the loss stays."""
    a, b = F.normalize(pooled_soft, dim=-1), F.normalize(pooled_prompt, dim=-1)
    losses = []
    for ga, gb in zip(a.split(group), b.split(group), strict=True):
        logits = ga @ gb.T / temperature
        losses.append(F.cross_entropy(logits, torch.arange(len(ga), device=a.device)))
    return losses[0] if len(losses) == 1 else torch.stack(losses).mean()


@dataclass
class Pair:
    source: Any
    src_tok: Any
    target: Any
    tgt_tok: Any
    kind: str
    p: BridgeParams
    #: cached source states (ablate.bridge.states.Reader): read instead of running the source
    cache: Any = None
    #: cached teacher rows of the KL term (a Reader too): read instead of the teacher forward
    teacher_cache: Any = None
    #: the target's decoder layers compiled for the training forward (set on CUDA by
    #: ``entries.train_entry``); evaluation decodes eagerly or through its own compiled step
    compiled: bool = False

    @property
    def device(self) -> torch.device:
        return self.target.device

    # --- what each model is fed ------------------------------------------------------------
    def source_ids(self, item) -> list[int]:
        return evaluate.text_ids(self.src_tok, world.prompt(self.kind, item), self.p.max_source_len)

    def prompt_ids(self, item) -> list[int]:
        return evaluate.text_ids(self.tgt_tok, world.prompt(self.kind, item), self.p.max_prompt_len)

    def fed_latent(self, item) -> dict[str, str]:
        """The texts the latent mode feeds: the source's input, the target's token input."""
        before, after = evaluate.latent_target_ids(self.tgt_tok)
        return {
            "source input": self.src_tok.decode(self.source_ids(item), skip_special_tokens=True),
            "target input (around the soft tokens)": self.tgt_tok.decode(
                before + after, skip_special_tokens=True
            ),
        }

    # --- tensors ---------------------------------------------------------------------------
    @torch.no_grad()
    def source_states(self, items):
        """The source's last-layer states of ``items``, right-padded: (states [B, S, d], mask)."""
        if self.cache is not None:
            return self.cache.batch(items, self.device)
        ids, mask = evaluate.pad([self.source_ids(i) for i in items], self.src_tok.pad_token_id)
        ids, mask = ids.to(self.source.device), mask.to(self.source.device)
        h = self.source.base_model(
            input_ids=ids, attention_mask=mask, use_cache=False
        ).last_hidden_state
        return h, mask

    def soft(self, translator, items) -> torch.Tensor:
        h, mask = self.source_states(items)
        return translator(h.to(self.device), mask.to(self.device))

    def latent_embeds(
        self, soft: torch.Tensor, tails: list[list[int]] | None = None, cue: bool = True
    ):
        """[BOS] + soft + cue (+ per-row ``tails``), padded on the side ``padding`` names:
        (embeds, mask, each row's first tail position [B]); ``cue=False``: the original's input."""
        before, after = evaluate.latent_target_ids(self.tgt_tok)
        after = after if cue else []
        b = soft.shape[0]
        tails = tails or [[] for _ in range(b)]
        texts = [after + t for t in tails]
        ids, mask = evaluate.pad(texts, self.tgt_tok.pad_token_id, self.p.padding)
        emb = self.target.get_input_embeddings()
        dt = emb.weight.dtype
        head = emb(torch.tensor(before, device=self.device)).expand(b, -1, -1)
        embeds = torch.cat([head, soft.to(dt), emb(ids.to(self.device))], dim=1)
        ones = torch.ones(b, len(before) + soft.shape[1], dtype=torch.long)
        full_mask = torch.cat([ones, mask], dim=1).to(self.device)
        pads = torch.tensor(
            [evaluate.pad_before(len(x), ids.shape[1], self.p.padding) for x in texts]
        )
        return embeds, full_mask, len(before) + soft.shape[1] + len(after) + pads.to(self.device)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.target.get_output_embeddings()(hidden).float()

    def tails(self, items) -> tuple[list[list[int]], int]:
        """The labelled target tokens after the soft tokens (``nll_labels``) and the index of the
        answer's first token in them (0; ``original``: 1, after its labelled BOS)."""
        if self.p.nll_labels == "original":
            return [evaluate.original_answer_ids(self.tgt_tok, self.kind, i) for i in items], 1
        return [evaluate.answer_ids(self.tgt_tok, self.kind, i) for i in items], 0

    def _head_prompt_ids(self, item) -> list[int]:
        """The prompt's first K tokens, BOS included (the original's ``max_length=K`` cut)."""
        prompt = world.prompt(self.kind, item)
        return evaluate.head_ids(self.tgt_tok, prompt, self.p.K - 1)

    # --- training loss ---------------------------------------------------------------------
    def loss(
        self, translator, items, step: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """The NLL, KL, InfoNCE and prompt-alignment terms (docs/bridge.md, "Losses"):
        data-parallel, this process's share of the global batch's loss, so that DDP's gradient
        average is that loss's gradient. (loss, parts, tokens) stay on the device: nothing is
        read to the host in a step."""
        p = self.p
        soft = self.soft(translator, items)
        tails, start = self.tails(items)
        embeds, mask, firsts = self.latent_embeds(soft, tails, cue=start == 0)
        # use_cache=False: a hub config's KV cache would only fill memory and make compiled
        # layers recompile per layer
        with speed.layers_compiled(self.target, self.compiled):
            h = self.target.base_model(
                inputs_embeds=embeds, attention_mask=mask, use_cache=False
            ).last_hidden_state
        # one more row where the KL counts the one at the answer's last token (no label there)
        width = max(len(a) for a in tails) + switches.kl_last_row(p)
        labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
        for r, a in enumerate(tails):
            labels[r, : len(a)] = torch.as_tensor(a)
        labels = labels.to(self.device)
        # position first-1+j predicts tail token j; soft tokens and the prompt carry no label
        pos = (firsts[:, None] - 1 + torch.arange(width, device=self.device)).clamp_max(
            h.shape[1] - 1
        )
        student = self._logits(h.gather(1, pos.unsqueeze(-1).expand(-1, -1, h.shape[-1])))
        if parallel.world_size() == 1:
            nll = speed.token_cross_entropy(student, labels, IGNORE_INDEX)
        else:  # a token mean over the global batch: each process's sum over the global count
            nll_sum = speed.token_cross_entropy(student, labels, IGNORE_INDEX, reduction="sum")
            nll = share_of_mean(nll_sum, global_count((labels != IGNORE_INDEX).sum()))
        parts = {"nll": nll.detach()}
        total = nll
        prompts = [self.prompt_ids(i) for i in items]
        if step in switches.kl_steps(p):
            # the KL compares the answer's rows: a labelled BOS before them (the original's) is not
            answers = [t[start:] for t in tails]
            kl = self._kl(h, student[:, start:], items, prompts, answers)
            total = total + p.kl_weight * kl
            parts["kl"] = kl.detach()
        pooled_soft = soft.float().mean(1)
        if p.infonce_weight > 0:
            heads = p.infonce_prompt == "first_k"
            pooled = self.pooled_prompt(
                [self._head_prompt_ids(i) for i in items] if heads else prompts
            )
            group = switches.infonce_group(p)
            nce = infonce(pooled_soft, pooled, p.infonce_temperature, group)
            total = total + p.infonce_weight * nce
            parts["infonce"] = nce.detach()
        if p.prompt_align_weight > 0:
            if p.prompt_align == "per_position":
                align = self._aligned_positions(soft, [self._head_prompt_ids(i) for i in items])
            else:
                align = F.mse_loss(pooled_soft, self.pooled_prompt(prompts))
            total = total + p.prompt_align_weight * align
            parts["align"] = align.detach()
        tokens = mask.sum() + sum(len(self.source_ids(i)) for i in items)
        return total, parts, tokens

    def _teacher_inputs(self, prompts, answers) -> tuple[list[list[int]], list[int], list[int]]:
        """The KL teacher's inputs, each row's first compared position, its compared rows."""
        if self.p.kl_teacher == "prompt_only":
            return prompts, [0] * len(prompts), [len(pr) for pr in prompts]
        rows = [len(a) + switches.kl_last_row(self.p) for a in answers]
        if self.p.kl_teacher == "answer_only":
            bos = [self.tgt_tok.bos_token_id]
            return [bos + a for a in answers], [0] * len(answers), rows
        seqs = [pr + a for pr, a in zip(prompts, answers, strict=True)]
        return seqs, [len(pr) - 1 for pr in prompts], rows

    @torch.no_grad()
    def _teacher_hidden(self, prompts, answers, n: int) -> torch.Tensor:
        """The teacher's final states at its first n compared rows: [B, n, d]."""
        seqs, starts, _ = self._teacher_inputs(prompts, answers)
        side = self.p.padding
        ids, mask = evaluate.pad(seqs, self.tgt_tok.pad_token_id, side)
        h = self.target.base_model(
            input_ids=ids.to(self.device), attention_mask=mask.to(self.device), use_cache=False
        ).last_hidden_state
        width = ids.shape[1]
        firsts = [s + evaluate.pad_before(len(x), width, side) for s, x in zip(starts, seqs)]
        pos = torch.tensor(
            [[min(f + j, width - 1) for j in range(n)] for f in firsts], device=self.device
        )
        return h.gather(1, pos.unsqueeze(-1).expand(-1, -1, h.shape[-1]))

    @torch.no_grad()
    def teacher_states(self, items):
        """Per item its first ``kl_positions`` teacher rows: what the teacher cache stores."""
        prompts = [self.prompt_ids(i) for i in items]
        tails, start = self.tails(items)
        answers = [t[start:] for t in tails]
        _, _, rows = self._teacher_inputs(prompts, answers)
        lengths = [min(self.p.kl_positions, r) for r in rows]
        h = self._teacher_hidden(prompts, answers, max(lengths))
        mask = torch.tensor([[int(j < n) for j in range(h.shape[1])] for n in lengths])
        return h, mask

    @torch.no_grad()
    def _teacher_logits(self, items, prompts, answers, n: int) -> torch.Tensor:
        if self.teacher_cache is not None:
            # n = the longest stored row count of the batch: min(kl_positions, longest answer)
            rows = self.teacher_cache.batch(items, self.device)[0][:, :n]
        else:
            rows = self._teacher_hidden(prompts, answers, n)
        return self._logits(rows)

    def _kl(self, h, student, items, prompts, answers) -> torch.Tensor:
        """KL(p_text || p_bridged) over the first ``kl_positions`` compared rows (``prompt_only``:
        the soft tokens' positions of ``h``); a row past an answer's end never counts."""
        p = self.p
        rows = self._teacher_inputs(prompts, answers)[2]  # each item's compared rows
        if p.kl_teacher == "prompt_only":
            n = min(p.kl_positions, p.K, max(len(pr) for pr in prompts))
            first = len(evaluate.latent_target_ids(self.tgt_tok)[0])  # the soft tokens' start
            student = self._logits(h[:, first : first + n])
        else:
            n = min(p.kl_positions, student.shape[1])
            student = student[:, :n]
        valid = torch.tensor([[float(j < r) for j in range(n)] for r in rows]).to(self.device)
        teacher = self._teacher_logits(items, prompts, answers, n)
        log_t = teacher.log_softmax(-1)  # KL per row, from the teacher's log-probs
        kl = (log_t.exp() * (log_t - student.log_softmax(-1))).sum(-1)
        count = valid.sum() if p.kl_reduction == "mean" else valid.new_tensor(len(items))
        return share_of_mean((kl * valid).sum(), global_count(count))

    def _aligned_positions(self, soft, heads) -> torch.Tensor:
        """The original's prompt alignment: soft token k against prompt token k's embedding."""
        ids, mask = evaluate.pad(heads, self.tgt_tok.pad_token_id)
        e = self.target.get_input_embeddings()(ids.to(self.device)).float()
        m = mask.to(self.device).unsqueeze(-1).float()
        diff = (soft.float()[:, : e.shape[1]] - e) * m
        return share_of_mean(diff.pow(2).sum(), global_count(m.sum()))

    @torch.no_grad()
    def pooled_prompt(self, prompts) -> torch.Tensor:
        ids, mask = evaluate.pad(prompts, self.tgt_tok.pad_token_id)
        e = self.target.get_input_embeddings()(ids.to(self.device)).float()
        m = mask.to(self.device).unsqueeze(-1).float()
        return (e * m).sum(1) / m.sum(1)

    # --- evaluation ------------------------------------------------------------------------
    @torch.no_grad()
    def latent_rows(self, translator, items) -> list[torch.Tensor]:
        """Each item's latent input embeddings [1 + K + cue, d]."""
        rows: list[torch.Tensor] = []
        bs = self.p.eval_batch_size
        for i in range(0, len(items), bs):
            embeds, _, _ = self.latent_embeds(self.soft(translator, items[i : i + bs]))
            rows.extend(embeds.unbind(0))
        return rows

    @torch.no_grad()
    def evaluate_latent(self, translator, items) -> list[dict[str, Any]]:
        """Bridged generation on ``items`` (gold-leak guard first), scored rows."""
        for item in items:
            evaluate.check_no_gold(self.kind, item, self.fed_latent(item))
        preds, _ = evaluate.generate(
            self.target, self.tgt_tok, self.latent_rows(translator, items), self.p
        )
        return evaluate.score_rows(self.kind, items, preds)


def load_pair(
    source_card, target_card, kind: str, p: BridgeParams, cache=None, teacher_cache=None
) -> Pair:
    """The frozen pair; with ``cache`` the source's weights are not loaded."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = model_dtype(p)
    if cache is None:
        source, src_tok = models.load(source_card, dtype=dtype, device=dev)
    else:
        source, src_tok = models.load_config(source_card)
    target, tgt_tok = models.load(target_card, dtype=dtype, device=dev)
    models.check_distinct_tokenizers(src_tok, tgt_tok)
    return Pair(source, src_tok, target, tgt_tok, kind, p, cache, teacher_cache)


def card_inputs(**cards) -> dict[str, str]:
    """Provenance inputs: model cards given as paths (a card dict is recorded in the config)."""
    return {k: v for k, v in cards.items() if isinstance(v, (str, os.PathLike))}
