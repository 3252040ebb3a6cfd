"""The embedded bridge world: GSM8K-format word problems, a multi-hop QA set, a pretraining corpus.

Deterministic from a seed, small and regular so that a tiny model learns it from a minute of CPU
pretraining (docs/bridge.md, "The embedded default"); the corpus holds no test prompt.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from ablate.core.outputs import io

_NAMES = "Anna Ben Cara Dan Eva Finn Gina Hugo Ida Jack Kira Leo Mia Nora Omar Pia".split()
_OBJECTS = "apples books cards coins eggs pens cups hats toys shells".split()
CITIES = {  # fixed world facts: the second hop is consistent across the whole world
    "Paris": "France",
    "Rome": "Italy",
    "Madrid": "Spain",
    "Berlin": "Germany",
    "Tokyo": "Japan",
    "Cairo": "Egypt",
    "Lima": "Peru",
    "Oslo": "Norway",
}
DATASET_KIND = {"gsm8k": "gsm8k", "hotpotqa": "qa"}  # the study's dataset name -> scorer kind
_FIELDS = {"gsm8k": ("question", "answer"), "qa": ("question", "context", "answer")}
ANSWER_CUE = "Answer:"


class DatasetError(ValueError):
    pass


def _rng(seed: int, part: str) -> random.Random:
    return random.Random(f"bridge:{seed}:{part}")


def _gsm8k_item(rng: random.Random) -> dict[str, str]:
    name, obj = rng.choice(_NAMES), rng.choice(_OBJECTS)
    op = rng.choices(("add", "sub", "add_sub"), weights=(4, 4, 2))[0]
    if op == "add":
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        q = f"{name} has {a} {obj}. {name} buys {b} more. How many {obj} does {name} have now?"
        steps, result = [f"{a} + {b} = {a + b}"], a + b
    elif op == "sub":
        a = rng.randint(2, 12)
        b = rng.randint(1, a - 1)
        q = f"{name} has {a} {obj}. {name} gives away {b}. How many {obj} does {name} have left?"
        steps, result = [f"{a} - {b} = {a - b}"], a - b
    else:
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        c = rng.randint(1, a + b - 1)
        q = (
            f"{name} has {a} {obj}. {name} buys {b} more and then gives away {c}. "
            f"How many {obj} does {name} have left?"
        )
        steps, result = [f"{a} + {b} = {a + b}", f"{a + b} - {c} = {a + b - c}"], a + b - c
    return {"question": q, "answer": "\n".join(steps) + f"\n#### {result}"}


def _homes(seed: int) -> dict[str, str]:
    """Each person's city: world facts fixed by the seed (every city is someone's home)."""
    cities = sorted(CITIES) * (len(_NAMES) // len(CITIES) + 1)
    _rng(seed, "homes").shuffle(cities)
    return dict(zip(_NAMES, cities, strict=False))


def _qa_item(rng: random.Random, home: dict[str, str]) -> dict[str, Any]:
    people = rng.sample(_NAMES, 3)
    facts = [f"{p} lives in {home[p]}." for p in people]
    facts += [f"{home[p]} is in {CITIES[home[p]]}." for p in people]
    facts = list(dict.fromkeys(facts))  # two of them may share a city
    rng.shuffle(facts)
    return {
        "question": f"In which country does {people[0]} live?",
        "context": facts,
        "answer": CITIES[home[people[0]]],
    }


def _generators(seed: int) -> dict[str, Any]:
    home = _homes(seed)
    return {"gsm8k": _gsm8k_item, "qa": lambda rng: _qa_item(rng, home)}


def prompt(kind: str, item: dict[str, Any]) -> str:
    """The text prompt of an item, ending in the answer cue (no trailing space)."""
    if kind == "gsm8k":
        return f"Question: {item['question']}\n{ANSWER_CUE}"
    context = item["context"]
    context = " ".join(context) if isinstance(context, list) else str(context)
    return f"Context: {context}\nQuestion: {item['question']}\n{ANSWER_CUE}"


def answer_text(kind: str, item: dict[str, Any]) -> str:
    """The continuation a model is trained to produce after the cue (leading space)."""
    return " " + str(item["answer"]).strip()


def generate(kind: str, seed: int, part: str, n: int) -> list[dict[str, Any]]:
    rng, make = _rng(seed, f"{kind}:{part}"), _generators(seed)[kind]
    return [{"id": f"{kind}-{part}-{i:05d}", **make(rng)} for i in range(n)]


def corpus(seed: int, n: int, exclude: set[str]) -> list[dict[str, str]]:
    """``n`` documents, half GSM8K, half QA, none with a question in ``exclude`` (the test sets)."""
    rng, makers = _rng(seed, "corpus"), _generators(seed)
    docs: list[dict[str, str]] = []
    tries = 0
    while len(docs) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise DatasetError(
                f"cannot draw {n} corpus documents outside the test sets: the world is too small"
            )
        kind = "gsm8k" if len(docs) % 2 == 0 else "qa"
        item = makers[kind](rng)
        if prompt(kind, item) in exclude:
            continue
        docs.append({"text": prompt(kind, item) + answer_text(kind, item)})
    return docs


def write_world(
    out_dir: str | os.PathLike,
    *,
    seed: int,
    n_train: int,
    n_test: int,
    n_qa_train: int,
    n_qa_test: int,
    n_corpus: int,
) -> dict[str, Path]:
    """Write the five jsonl files under ``out_dir``; returns name -> path."""
    out = Path(out_dir)
    sets = {
        "gsm8k_train": generate("gsm8k", seed, "train", n_train),
        "gsm8k_test": generate("gsm8k", seed, "test", n_test),
        "qa_train": generate("qa", seed, "train", n_qa_train),
        "qa_test": generate("qa", seed, "test", n_qa_test),
    }
    held_out = {prompt("gsm8k", r) for r in sets["gsm8k_test"]}
    held_out |= {prompt("qa", r) for r in sets["qa_test"]}
    sets["corpus"] = corpus(seed, n_corpus, held_out)
    return {name: io.write_jsonl(out / f"{name}.jsonl", rows) for name, rows in sets.items()}


def load_dataset(path: str | os.PathLike, kind: str) -> list[dict[str, Any]]:
    """Rows of a jsonl dataset, checked: every row has the kind's fields (else DatasetError)."""
    if kind not in _FIELDS:
        raise DatasetError(f"unknown dataset kind {kind!r}; choose one of {', '.join(_FIELDS)}")
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"dataset {p} does not exist")
    rows = []
    with open(p) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"dataset {p} line {n} is not JSON: {exc}") from exc
            for field in _FIELDS[kind]:
                if field not in row:
                    raise DatasetError(
                        f"dataset {p} line {n} lacks the field {field!r} that a {kind} dataset "
                        f"needs (has: {', '.join(sorted(row))})"
                    )
            if kind == "gsm8k" and "####" not in str(row["answer"]):
                raise DatasetError(
                    f"dataset {p} line {n}: field 'answer' has no '#### <number>' final answer"
                )
            row.setdefault("id", f"{p.stem}-{n:05d}")
            rows.append(row)
    if not rows:
        raise DatasetError(f"dataset {p} holds no rows")
    return rows


def check_dataset(path: str | os.PathLike, kind: str) -> None:
    """Raise :class:`DatasetError` naming the file and the missing field; nothing else."""
    load_dataset(path, kind)
