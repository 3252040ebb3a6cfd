"""The embedded synthetic world: pretraining corpus, five multiple-choice tasks, SFT pairs.

Generated from a seed in a closed vocabulary of single Tekken tokens, so a tiny Ministral-3 learns
it in minutes of CPU; why its tasks need the causal mask: docs/embedded.md, "The world". A task
YAML's ``data_files`` is relative to its own folder, so a moved results folder still works."""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablate.core import config
from ablate.core.outputs import io

# every word of both a single Tekken token (with its leading space)
NUMBERS = "one two three four five six seven eight nine ten eleven twelve".split()
THINGS = "box cup hat bag ball book key pen".split()  # the repetition tasks' items

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
        "rest": " ".join(end),
    }


def _again(listed: list[str], repeated: list[str]) -> str:
    """A repetition context: the list, then its start said again."""
    return " ".join(listed) + " . again : " + " ".join(repeated)


def _repeat_list(rng: random.Random, n: int) -> tuple[list[str], int, str]:
    """``n`` distinct items, the position ``k`` (1..n-1) the repetition stops before, the context."""
    items = rng.sample(THINGS, n)
    k = rng.randrange(1, n)
    return items, k, _again(items, items[:k])


def _repeat(n: int, n_wrong: int) -> Callable[[random.Random], dict[str, Any]]:
    def make(rng: random.Random) -> dict[str, Any]:
        items, k, context = _repeat_list(rng, n)
        # distractors from the list itself first (only the order tells them apart), then others
        in_list = rng.sample([x for i, x in enumerate(items) if i != k], min(n_wrong, n - 1))
        others = rng.sample([x for x in THINGS if x not in items], n_wrong - len(in_list))
        return {
            "context": context,
            "answer": items[k],
            "wrong": in_list + others,
            "rest": " ".join(items[k:]),
        }

    return make


def _order(rng: random.Random) -> dict[str, Any]:
    items, k, context = _repeat_list(rng, 4)
    # the other order swaps the answer with a neighbour: same words, the answer no longer follows
    j = k + 1 if k + 1 < len(items) else k - 1
    swapped = list(items)
    swapped[k], swapped[j] = swapped[j], swapped[k]
    other = _again(swapped, items[:k])
    return {
        "context": context,
        "answer": items[k],
        "other_context": other,
        "rest": " ".join(items[k:]),
    }


FACTS: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "emb_count": _count,
    "emb_pair": _repeat(4, 1),
    "emb_repeat3": _repeat(3, 3),
    "emb_repeat5": _repeat(5, 3),
    "emb_order": _order,
}
_MIRRORS = {
    "emb_count": "hellaswag",
    "emb_pair": "piqa",
    "emb_repeat3": "arc_easy",
    "emb_repeat5": "arc_challenge",
    "emb_order": "winogrande",
}
PARTIAL = "emb_order"  # the winogrande-style task: its choices are contexts
TASK_NAMES = tuple(FACTS)


def _rng(seed: int, part: str) -> random.Random:
    # One independent stream per output, so changing the size of one leaves the others alone.
    return random.Random(f"{seed}:{part}")


def _sentence(fact: dict[str, Any]) -> str:
    end = "" if fact["answer"].endswith(".") else " ."
    return f"{fact['context']} {fact['answer']}{end}"


# --- generators ---------------------------------------------------------------------------------


SFT_SPLITS = ("answer", "random")  # where an SFT pair's prompt ends (mask.data.embedded.sft_split)


def _sft_row(fact: dict[str, Any], split: str, rng: random.Random) -> dict[str, str]:
    """A plain pair: a task sentence cut in two (at the answer, or anywhere before it:
    docs/embedded.md, "The world"), the response the rest of it (EOS ends it, not " .")."""
    words = f"{fact['context']} {fact['rest']}".split()
    cut = len(fact["context"].split())
    if split == "random":
        cut = rng.randint(1, cut)
    elif split != "answer":
        raise ValueError(
            f"mask.data.embedded.sft_split: {split!r} is not one of {', '.join(SFT_SPLITS)}"
        )
    return {"prompt": " ".join(words[:cut]), "output": " " + " ".join(words[cut:])}


def _corpus(seed: int, n_docs: int, sentences_per_doc: int) -> list[dict[str, str]]:
    """Pretraining documents ``{"text": ...}``: facts of all tasks in their task templates."""
    rng = _rng(seed, "corpus")
    makers = list(FACTS.values())
    docs = [
        " ".join(_sentence(rng.choice(makers)(rng)) for _ in range(sentences_per_doc))
        for _ in range(n_docs)
    ]
    rng.shuffle(docs)
    return [{"text": d} for d in docs]


def task_docs(name: str, seed: int, n_docs: int) -> list[dict[str, Any]]:
    """Docs of one task; the gold choice sits at a seeded random position."""
    if name not in FACTS:
        raise KeyError(f"unknown embedded task {name!r}; choose one of {', '.join(TASK_NAMES)}")
    rng = _rng(seed, f"task:{name}")
    docs = []
    for i in range(n_docs):
        fact = FACTS[name](rng)
        if name == PARTIAL:
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
    if name == PARTIAL:  # winogrande style: the choices are contexts
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
        "metadata": {"version": 2.0, "mirrors": _MIRRORS[name]},
    }


def sft_pairs(seed: int, n: int, split: str = SFT_SPLITS[0]) -> list[dict[str, str]]:
    """SFT pairs in plain columns (prompt, output) from the same facts."""
    rng = _rng(seed, "sft")
    makers = list(FACTS.values())
    return [_sft_row(rng.choice(makers)(rng), split, rng) for _ in range(n)]


# --- writing ------------------------------------------------------------------------------------


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


def write_sft(path, seed: int, n: int, split: str = SFT_SPLITS[0]) -> Path:
    return io.write_jsonl(path, sft_pairs(seed, n, split))


def options() -> dict[str, Any]:
    """The world's options and the config schema's defaults of them (``mask.data``)."""
    return {
        "seed": config.schema_defaults("properties/mask/properties/data")["seed"],
        **config.schema_defaults("properties/mask/properties/data/properties/embedded"),
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
        "corpus": io.write_jsonl(
            out / "corpus.jsonl", _corpus(p["seed"], p["corpus_docs"], p["sentences_per_doc"])
        ),
        "tasks": out / "tasks",
        "sft": write_sft(out / "sft.jsonl", p["seed"], p["sft_pairs"], p["sft_split"]),
    }


def config_options(configfile: str | os.PathLike) -> dict[str, Any]:
    """The world's options as a config file sets them; PlanError where it is no mask config."""
    from ablate.core.planner.inputs import PlanError, load_config

    loaded = load_config(configfile)
    if "mask" not in loaded:
        raise PlanError(
            f"config {configfile} has no mask: section (the embedded world is the mask study's "
            f"data): give a config of that study, such as {config.DEFAULT_CONFIGFILE}"
        )
    data = loaded["mask"]["data"]
    return {"seed": data["seed"], **{k: data["embedded"][k] for k in options() if k != "seed"}}


def _defaults(configfile: str | None) -> tuple[dict[str, Any], str]:
    """The options ``ablate data`` writes by default and their source (no config: the schema's)."""
    if configfile is None and not Path(config.DEFAULT_CONFIGFILE).is_file():
        return options(), "the config schema's (no config file)"
    configfile = configfile or config.DEFAULT_CONFIGFILE
    return config_options(configfile), f"{configfile}: mask.data"


def main(argv: list[str] | None = None) -> int:
    from ablate.core.planner.inputs import PlanError

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--configfile")
    known, _ = pre.parse_known_args(argv)
    try:
        defaults, source = _defaults(known.configfile)
    except PlanError as exc:
        print(f"ablate data: {exc}", file=sys.stderr)
        return 2
    ap = argparse.ArgumentParser(
        prog="ablate data",
        description="Write the embedded world: corpus.jsonl, tasks/ (lm-eval YAML + jsonl), "
        f"sft.jsonl; by default the world of {config.DEFAULT_CONFIGFILE} (what its make_data "
        "job writes).",
    )
    ap.add_argument("--out", required=True, help="output folder (e.g. results/data)")
    ap.add_argument(
        "--configfile",
        default=config.DEFAULT_CONFIGFILE,
        help="the config whose mask.data gives the defaults below (default %(default)s)",
    )
    for key, value in defaults.items():
        kind = {"choices": SFT_SPLITS} if key == "sft_split" else {"type": int}
        ap.add_argument(
            f"--{key.replace('_', '-')}", default=value, help=f"default {value} ({source})", **kind
        )
    a = ap.parse_args(argv)
    paths = write_all(a.out, **{key: getattr(a, key) for key in defaults})
    for label, path in paths.items():
        print(f"wrote {label}: {path}")
    return 0
