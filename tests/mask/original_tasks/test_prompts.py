"""The original study's prompt, choices and gold per task (ablate.mask.original_tasks.prompts),
on hand-written docs: whitespace collapsed, no ``Question: `` prefix, winogrande split at its
blank, the docs the original skips left out. (Through lm-eval, against eval_mcq.py's strings:
tests/mask/test_original_protocol.py.)"""

from __future__ import annotations

from datasets import Dataset

from ablate.mask.original_tasks import prompts


def test_hellaswag_collapses_whitespace_and_spaces_each_ending():
    doc = {
        "activity_label": "Cars",
        "ctx_a": "The man  writes\nover the snow.",
        "ctx_b": "then",
        "endings": ["adds  wax.", " puts on a coat."],
        "label": "1",
    }
    assert prompts.hellaswag_text(doc) == "Cars: The man writes over the snow. then"
    assert prompts.hellaswag_choices(doc) == [" adds wax.", " puts on a coat."]
    assert prompts.label(doc) == 1


def test_piqa_and_arc_end_the_prompt_with_answer():
    piqa = {"goal": "Keep  bread fresh", "sol1": "Freeze it.", "sol2": " Wet  it.", "label": 0}
    assert prompts.piqa_text(piqa) == "Keep bread fresh\nAnswer:"
    assert prompts.piqa_choices(piqa) == [" Freeze it.", " Wet it."]
    arc = {
        "question": "Which  is a gas?",
        "choices": {"text": ["Ice", "Steam", "Rock"], "label": ["1", "2", "3"]},
        "answerKey": "2",
    }
    assert prompts.arc_text(arc) == "Which is a gas?\nAnswer:"
    assert prompts.arc_choices(arc) == [" Ice", " Steam", " Rock"]
    assert prompts.arc_target(arc) == 1


def test_winogrande_scores_the_option_and_the_rest_of_the_sentence():
    doc = {"sentence": "Maria helped Sarah because _ was kind.", "option1": "Maria"}
    doc.update(option2="Sarah", answer="2")
    assert prompts.winogrande_text(doc) == "Maria helped Sarah because "
    assert prompts.winogrande_choices(doc) == ["Maria was kind.", "Sarah was kind."]
    assert prompts.winogrande_target(doc) == 1


def test_the_docs_the_original_skips_are_left_out():
    arc = Dataset.from_list(
        [
            {"choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "B"},
            {"choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"},
        ]
    )
    assert [d["answerKey"] for d in prompts.arc_docs(arc)] == ["B"]
    wino = Dataset.from_list([{"sentence": "No blank."}, {"sentence": "A _ here."}])
    assert [d["sentence"] for d in prompts.winogrande_docs(wino)] == ["A _ here."]
