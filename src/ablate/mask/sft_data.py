"""Instruction/response pairs: loading, prompt formatting, tokenization with prompt lengths.

Alpaca rows (``instruction``, ``input``, ``output``) go into an SFT format's template
(:data:`SFT_FORMATS`, docs/training.md). Plain rows (``prompt``, ``output``), the embedded world's,
take no template: the response is ``output`` as written (a leading space included), so prompt +
output is the sentence the evaluation scores.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ALPACA_COLUMNS = ("instruction", "input", "output")
_PLAIN_COLUMNS = ("prompt", "output")
#: The SFT formats of Alpaca rows: the templates with and without an input, whether the fields
#: are stripped and whether the prompt starts with BOS. The response is followed by EOS in both
#: (the original appended the string ``</s>``, which Tekken encodes as the EOS token).
SFT_FORMATS: dict[str, dict[str, Any]] = {
    "alpaca": {
        "with_input": (
            "Below is an instruction that describes a task, paired with an input that provides "
            "further context. Write a response that appropriately completes the request.\n\n"
            "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
        ),
        "no_input": (
            "Below is an instruction that describes a task. Write a response that appropriately "
            "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
        ),
        "strip": False,
        "bos": True,
    },
    "original": {
        "with_input": "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
        "no_input": "### Instruction:\n{instruction}\n\n### Response:\n",
        "strip": True,
        "bos": False,
    },
}


class SFTDataError(ValueError):
    pass


@dataclass(frozen=True)
class TokenizedPair:
    input_ids: list[int]
    prompt_length: int  # tokens of input_ids that belong to the prompt (BOS included)


def is_plain(row: dict[str, Any]) -> bool:
    """A plain row (a text and its continuation) rather than an Alpaca one."""
    return "prompt" in row


def check_columns(rows: list[dict[str, Any]], source: str) -> None:
    if not rows:
        raise SFTDataError(f"SFT dataset {source} is empty")
    needed = _PLAIN_COLUMNS if is_plain(rows[0]) else ("instruction", "output")
    missing = [c for c in needed if c not in rows[0]]
    if missing:
        raise SFTDataError(
            f"SFT dataset {source} lacks column(s) {', '.join(missing)} "
            f"(has: {', '.join(sorted(rows[0]))}); expected Alpaca columns {_ALPACA_COLUMNS} "
            f"or plain columns {_PLAIN_COLUMNS}"
        )
    empty = [i for i, r in enumerate(rows) if not str(r.get("output") or "").strip()]
    if empty:
        raise SFTDataError(
            f"SFT dataset {source}: {len(empty)} row(s) have an empty 'output' response "
            f"(first at row {empty[0]})"
        )


def _format(sft_format: str) -> dict[str, Any]:
    if sft_format not in SFT_FORMATS:
        raise SFTDataError(
            f"unknown SFT format {sft_format!r} (mask.data.sft_format): "
            f"use one of {', '.join(SFT_FORMATS)}"
        )
    return SFT_FORMATS[sft_format]


def _field(row: dict[str, Any], key: str, fmt: dict[str, Any]) -> str:
    text = str(row.get(key) or "")
    return text.strip() if fmt["strip"] else text


def format_prompt(row: dict[str, Any], sft_format: str = "alpaca") -> str:
    """The prompt of a row: a plain row's as written, an Alpaca row's in ``sft_format``."""
    if is_plain(row):  # no template
        return str(row["prompt"])
    fmt = _format(sft_format)
    instruction = _field(row, "instruction", fmt)
    if str(row.get("input") or "").strip():
        return fmt["with_input"].format(instruction=instruction, input=_field(row, "input", fmt))
    return fmt["no_input"].format(instruction=instruction)


def is_local(source: str | Path) -> bool:
    """A local ``.jsonl`` file or folder, not a datasets id."""
    return Path(source).suffix == ".jsonl" or Path(source).exists()


def pinned(source: str, results: str | os.PathLike | None) -> str:
    """A hub dataset id (``<id>`` or ``<id>@<branch or tag>``) as ``<id>@<commit>`` by the hub
    revisions' lock in ``results``, so the run key names the data's commit, not a branch that
    moves; a local file as it is."""
    if is_local(source):
        return source
    from ablate.core.outputs import hub_revisions

    repo, _, rev = source.partition("@")
    return f"{repo}@{hub_revisions.resolve(repo, rev or None, results, 'dataset')}"


def load_rows(source: str | Path, split: str = "train") -> list[dict[str, Any]]:
    """Rows from a local ``.jsonl`` file, or a datasets id (``<id>@<revision>`` too)."""
    path = Path(source)
    if is_local(source):
        if not path.exists():
            raise SFTDataError(f"SFT data file {path} does not exist")
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    else:
        import datasets

        repo, _, rev = str(source).partition("@")
        try:
            rows = list(datasets.load_dataset(repo, split=split, revision=rev or None))
        except Exception as exc:
            raise SFTDataError(f"cannot load SFT dataset {source!r}: {exc}") from exc
    check_columns(rows, str(source))
    return rows


def split_rows(
    rows: list[dict[str, Any]], eval_size: int, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Deterministic train/eval split (shuffle by ``seed``, hold out ``eval_size`` rows)."""
    if eval_size >= len(rows):
        raise SFTDataError(
            f"eval_size {eval_size} leaves no training rows (dataset has {len(rows)})"
        )
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = set(order[:eval_size])
    train = [r for i, r in enumerate(rows) if i not in held]
    evals = [rows[i] for i in sorted(held)]
    return train, evals


def step_error(batch_size: int, grad_accum: int, train_rows: int, counted: str = "") -> str | None:
    """Why a finetune cannot take steps of ``batch_size x grad_accum`` examples from
    ``train_rows`` rows (a step would hold rows twice: the loop draws a step from a stream of
    epochs), else None. ``counted``: how the rows were counted, said after their number."""
    per_step = batch_size * grad_accum
    if per_step <= train_rows:
        return None
    return (
        f"a step of batch_size {batch_size} x grad_accum {grad_accum} = {per_step} examples is "
        f"more than the {train_rows} rows it trains on{counted}: a step would hold rows twice "
        "(the gradient of one pass over them, at more cost); make batch_size x grad_accum at "
        f"most {train_rows}"
    )


def tokenize_pair(
    tokenizer, row: dict[str, Any], max_seq_len: int, sft_format: str = "alpaca"
) -> TokenizedPair:
    """BOS (a plain row, or the format's) + prompt, then response + EOS; truncated at
    ``max_seq_len`` keeping >= 1 response token."""
    fmt = _format(sft_format)
    bos = is_plain(row) or fmt["bos"]
    prompt_ids = tokenizer(format_prompt(row, sft_format), add_special_tokens=bos)["input_ids"]
    output = str(row["output"]) if is_plain(row) else _field(row, "output", fmt)
    response_ids = tokenizer(output, add_special_tokens=False)["input_ids"]
    response_ids = response_ids + [tokenizer.eos_token_id]
    prompt_ids = prompt_ids[: max(1, max_seq_len - 1)]
    ids = (prompt_ids + response_ids)[:max_seq_len]
    return TokenizedPair(input_ids=ids, prompt_length=len(prompt_ids))


def tokenize_rows(
    tokenizer, rows: Iterable[dict[str, Any]], max_seq_len: int, sft_format: str = "alpaca"
) -> list[TokenizedPair]:
    return [tokenize_pair(tokenizer, r, max_seq_len, sft_format) for r in rows]


def length_stats(pairs: list[TokenizedPair], max_seq_len: int) -> dict[str, Any]:
    """Token lengths of prepared pairs, which the planner forecasts a finetune from."""
    lens = sorted(len(p.input_ids) for p in pairs)
    if not lens:
        return {"n": 0, "max_seq_len": max_seq_len}
    return {
        "n": len(lens),
        "mean": sum(lens) / len(lens),
        "median": lens[len(lens) // 2],
        "p90": lens[min(len(lens) - 1, int(0.9 * len(lens)))],
        "max": lens[-1],
        "prompt_mean": sum(p.prompt_length for p in pairs) / len(pairs),
        "truncated": sum(n >= max_seq_len for n in lens),
        "max_seq_len": max_seq_len,
    }
