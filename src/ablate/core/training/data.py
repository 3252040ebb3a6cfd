"""Training examples (token ids with a prompt length), the padding collator, a pretraining
corpus and its packing into blocks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ablate.core.training.params import IGNORE_INDEX, TrainingConfigError


class PolicyCollator:
    """Right-pads a batch; labels are -100 on the first ``prompt_length`` tokens and on pads.
    ``prompt_lengths`` travels with the batch for a forward-kwargs hook (a prefix-LM mask)."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(ex["input_ids"]) for ex in batch)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        n = len(batch)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        prompt_lengths = torch.zeros(n, dtype=torch.long)
        for i, ex in enumerate(batch):
            ids = torch.as_tensor(ex["input_ids"], dtype=torch.long)
            k, pl = len(ids), int(ex["prompt_length"])
            input_ids[i, :k] = ids
            attention_mask[i, :k] = 1
            labels[i, pl:k] = ids[pl:]
            prompt_lengths[i] = pl
        return dict(
            input_ids=input_ids,
            attention_mask=attention_mask,
            labels=labels,
            prompt_lengths=prompt_lengths,
        )


def load_corpus(corpus: str | os.PathLike) -> list[str]:
    """Documents of a pretraining corpus: ``.jsonl`` rows with a ``text`` field, or one per line of a text file."""
    path = Path(corpus)
    if not path.exists():
        raise TrainingConfigError(f"pretraining corpus {path} does not exist")
    if path.suffix == ".jsonl":
        docs = []
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if "text" not in row:
                    raise TrainingConfigError(
                        f"pretraining corpus {path} line {n} lacks column 'text' (has: {', '.join(sorted(row))})"
                    )
                docs.append(str(row["text"]))
    else:
        docs = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not docs:
        raise TrainingConfigError(f"pretraining corpus {path} holds no documents")
    return docs


def pack_corpus(tokenizer, docs: list[str], seq_len: int) -> list[list[int]]:
    """Concatenate BOS + doc + EOS token streams and cut them into full ``seq_len`` blocks."""
    stream: list[int] = []
    for ids in tokenizer(docs, add_special_tokens=True)["input_ids"]:
        stream.extend(ids)
        stream.append(tokenizer.eos_token_id)
    blocks = [stream[i : i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len)]
    if not blocks:
        raise TrainingConfigError(
            f"the corpus has {len(stream)} tokens: fewer than one block of max_seq_len={seq_len}"
        )
    return blocks
