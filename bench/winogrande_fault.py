"""The original study's winogrande fault measured (docs/differences.md, "The original's winogrande
fault"): eval_mcq.py tokenizes its prompt ``sentence.split("_")[0]`` with the trailing space, so
with Tekken its scored span (``full[len(prompt_ids):]``) starts one token late; the task
``winogrande_original`` scores option + rest (lm-eval moves the space into the continuation).

    PYTHONPATH=src python bench/winogrande_fault.py [--out FILE.md]

On a generated set of winogrande-shaped sentences (every template below with every option pair:
a blank, two options, the rest of the sentence), with the real Tekken tokenizer
(``ablate.mask.tiny.prepare_tekken_tokenizer``) and the tests' random-init tiny Ministral-3
(``tiny_ministral3_config``, seed 0; the real model is not reachable offline), fp32, no BOS (the
original protocol): how many requests lose tokens of their option from the scored span, how
many, and how far the summed and the length-normalised log-likelihood move; how many sentences
change their predicted option (the original's ``--length-normalize`` argmax). One thread.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from references import eval_mcq_logprob  # noqa: E402

from ablate.core.models.modeling import load_causal_lm, load_tokenizer  # noqa: E402
from ablate.core.training.pretraining import random_model  # noqa: E402
from ablate.mask.tiny import prepare_tekken_tokenizer, tiny_ministral3_config  # noqa: E402

TEMPLATES = [
    "{a} was a much better surgeon than {b} so _ always got the harder cases.",
    "{a} lent money to {b} because _ had a steady job.",
    "{a} could not lift the box that {b} carried easily, because _ was weak.",
    "The lesson {a} gave {b} went badly, since _ had not prepared it.",
    "{a} asked {b} for directions because _ knew the city well.",
    "When {a} beat {b} at chess, _ was pleased with the game.",
    "{a} always called {b} on Sundays, but this week _ forgot.",
]
OPTIONS = [
    ("Sarah", "Maria"),
    ("James", "Robert"),
    ("Kayla", "Tanisha"),
    ("the teacher", "the student"),
    ("Dr. Lee", "Mr. Ortiz"),
    ("Ngozi", "Siobhan"),
]


def sentences() -> list[tuple[str, tuple[str, str], int | None]]:
    """The generated English set: (sentence, options, the gold option's index: none)."""
    return [(t.format(a=a, b=b), (a, b), None) for t in TEMPLATES for a, b in OPTIONS]


def embedded_sentences(task_file: Path, docs: int) -> list[tuple[str, tuple[str, str], int]]:
    """emb_repeat3's first ``docs`` docs in winogrande's shape: ``A B C . again : A _ C``, the
    options the gold word (B) and the next choice, the rest the word that follows it."""
    import json

    out = []
    for line in task_file.read_text().splitlines()[:docs]:
        d = json.loads(line)
        seq, prefix = (part.split() for part in d["context"].split(" . again : "))
        gold = d["choices"][d["label"]]
        other = d["choices"][(d["label"] + 1) % len(d["choices"])]
        rest = " ".join(seq[len(prefix) + 1 :])
        out.append((f"{d['context']} _ {rest}", (gold, other), 0))
    return out


def request(tok, sentence: str, option: str) -> dict:
    """The original's and the pipeline's (prompt ids, full ids) of one option."""
    prompt, rest = sentence.split("_", 1)
    full = tok(prompt + option + rest, add_special_tokens=False).input_ids
    original = tok(prompt, add_special_tokens=False).input_ids
    ours = tok(prompt.rstrip(), add_special_tokens=False).input_ids
    return {"full": full, "original": original, "ours": ours}


def scored(prompt_ids, full) -> int:
    """eval_mcq.py's scored tokens: from max(len(prompt) - 1, 0) of the shifted row."""
    return len(full) - 1 - max(len(prompt_ids) - 1, 0)


def measure(model, tok, items, name: str) -> str:
    """One table row: ``items`` scored the original's way and the pipeline's."""
    lost, gaps, norm_gaps, changed, n_req = [], [], [], 0, 0
    right = {"original": 0, "ours": 0}
    for sentence, options, gold in items:
        norm = {"original": [], "ours": []}
        for option in options:
            r = request(tok, sentence, option)
            n_req += 1
            lp = {k: eval_mcq_logprob(model, r[k], r["full"]) for k in norm}
            n = {k: scored(r[k], r["full"]) for k in norm}
            lost.append(n["ours"] - n["original"])
            gaps.append(abs(lp["ours"] - lp["original"]))
            for k in norm:
                norm[k].append(lp[k] / n[k])
            norm_gaps.append(abs(norm["ours"][-1] - norm["original"][-1]))
        pick = {k: max(range(2), key=lambda i, k=k: norm[k][i]) for k in norm}
        changed += pick["ours"] != pick["original"]
        for k in right:
            right[k] += pick[k] == gold
    acc = (
        "-"
        if gold is None
        else f"{right['original'] / len(items):.3f} -> {right['ours'] / len(items):.3f}"
    )
    return (
        f"| {name} | {len(items)} | {n_req} | {sum(x > 0 for x in lost)} | {max(lost)} |"
        f" {sum(gaps) / len(gaps):.3f}, {max(gaps):.3f} |"
        f" {sum(norm_gaps) / len(norm_gaps):.4f}, {max(norm_gaps):.4f} |"
        f" {changed} | {acc} |"
    )


HEADER = [
    "| set | sentences | requests | requests shifted | option tokens unscored (max) |"
    " nats per request: mean, max | nats per token (normalised): mean, max |"
    " sentences whose prediction changes | accuracy, original -> pipeline |",
    "|---|---|---|---|---|---|---|---|---|",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="the embedded base model (results/model/base/final)")
    ap.add_argument("tasks", type=Path, help="the embedded tasks (results/data/tasks)")
    ap.add_argument("--docs", type=int, default=100)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        prepare_tekken_tokenizer(Path(tmp))
        tok = load_tokenizer(tmp)
    tiny = random_model(tiny_ministral3_config(), seed=0).eval()
    rows = [measure(tiny, tok, sentences(), "English, random tiny")]
    base = load_causal_lm(str(args.model), dtype="float32", device="cpu").eval()
    items = embedded_sentences(args.tasks / "emb_repeat3.jsonl", args.docs)
    rows.append(measure(base, load_tokenizer(args.model), items, "emb_repeat3, embedded base"))
    cpu = platform.processor() or platform.machine()
    text = "\n".join(
        [
            f"torch {torch.__version__}, {cpu}, 1 thread, {time.time() - t0:.0f} s",
            "",
            *HEADER,
            *rows,
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
