"""The gold-leak guard's test (ablate.bridge.leak, through evaluate.check_no_gold): every spelling
of the gold answer refused, near misses passing (fast)."""

from __future__ import annotations

import itertools

import pytest

from ablate.bridge import evaluate, scoring

QUESTION = "Question: Tom has 3 boxes of 400 pens and 34 more. How many pens?\nAnswer:"


def _item(gold: str) -> dict[str, str]:
    return {
        "id": "g-1",
        "question": "q",
        "answer": f"3 * 400 = 1200\n1200 + 34 = 1234\n#### {gold}",
    }


# every spelling of "the answer is <n>" a prompt must not carry, for each way of writing n
CUES = ["#### {n}", "####{n}", "####  {n}", "Answer: {n}", "answer:{n}", "ANSWER : {n}",
        "The answer is {n}.", "the answer is: {n}", "Answer = {n}", "answer: ${n}"]  # fmt: skip
GOLDS = {"1": ["1", "1.0"], "1234": ["1234", "1,234", "1234.00"], "-5": ["-5", "-5.0"]}


@pytest.mark.parametrize(
    ("gold", "written", "cue"),
    [(g, w, c) for g, ws in GOLDS.items() for w, c in itertools.product(ws, CUES)],
)
def test_every_spelling_of_the_gold_answer_is_refused(gold, written, cue):
    leak = QUESTION.replace("How many", cue.format(n=written) + " How many")
    with pytest.raises(evaluate.GoldLeakError, match="g-1"):
        evaluate.check_no_gold("gsm8k", _item(gold), {"prompt": leak})


@pytest.mark.parametrize(
    ("gold", "text"),
    [
        ("1", QUESTION),  # numbers in the question, no cue
        ("1234", "Answer: Tom has 1234 pens?"),  # a number after the cue with words between
        ("1", "#### 12"),
        ("1", "answer: 10"),
        ("1", "#### 1.5"),
        ("1", "The answer is 21."),
        ("1234", "#### 1,2345"),
        ("1234", "answer: 123"),
        ("-5", "#### 5"),
        ("5", "Answer: -5"),
        ("1", "Answer:"),
    ],
)
def test_a_prompt_without_the_gold_answer_passes(gold, text):
    evaluate.check_no_gold("gsm8k", _item(gold), {"prompt": text})


@pytest.mark.parametrize(
    "step", ["3 * 400 = 1200", "3*400=1200", "1200+34 =1234", "1,200 + 34 = 1,234"]
)
def test_a_worked_step_in_any_spacing_is_refused(step):
    with pytest.raises(evaluate.GoldLeakError):
        evaluate.check_no_gold("gsm8k", _item("1234"), {"prompt": f"Question: {step}. Answer:"})


@pytest.mark.parametrize("text", ["3 * 400 = 12000", "13 * 400 = 1200", "3 * 400 = 1200.5"])
def test_a_different_step_passes(text):
    evaluate.check_no_gold("gsm8k", _item("1234"), {"prompt": text})


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("Context: Ann lives in Paris. Paris is in France.\nQuestion: Where?\nAnswer:", False),
        ("Context: Ann lives in France.\nAnswer: France", True),
        ("answer:france", True),
        ("The answer is France.", True),
        ("The answer is Franceville.", False),
        ("Context: The result was France, 2-1.\nAnswer:", False),  # a context may say so
        ("Answers - France", True),
    ],
)
def test_qa_answer_spellings(text, refused):
    item = {"id": "qa-1", "question": "q", "context": "c", "answer": "France"}
    if refused:
        with pytest.raises(evaluate.GoldLeakError):
            evaluate.check_no_gold("qa", item, {"prompt": text})
    else:
        evaluate.check_no_gold("qa", item, {"prompt": text})


# the guard's spellings as a product: cue words x separators x number spellings
CUE_WORDS = ["####", "answer", "Answer", "ANSWER", "answers", "the answer", "The final answer",
             "so the result", "solution"]  # fmt: skip
SEPARATORS = ["{c}: {n}", "{c}:{n}", "{c} : {n}", "{c} = {n}", "{c}={n}", "{c} - {n}",
              "{c} \u2013 {n}", "{c} is {n}", "{c} is: {n}", "{c} are {n}", "{c} ({n})",
              "{c}: ${n}", "{c} is {n}.", "{c}:\n{n}"]  # fmt: skip
SPELLINGS = {
    "1": ["1", "1.0", "one", "One"],
    "21": ["21", "twenty-one", "twenty one"],
    "1234": ["1234", "1,234", "1 234", "1\u202f234", "1234.00"],
    "-5": ["-5", "\u22125", "-5.0", "minus five"],
}
NEAR_MISSES = {
    "1": ["10", "1.5", "-1", "21", "eleven", "one hundred"],
    "21": ["2", "211", "twenty", "twenty-two"],
    "1234": ["123", "12345", "1,2345", "1 2345"],
    "-5": ["5", "-55", "five", "-5.5"],
}


def _refused(gold: str, text: str) -> bool:
    try:
        evaluate.check_no_gold("gsm8k", _item(gold), {"prompt": text})
    except evaluate.GoldLeakError:
        return True
    return False


def _guard_misses(spellings: dict[str, list[str]], refused: bool) -> list[str]:
    wrong = []
    for gold, written in spellings.items():
        for cue, sep, n in itertools.product(CUE_WORDS, SEPARATORS, written):
            text = QUESTION.replace("How many", sep.format(c=cue, n=n) + " How many")
            if _refused(gold, text) != refused:
                wrong.append(f"gold {gold}: {sep.format(c=cue, n=n)!r}")
    return wrong


def test_every_cue_separator_and_spelling_of_the_gold_is_refused():
    assert _guard_misses(SPELLINGS, refused=True) == []


def test_a_cued_other_number_passes():
    assert _guard_misses(NEAR_MISSES, refused=False) == []


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("Tom had 3 pens, lost 2, so the result = 1\nHow many pens?", True),  # no solution line
        ("so 3 - 2 = 1.\nAnswer:", True),
        ("so 3 - 2 = 1 more than before.\nAnswer:", False),  # "= 1" inside a sentence
        ("so 3 - 2 = 10\nAnswer:", False),
    ],
)
def test_equals_the_gold_at_the_end_of_a_line(text, refused):
    assert _refused("1", text) == refused


@pytest.mark.parametrize(
    ("gold", "text"),
    [("1,234", "Context: c\nAnswer: 1234"), ("1234", "answer: 1,234"), ("U.S.A.", "answer is USA")],
)
def test_qa_guard_refuses_what_the_scorer_counts_as_exact(gold, text):
    """One normalisation: what the scorer calls an exact match of the gold is a leak."""
    item = {"id": "qa-2", "question": "q", "context": "c", "answer": gold}
    said = text.split("nswer", 1)[1].lstrip(":").replace("is", "", 1).strip()
    assert scoring.score("qa", said, gold)["correct"]
    with pytest.raises(evaluate.GoldLeakError, match="qa-2"):
        evaluate.check_no_gold("qa", item, {"prompt": text})
