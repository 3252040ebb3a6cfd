"""The mask study's answer in one sentence (ablate.mask.answer), from claims rows as a run reads
them from its CSV; the rows' evidence is the recovery claims' own (tests/mask/test_claims.py
builds it from per-item results)."""

from __future__ import annotations

from ablate.mask import answer


def row(claim: str, verdict: str, evidence: str, p: str = "0.001") -> dict[str, str]:
    return {"claim": claim, "verdict": verdict, "evidence": evidence, "p_value": p, "test": "t"}


def recovery(name: str, share: float) -> str:
    return "3B under x 0.9 - base under x 0.7: diff +0.2 ...; " + answer.share_text(
        name, share, 0.22, share - 0.1, share + 0.1, 0.05
    )


def test_the_answer_names_the_prefix_finetune_first_then_the_others():
    rows = [
        row("long_recovers", "supported", recovery("5B", 0.70)),
        row("prefix_recovers", "supported", recovery("3B", 0.613), "2.9e-12"),
        row("prefix_recovers/seed0", "not supported", recovery("3B-s0", 0.01)),
        row("causal_recovers", "not supported", recovery("3A", -0.18)),
    ]
    assert answer.answer(rows) == (
        "3B wins back 61 % of the ablation's drop (p=2.9e-12), 3A -18 %, 5B 70 %."
    )


def test_without_a_recovery_there_is_no_answer_to_give():
    """No prefix-LM recovery claim (its role null), one not run yet, or one with no share of its
    own (a multi-model table counts its models' verdicts): no sentence."""
    assert answer.answer([row("causal_recovers", "supported", recovery("3A", 0.5))]) is None
    assert answer.answer([row("prefix_recovers", "not run", "missing input: 3B@x", "")]) is None
    assert answer.answer([row("prefix_recovers", "supported", "holds in 2 of 2 models")]) is None


def test_percent():
    assert [answer.percent(s) for s in (0.613, -0.18, 0.004, 0.0)] == [
        "61 %",
        "-18 %",
        "0.4 %",
        "0.0 %",
    ]
    assert answer.percent(0.004, signed=True) == "+0.4 %"


def test_the_answer_rounds_a_share_as_the_readme_caption_does():
    """The caption (ablate.mask.front) rounds the share of the expected row's scores once; the
    answer read a share written to 3 decimals and rounded again: -0.145374 said "-14 %" beside
    the caption's "-15 %" (tree b634c94's run)."""
    rows = [
        row("prefix_recovers", "supported", recovery("3B", 0.427313), "1.3e-11"),
        row("causal_recovers", "not supported", recovery("3A", -0.145374)),
    ]
    assert answer.answer(rows) == (
        f"3B wins back {answer.percent(0.427313)} of the ablation's drop (p=1.3e-11), "
        f"3A {answer.percent(-0.145374)}."
    )
    assert answer.percent(-0.145374) == "-15 %"
