"""The original study's prompt, choices and gold answer per task (``eval_mcq.py``'s loaders),
as lm-eval ``doc_to_text`` / ``doc_to_choice`` / ``doc_to_target`` / ``process_docs`` functions
(the task YAMLs of this folder name them with ``!function``)."""

from __future__ import annotations

from typing import Any


def _normalize_space(text: str) -> str:
    return " ".join(text.split())


def hellaswag_text(doc: dict[str, Any]) -> str:
    return _normalize_space(f"{doc['activity_label']}: {doc['ctx_a']} {doc['ctx_b']}")


def hellaswag_choices(doc: dict[str, Any]) -> list[str]:
    return [" " + _normalize_space(e) for e in doc["endings"]]


def piqa_text(doc: dict[str, Any]) -> str:
    return _normalize_space(doc["goal"]) + "\nAnswer:"


def piqa_choices(doc: dict[str, Any]) -> list[str]:
    return [" " + _normalize_space(doc["sol1"]), " " + _normalize_space(doc["sol2"])]


def label(doc: dict[str, Any]) -> int:
    """hellaswag's and piqa's gold (hellaswag's ``label`` is a string)."""
    return int(doc["label"])


def arc_docs(dataset):
    """The original skips a question whose answer key is not among its labels."""
    return dataset.filter(lambda d: d["answerKey"] in d["choices"]["label"])


def arc_text(doc: dict[str, Any]) -> str:
    return _normalize_space(doc["question"]) + "\nAnswer:"


def arc_choices(doc: dict[str, Any]) -> list[str]:
    return [" " + _normalize_space(t) for t in doc["choices"]["text"]]


def arc_target(doc: dict[str, Any]) -> int:
    return list(doc["choices"]["label"]).index(doc["answerKey"])


def winogrande_docs(dataset):
    """The original skips a sentence without a blank."""
    return dataset.filter(lambda d: "_" in d["sentence"])


def winogrande_text(doc: dict[str, Any]) -> str:
    """The sentence up to the blank, its trailing space kept (lm-eval moves a context's trailing
    space to the continuation before tokenizing, so the option word is scored: the original's
    tokenization dropped it, docs/differences.md)."""
    return doc["sentence"].split("_", 1)[0]


def winogrande_choices(doc: dict[str, Any]) -> list[str]:
    suffix = doc["sentence"].split("_", 1)[1]
    return [doc["option1"] + suffix, doc["option2"] + suffix]


def winogrande_target(doc: dict[str, Any]) -> int:
    return int(doc["answer"]) - 1
