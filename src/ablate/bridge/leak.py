"""What in a text gives an item's gold answer away: the gold-leak guard's test
(:func:`ablate.bridge.evaluate.check_no_gold` refuses an input on it).

GSM8K: the worked solution or a step of it, or the gold number given as the answer in any spelling
(every reading of an ambiguous one counts). QA: a context may name the answer (HotpotQA's does);
``answer`` followed by an exact match may not. The full list: docs/bridge.md, the seed's faults.
"""

from __future__ import annotations

import re
from typing import Any

from ablate.bridge import scoring

# A thousands separator between digits ("1,234"): removed, so the gold 1234 is found either way.
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_GROUP_SEP = ", \u00a0\u202f\u2009"
#: between a cue word and the value: spaces, ':', '=', '(', '$', a dash set apart, a verb
_SEPARATORS = r"(?:[\s:=(\[$]|[-\u2013\u2014](?!\d)|\b(?:is|are|was|equals)\b)*"
_CUE = re.compile(rf"(?:####|\b(?:answers?|result|solution)\b){_SEPARATORS}")
# QA: "answer" only; a context may say "the result was a draw" of its own (HotpotQA's do)
_QA_CUE = re.compile(rf"\banswers?\b{_SEPARATORS}")
_LINE_END_EQUALS = re.compile(r"=[ \t]*\$?[ \t]*")
_PLAIN = re.compile(r"-?\d+(?:\.\d+)?(?!\d)")
_GROUPED = re.compile(rf"-?\d{{1,3}}(?:[{_GROUP_SEP}]\d{{3}})+(?:\.\d+)?(?!\d)")
_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen \
fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORDS = re.compile(
    rf"(minus\s+)?(?:({'|'.join(_TENS)})(?:[-\s]({'|'.join(_UNITS[1:10])}))?|({'|'.join(_UNITS)}))\b"
    r"(?![\s-]+(?:hundred|thousand|million|billion)\b)"  # a larger number: not read
)


def _squash(s: str) -> str:
    """Lower case, no thousands separators, no whitespace: "3 + 4 = 7" and "3+4=7" are one text."""
    return "".join(_THOUSANDS.sub("", s.lower()).split())


def _step_strings(kind: str, item: dict[str, Any]) -> list[str]:
    """The GSM8K worked solution and each of its steps (lines with '=')."""
    if kind != "gsm8k":
        return []
    solution = str(item["answer"]).strip()
    return [solution, *(ln.strip() for ln in solution.splitlines() if "=" in ln)]


def _has_step(hay: str, step: str) -> bool:
    """``step`` in ``hay`` (both squashed); a number at either end must end there ("=2" is not
    in "=2.5" nor in "=25")."""
    needle = _squash(step)
    if not needle:
        return False
    left = r"(?<![\d.])" if needle[0].isdigit() else ""
    right = r"(?!\.?\d)" if needle[-1].isdigit() else ""
    return re.search(left + re.escape(needle) + right, hay) is not None


def _readings(text: str, pos: int) -> list[tuple[str, int]]:
    """Each number ``text`` (lower case, ASCII minus) spells at ``pos``, as a decimal string,
    with where that spelling ends."""
    out = []
    for pattern in (_GROUPED, _PLAIN):
        if m := pattern.match(text, pos):
            out.append((re.sub(f"[{_GROUP_SEP}]", "", m.group(0)), m.end()))
    if m := _WORDS.match(text, pos):
        minus, tens, unit, single = m.groups()
        value = _UNITS.index(single) if single else 10 * (_TENS.index(tens) + 2)
        value += _UNITS.index(unit) if unit else 0
        out.append((f"{'-' if minus else ''}{value}", m.end()))
    return out


def _cued_numbers(text: str):
    """(what, number) for each number given as the answer in ``text``."""
    for m in _CUE.finditer(text):
        for number, end in _readings(text, m.end()):
            yield text[m.start() : end], number
    for m in _LINE_END_EQUALS.finditer(text):
        for number, end in _readings(text, m.end()):
            if re.match(r"[ \t]*\.?[ \t]*(?:\n|$)", text[end:]):
                yield text[m.start() : end], number


def leaked(kind: str, item: dict[str, Any], text: str) -> str | None:
    """What in ``text`` gives the gold answer away (a description), else None."""
    gold = scoring.gold_answer(kind, item)
    squashed = _squash(text)
    for step in _step_strings(kind, item):
        if _has_step(squashed, step):
            return step
    plain = text.lower().replace("\u2212", "-")  # lower case, ASCII minus: what _readings reads
    if kind == "gsm8k":
        if gold == scoring.INVALID:
            return None
        return next((w for w, n in _cued_numbers(plain) if scoring.same_number(n, gold)), None)
    target = scoring.normalize_answer(gold)
    for m in _QA_CUE.finditer(plain) if target else ():
        said = scoring.normalize_answer(plain[m.end() :].split("\n", 1)[0])
        if said == target or said.startswith(target + " "):
            return plain[m.start() : m.end()] + target
    return None
