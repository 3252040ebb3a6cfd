"""What each model is fed, the gold-leak guard, greedy generation, scoring of a set of items.

One place builds every input of the study, so the seed's evaluation faults cannot come back: before
any generation :func:`check_no_gold` decodes the ids each model is about to read and refuses an
input that gives the gold answer away (:mod:`ablate.bridge.leak`); a latent input is ``<s>`` + K
soft tokens + ``Answer:`` alone, so the question reaches the target only through the soft tokens.
"""

from __future__ import annotations

from typing import Any

import torch

from ablate.bridge import leak, scoring, world
from ablate.bridge.params import BridgeParams
from ablate.core.models import generation


class GoldLeakError(RuntimeError):
    pass


def check_no_gold(kind: str, item: dict[str, Any], fed: dict[str, str]) -> None:
    """Raise :class:`GoldLeakError` if any input text of ``fed`` gives the gold answer away."""
    for where, text in fed.items():
        found = leak.leaked(kind, item, text)
        if found is not None:
            raise GoldLeakError(
                f"gold leak: item {item.get('id')!r}: its gold answer ({found!r}) appears in the "
                f"{where} ({text[:120]!r}...); evaluation refuses to score an answer the "
                "model was given"
            )


def text_ids(tokenizer, text: str, max_len: int) -> list[int]:
    """BOS + text, cut from the left to ``max_len`` tokens (the cue at the end must survive)."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    if len(ids) > max_len:
        ids = ids[:1] + ids[len(ids) - max_len + 1 :]
    return ids


def head_ids(tokenizer, text: str, k: int) -> list[int]:
    """BOS + the first ``k`` tokens of the whole text (never of a prompt already cut from the left)."""
    return tokenizer(text, add_special_tokens=True)["input_ids"][: 1 + k]


def cue_ids(tokenizer) -> list[int]:
    return tokenizer(world.ANSWER_CUE, add_special_tokens=False)["input_ids"]


def latent_target_ids(tokenizer) -> tuple[list[int], list[int]]:
    """(before, after) the K soft tokens in the target's latent input: [BOS] and the cue."""
    return [tokenizer.bos_token_id], cue_ids(tokenizer)


def answer_ids(tokenizer, kind: str, item: dict[str, Any]) -> list[int]:
    ids = tokenizer(world.answer_text(kind, item), add_special_tokens=False)["input_ids"]
    return ids + [tokenizer.eos_token_id]


def original_answer_ids(tokenizer, kind: str, item: dict[str, Any]) -> list[int]:
    """The original's training tail: BOS + the stripped answer (every token labelled), no EOS."""
    return tokenizer(world.answer_text(kind, item).strip(), add_special_tokens=True)["input_ids"]


def pad_before(length: int, width: int, side: str) -> int:
    """The pad tokens before a row of ``length`` tokens padded to ``width`` on ``side``."""
    return width - length if side == "left" else 0


def pad(id_lists: list[list[int]], pad_id: int, side: str = "right"):
    """(ids [B, T], mask [B, T]) padded on ``side``."""
    width = max(len(x) for x in id_lists)
    ids = torch.full((len(id_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(id_lists), width), dtype=torch.long)
    for i, x in enumerate(id_lists):
        sl = slice(0, len(x)) if side == "right" else slice(width - len(x), width)
        ids[i, sl] = torch.as_tensor(x, dtype=torch.long)
        mask[i, sl] = 1
    return ids, mask


def decoding(params: BridgeParams, tokenizer, batch_size: int | None = None, cache_len=None):
    """Greedy decoding of ``max_new_tokens`` (``hygiene``: repetition penalty, n-gram ban);
    ``cache_len``: the static KV cache's length of a timed decode (None: the engine's own)."""
    return generation.Decoding(
        max_new_tokens=params.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        hygiene=params.hygiene,
        batch_size=batch_size or params.eval_batch_size,
        cache_len=cache_len,
    )


def embed_ids(model, id_lists: list[list[int]]) -> list[torch.Tensor]:
    """Each prompt's input embeddings [T, d]: as for the latent input, generation hygiene then
    sees only the generated tokens; as ``input_ids`` HF would penalise the prompt's tokens too
    (the QA context's countries, the question's numbers: the answer) in the text baselines only."""
    emb = model.get_input_embeddings()
    with torch.no_grad():
        return [emb(torch.as_tensor(ids, device=model.device)) for ids in id_lists]


def generate(
    model, tokenizer, prompts, params, batch_size=None, cache_len=None
) -> tuple[list[str], list[int]]:
    """Greedy continuations of embedded ``prompts``: (texts, new tokens each, EOS included)."""
    new = generation.generate(model, prompts, decoding(params, tokenizer, batch_size, cache_len))
    texts = [tokenizer.decode(row, skip_special_tokens=True) for row in new]
    return texts, [len(row) for row in new]


def score_rows(kind: str, items: list[dict], predictions: list[str]) -> list[dict[str, Any]]:
    rows = []
    for item, pred in zip(items, predictions, strict=True):
        gold = scoring.gold_answer(kind, item)
        s = scoring.score(kind, pred, gold)
        rows.append(
            {
                "id": item["id"],
                "prediction": pred,
                "extracted": s["extracted"],
                "gold": gold,
                "correct": bool(s["correct"]),
                "em": s["em"],
                "f1": s["f1"],
            }
        )
    return rows


def accuracy(rows: list[dict[str, Any]]) -> dict[str, float]:
    n = max(len(rows), 1)
    return {
        "accuracy": sum(r["correct"] for r in rows) / n,
        "em": sum(r["em"] for r in rows) / n,
        "f1": sum(r["f1"] for r in rows) / n,
    }
