"""Scoring (ablate.bridge.scoring): GSM8K extraction and exact number comparison, EM/F1 for QA."""

from __future__ import annotations

import pytest

from ablate.bridge import scoring


def test_gsm8k_extraction():
    assert scoring.extract_gsm8k("3 + 4 = 7\n#### 7") == "7"
    assert scoring.extract_gsm8k("#### 1,234") == "1234"
    assert scoring.extract_gsm8k("#### -5.") == "-5"
    assert scoring.extract_gsm8k("#### 3 then #### 9") == "3"
    assert scoring.extract_gsm8k("the answer is 7") == scoring.INVALID
    assert scoring.extract_gsm8k("") == scoring.INVALID


def test_invalid_is_never_correct():
    # no number in the generation, and the gold itself unparseable: still wrong
    s = scoring.score("gsm8k", "no answer here", scoring.INVALID)
    assert s["extracted"] == scoring.INVALID and s["correct"] is False and s["em"] == 0.0
    assert scoring.score("gsm8k", "#### 7", scoring.INVALID)["correct"] is False
    assert scoring.score("gsm8k", "x", "7")["correct"] is False
    assert scoring.score("gsm8k", "2 + 5 = 7\n#### 7", "7")["correct"] is True
    assert scoring.score("gsm8k", "#### 7.0", "7")["correct"] is True


def test_qa_is_scored_by_em_f1_never_by_the_gsm8k_extractor():
    # two QA generations without '####': the GSM8K extractor would call both [invalid] == match
    assert scoring.score("qa", "Paris", "Rome")["correct"] is False
    s = scoring.score("qa", " The Eiffel Tower\nmore text", "Eiffel tower")
    assert s["em"] == 1.0 and s["f1"] == 1.0 and s["correct"] is True
    s = scoring.score("qa", "big red house", "red house")
    assert s["em"] == 0.0 and s["f1"] == pytest.approx(0.8)
    assert scoring.f1("x y y", "y y z") == pytest.approx(2 / 3)  # multiset: y counted twice
    assert scoring.f1("a b b", "b b c") == pytest.approx(0.8)  # "a" is an article: dropped
    assert scoring.score("qa", "", "France")["correct"] is False
    with pytest.raises(scoring.ScoringError, match="unknown dataset kind 'hotpot'"):
        scoring.score("hotpot", "x", "y")


def test_gsm8k_numbers_are_compared_exactly():
    # 2^53 + 1 and 2^53 are one float: a float comparison calls this answer correct
    assert scoring.score("gsm8k", "#### 9007199254740993", "9007199254740992")["correct"] is False
    assert scoring.score("gsm8k", "#### 9007199254740993", "9007199254740993")["correct"] is True
    assert scoring.score("gsm8k", "#### 0.30000000000000001", "0.3")["correct"] is False
    assert scoring.score("gsm8k", "#### 1,000", "1000.0")["correct"] is True
    assert scoring.same_number("-0", "0") and not scoring.same_number("1.2.3", "1.2")
