"""Seeds as STATUS.md reads them (:mod:`ablate.core.reports.seeds`): the spread of a number over
each group's seeds (rows without a seed left out, groups in order), and a claim row's verdict with
its "holds in k of n seeds". The mask study's tables through them: tests/mask/test_mask_seeds.py."""

from __future__ import annotations

from ablate.core.reports.seeds import spread_lines, verdict_line


def test_the_spread_is_one_line_per_group_of_seeded_rows_in_order():
    rows = [
        {"model": "3B", "policy": "causal", "seed": "1", "score": "0.5"},
        {"model": "3B", "policy": "causal", "seed": "0", "score": "0.4"},
        {"model": "3B", "policy": "causal", "seed": "", "score": "0.9"},  # no seed: not counted
        {"model": "3A", "policy": "prefill_bidir", "seed": "0", "score": "0.55"},
        {"model": "3A", "policy": "prefill_bidir", "seed": "1", "score": "0.45"},
        {"model": "3A", "policy": "prefill_bidir", "seed": "2", "score": "0.551"},
        {"model": "base", "policy": "causal", "score": "0.7"},  # no seed column at all
    ]
    assert spread_lines(rows, ("model", "policy"), "score", "macro") == [
        "- 3A under prefill_bidir over 3 seeds: macro mean 0.517, range 0.450 to 0.551",
        "- 3B under causal over 2 seeds: macro mean 0.450, range 0.400 to 0.500",
    ]
    assert spread_lines(rows[2:3], ("model",), "score", "macro") == []


def test_a_verdict_shows_how_many_seeds_it_holds_in_only_at_the_evidences_end():
    row = {"claim": "c", "verdict": "supported", "evidence": "diff +0.1; holds in 2 of 3 seeds"}
    assert verdict_line(row) == "- claim `c`: **supported** (holds in 2 of 3 seeds)"
    assert verdict_line({**row, "evidence": "holds in 2 of 3 seeds, then dropped"}) == (
        "- claim `c`: **supported**"
    )
    assert verdict_line({**row, "evidence": None}) == "- claim `c`: **supported**"
    assert verdict_line({"claim": "d", "verdict": "not run"}) == "- claim `d`: **not run**"
    # a non-inferiority claim says what it claims beside its verdict
    test = "non-inferiority z (margin 0.05, one-sided)"
    assert verdict_line({"claim": "e", "verdict": "not supported", "test": test}) == (
        "- claim `e`: **not supported (claim: at most 0.05 below)**"
    )
