"""Scoring: the GSM8K answer extractor, SQuAD-style EM/F1, and the dataset kind -> scorer choice.

Two faults of the seed are impossible by construction: ``[invalid]`` is never correct, not even
against an unparseable gold answer; QA is scored by EM/F1 of normalised text, never by the GSM8K
extractor (which turned every QA pair into ``[invalid] == [invalid]``).
"""

from __future__ import annotations

import collections
import re
import string
from decimal import Decimal, InvalidOperation

INVALID = "[invalid]"
_GSM8K_ANSWER = re.compile(r"#### (-?[0-9.,]+)")
KINDS = ("gsm8k", "qa")


class ScoringError(ValueError):
    pass


def extract_gsm8k(text: str) -> str:
    """The number after the first ``#### `` (commas removed, trailing '.' dropped), else ``[invalid]``."""
    m = _GSM8K_ANSWER.search(text or "")
    if not m:
        return INVALID
    value = m.group(1).replace(",", "").rstrip(".")
    return value if value not in ("", "-") else INVALID


def normalize_answer(s: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1(prediction: str, gold: str) -> float:
    """Token-multiset F1 of the normalised strings (SQuAD)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = collections.Counter(pred) & collections.Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def same_number(a: str, b: str) -> bool:
    """Exact numeric equality of two decimal strings ("1234" == "1234.0"); floats would make
    9007199254740993 equal 9007199254740992 (beyond 2^53). Not numbers: equal as strings."""
    try:
        return Decimal(a) == Decimal(b)
    except InvalidOperation:
        return a == b


def gold_answer(kind: str, item: dict) -> str:
    """The short gold answer of a dataset row: the ``####`` number (GSM8K) or ``answer`` (QA)."""
    _check_kind(kind)
    return extract_gsm8k(item["answer"]) if kind == "gsm8k" else str(item["answer"])


def score(kind: str, prediction: str, gold: str) -> dict:
    """``{correct, em, f1, extracted}`` of one generation: GSM8K its valid extracted number equal
    to ``gold``; QA its first line's EM (``correct``) and F1."""
    _check_kind(kind)
    if kind == "gsm8k":
        extracted = extract_gsm8k(prediction)
        ok = extracted != INVALID and gold != INVALID and same_number(extracted, gold)
        return {"correct": ok, "em": float(ok), "f1": float(ok), "extracted": extracted}
    # a QA generation's answer: its first non-empty line
    extracted = next((ln.strip() for ln in (prediction or "").splitlines() if ln.strip()), "")
    em = float(normalize_answer(extracted) == normalize_answer(gold))
    return {"correct": bool(em), "em": em, "f1": f1(extracted, gold), "extracted": extracted}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ScoringError(f"unknown dataset kind {kind!r}; choose one of {', '.join(KINDS)}")
