"""The embedded synthetic world: pretraining corpus, five multiple-choice tasks, SFT pairs.

Everything the offline pipeline needs is generated here, deterministically from a seed. The world
is small and regular on purpose: a tiny Ministral-3 (real 131072-token Tekken vocabulary, so the
lm_head dominates the cost of every token) must learn it from a minute or two of CPU pretraining.
So it uses a closed vocabulary of common words that are single Tekken tokens, short sentences,
and facts that the corpus states in exactly the template the tasks ask them in.

The five tasks mirror the study's real ones in shape:

====================  ===============  =========================================================
embedded task         mirrors          shape
====================  ===============  =========================================================
``emb_count``         hellaswag        4 endings of a counting sentence (up or down), 4 tokens
``emb_tools``         piqa             goal -> 2 candidate solutions
``emb_opposites``     arc_easy         4-choice question: the opposite of a word
``emb_sums``          arc_challenge    4-choice question: a sum in words (harder)
``emb_animals``       winogrande       partial scoring: 2 contexts ("the cow" / "the cat"), one
                                       shared continuation ("likes grass .")
====================  ===============  =========================================================

Task files are lm-eval YAMLs (``output_type: multiple_choice``, ``dataset_path: json``) next to
their jsonl data; ``data_files`` in the YAML is relative to the YAML's own folder, and
:func:`ablate.mask.evaluation.local_task_configs` resolves it, so a moved results folder or another
working directory still works.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablate.core import config, io

NUMBERS = (
    "one two three four five six seven eight nine ten eleven twelve".split()
)  # each a single Tekken token (with its leading space)
OPPOSITES = (
    ("hot", "cold"),
    ("big", "small"),
    ("fast", "slow"),
    ("up", "down"),
    ("happy", "sad"),
    ("old", "young"),
    ("wet", "dry"),
    ("full", "empty"),
)
TOOLS = (  # (goal, tool): each goal's object word is unique, so it alone names the tool
    ("cut bread", "knife"),
    ("eat soup", "spoon"),
    ("drink tea", "cup"),
    ("write notes", "pen"),
    ("open doors", "key"),
    ("paint walls", "brush"),
    ("hit nails", "hammer"),
    ("cut wood", "saw"),
    ("sew shirts", "needle"),
)
FOODS = (
    ("cow", "grass"),
    ("cat", "fish"),
    ("dog", "bones"),
    ("bird", "seeds"),
    ("bee", "honey"),
    ("horse", "hay"),
    ("mouse", "cheese"),
    ("monkey", "nuts"),
    ("owl", "mice"),
    ("frog", "flies"),
)
SUM_OPERANDS = NUMBERS[:5]  # one..five: sums two..ten, near distractors stay inside NUMBERS

# --- facts: one template per task, shared by the corpus, the tasks and the SFT pairs -----------


def _count(rng: random.Random) -> dict[str, Any]:
    direction = rng.choice(("up", "down"))
    seq = list(NUMBERS) if direction == "up" else list(reversed(NUMBERS))
    start = rng.randrange(0, len(seq) - 5)
    ctx, end = seq[start : start + 3], seq[start + 3 : start + 6]
    wrong: list[list[str]] = []
    while len(wrong) < 3:
        cand = rng.sample(NUMBERS, 3)
        if cand != end and cand not in wrong:
            wrong.append(cand)
    return {
        "context": f"count {direction} : " + " ".join(ctx),
        "answer": " ".join(end) + " .",
        "wrong": [" ".join(w) + " ." for w in wrong],
        "sft": ("count on from these numbers .", " ".join(ctx), " ".join(end)),
    }


def _tools(rng: random.Random) -> dict[str, Any]:
    goal, tool = rng.choice(TOOLS)
    other = rng.choice([t for _, t in TOOLS if t != tool])
    return {
        "context": f"to {goal} use",
        "answer": f"{tool} .",
        "wrong": [f"{other} ."],
        "sft": ("which tool do you use for this ?", goal, f"a {tool}"),
    }


def _opposites(rng: random.Random) -> dict[str, Any]:
    pair = rng.choice(OPPOSITES)
    word, opp = pair if rng.random() < 0.5 else pair[::-1]
    pool = [w for p in OPPOSITES for w in p if w not in pair]
    return {
        "context": f"the opposite of {word} is",
        "answer": opp,
        "wrong": rng.sample(pool, 3),
        "sft": ("what is the opposite of this word ?", word, opp),
    }


def _sums(rng: random.Random) -> dict[str, Any]:
    a, b = rng.choice(SUM_OPERANDS), rng.choice(SUM_OPERANDS)
    total = NUMBERS.index(a) + NUMBERS.index(b) + 1  # index of the sum word
    near = [NUMBERS[j] for j in range(total - 3, total + 4) if 1 <= j < len(NUMBERS) and j != total]
    return {
        "context": f"{a} plus {b} is",
        "answer": NUMBERS[total],
        "wrong": rng.sample(near, 3),
        "sft": ("add the two numbers .", f"{a} plus {b}", NUMBERS[total]),
    }


def _animals(rng: random.Random) -> dict[str, Any]:
    animal, food = rng.choice(FOODS)
    other = rng.choice([a for a, _ in FOODS if a != animal])
    return {
        "context": f"the {animal}",
        "answer": f"likes {food} .",
        "other_context": f"the {other}",
        "sft": ("what does this animal like ?", animal, food),
    }


FACTS: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "emb_count": _count,
    "emb_tools": _tools,
    "emb_opposites": _opposites,
    "emb_sums": _sums,
    "emb_animals": _animals,
}
MIRRORS = {
    "emb_count": "hellaswag",
    "emb_tools": "piqa",
    "emb_opposites": "arc_easy",
    "emb_sums": "arc_challenge",
    "emb_animals": "winogrande",
}
TASK_NAMES = tuple(FACTS)


def _rng(seed: int, part: str) -> random.Random:
    # One independent stream per output, so changing the size of one leaves the others alone.
    return random.Random(f"{seed}:{part}")


def _sentence(fact: dict[str, Any]) -> str:
    return f"{fact['context']} {fact['answer']}"


# --- generators ---------------------------------------------------------------------------------


def corpus(seed: int, n_docs: int, sentences_per_doc: int) -> list[dict[str, str]]:
    """Pretraining documents ``{"text": ...}``: facts of all tasks, in their task templates."""
    rng = _rng(seed, "corpus")
    makers = list(FACTS.values())
    return [
        {"text": " ".join(_sentence(rng.choice(makers)(rng)) for _ in range(sentences_per_doc))}
        for _ in range(n_docs)
    ]


def task_docs(name: str, seed: int, n_docs: int) -> list[dict[str, Any]]:
    """Docs of one task; the gold choice sits at a seeded random position."""
    if name not in FACTS:
        raise KeyError(f"unknown embedded task {name!r}; choose one of {', '.join(TASK_NAMES)}")
    rng = _rng(seed, f"task:{name}")
    docs = []
    for i in range(n_docs):
        fact = FACTS[name](rng)
        if name == "emb_animals":
            options = [fact["context"], fact["other_context"]]
            label = rng.randrange(2)
            if label:
                options.reverse()
            docs.append(
                {"id": i, "options": options, "continuation": fact["answer"], "label": label}
            )
            continue
        choices = list(fact["wrong"])
        label = rng.randrange(len(choices) + 1)
        choices.insert(label, fact["answer"])
        docs.append({"id": i, "context": fact["context"], "choices": choices, "label": label})
    return docs


def task_yaml(name: str) -> dict[str, Any]:
    """lm-eval task config; ``data_files`` is relative to the YAML's folder."""
    if name == "emb_animals":  # winogrande style: the choices are contexts
        fields = {
            "doc_to_text": "label",
            "doc_to_choice": "options",
            "doc_to_target": "continuation",
        }
    else:
        fields = {"doc_to_text": "context", "doc_to_choice": "choices", "doc_to_target": "label"}
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": f"{name}.jsonl"}},
        "test_split": "test",
        "output_type": "multiple_choice",
        **fields,
        "metric_list": [
            {"metric": m, "aggregation": "mean", "higher_is_better": True}
            for m in ("acc", "acc_norm")
        ],
        "metadata": {"version": 1.0, "mirrors": MIRRORS[name]},
    }


def sft_pairs(seed: int, n: int) -> list[dict[str, str]]:
    """Instruction pairs in Alpaca columns (instruction, input, output) from the same facts."""
    rng = _rng(seed, "sft")
    makers = list(FACTS.values())
    rows = []
    for _ in range(n):
        instruction, inp, out = rng.choice(makers)(rng)["sft"]
        rows.append({"instruction": instruction, "input": inp, "output": out})
    return rows


# --- writing ------------------------------------------------------------------------------------


def write_corpus(path, seed: int, n_docs: int, sentences_per_doc: int) -> Path:
    return io.write_jsonl(path, corpus(seed, n_docs, sentences_per_doc))


def write_tasks(out_dir, seed: int, n_docs: int, names=TASK_NAMES) -> dict[str, Path]:
    """``<out_dir>/<task>.jsonl`` + ``<task>.yaml`` per task; returns task -> YAML path."""
    import yaml

    out = Path(out_dir)
    written = {}
    for name in names:
        io.write_jsonl(out / f"{name}.jsonl", task_docs(name, seed, n_docs))
        written[name] = io.write_text(
            out / f"{name}.yaml", yaml.safe_dump(task_yaml(name), sort_keys=False)
        )
    return written


def write_sft(path, seed: int, n: int) -> Path:
    return io.write_jsonl(path, sft_pairs(seed, n))


def options() -> dict[str, Any]:
    """The world's options and their defaults: the config schema's ``data.seed`` and
    ``data.embedded`` (the pipeline passes its validated config; ``ablate data`` these)."""
    return {
        "seed": config.schema_defaults("properties/data")["seed"],
        **config.schema_defaults("properties/data/properties/embedded"),
    }


def write_all(out_dir, **overrides: Any) -> dict[str, Path]:
    """corpus.jsonl, tasks/, sft.jsonl under ``out_dir`` (the layout of results/data/)."""
    defaults = options()
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise KeyError(f"unknown embedded data option(s): {', '.join(sorted(unknown))}")
    p = {**defaults, **overrides}
    out = Path(out_dir)
    write_tasks(out / "tasks", p["seed"], p["task_docs"])
    return {
        "corpus": write_corpus(
            out / "corpus.jsonl", p["seed"], p["corpus_docs"], p["sentences_per_doc"]
        ),
        "tasks": out / "tasks",
        "sft": write_sft(out / "sft.jsonl", p["seed"], p["sft_pairs"]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ablate data",
        description="Write the embedded world: corpus.jsonl, tasks/ (lm-eval YAML + jsonl), sft.jsonl.",
    )
    ap.add_argument("--out", required=True, help="output folder (e.g. results/data)")
    defaults = options()
    for key, value in defaults.items():
        ap.add_argument(
            f"--{key.replace('_', '-')}", type=int, default=value, help=f"default {value}"
        )
    a = ap.parse_args(argv)
    paths = write_all(a.out, **{key: getattr(a, key) for key in defaults})
    for label, path in paths.items():
        print(f"wrote {label}: {path}")
    return 0
