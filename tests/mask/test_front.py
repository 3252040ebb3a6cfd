"""The mask study's front door (ablate.mask.front): the README's caption and docs/embedded.md's
"What the default shows" rendered from a row of docs/expected_results.csv, and the checkout's
picture, caption and section against that file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from oracles import page_table
from PIL import Image

from ablate.core.reports import expected
from ablate.mask import front, report, status

REPO = Path(__file__).resolve().parents[2]

#: a row's mask quantities: a drop of 0.4 (0.9 -> 0.5), 3A under it at 0.4, 3B at 0.7
ROW = {
    "base under causal": "0.9",
    "base under prefill_bidir": "0.5",
    "3A under causal": "0.91",
    "3A under prefill_bidir": "0.4",
    "3B under causal": "0.88",
    "3B under prefill_bidir": "0.7",
    "3B under prefill_bidir: t1": "0.6",
    "ablation_hurts": "supported",
    "ablation_hurts/t1": "supported",
    "ablation_hurts/t2": "inconclusive",
    "ablation_hurts/t3": "supported",
    "learned": "supported",
    "learned/t1": "supported",
    "learned/t2": "supported",
    "learned/t3": "supported",
    "prefix_recovers_more": "supported",
}
LABEL = "AMD AVX2 (AMD EPYC, tree abc1234, 2026-11-28)"


def test_recovered_share_is_the_finetunes_gain_over_the_drop():
    shares = front.recovered_shares(front.macro_scores(ROW))
    assert shares == pytest.approx({"3A": -0.25, "3B": 0.5})
    no_drop = {**ROW, "base under prefill_bidir": "0.9"}
    assert front.recovered_shares(front.macro_scores(no_drop)) is None


def test_the_caption_names_the_run_the_tasks_lowered_and_each_share():
    assert front.caption(ROW, LABEL) == (
        f"*`results/plots/scores.png` of the embedded default on {LABEL}: the ablation "
        "(`prefill_bidir`, hatched) lowers 2 of 3 tasks significantly (t1, t3) and the macro "
        "score from 0.900 to 0.500; 3A wins back -25 % of that drop, 3B 50 %.*"
    )
    flat = {**ROW, "base under prefill_bidir": "0.95"}
    assert "; no finetune has a drop to win back.*" in front.caption(flat, LABEL)


def test_the_section_gives_the_scores_shares_and_every_verdict():
    lines = front.shows(ROW, LABEL).splitlines()
    assert lines[0] == f"The embedded default's run on {LABEL}:"
    assert "| base | 0.900 | 0.500 |  |" in lines
    assert "| 3A | 0.910 | 0.400 | -25 % |" in lines
    assert "| 3B | 0.880 | 0.700 | 50 % |" in lines
    assert (
        "| `ablation_hurts/<task>` | supported for 2 of 3 tasks (t1, t3); inconclusive: t2 |"
        in lines
    )
    assert "| `learned/<task>` | supported for 3 of 3 tasks |" in lines
    assert "| `prefix_recovers_more` | supported |" in lines
    assert not any("0.6" in line for line in lines)  # a task's score is the table's, not here


def test_the_picture_caption_and_section_are_the_expected_row_of_the_run_that_drew_it():
    """The README's picture carries the scores it draws; they are one CPU kind's row of
    docs/expected_results.csv, and the caption and docs/embedded.md's section are that row's
    rendering (``ablate expected --write`` writes all three from one run)."""
    rows = expected.load(REPO / expected.EXPECTED_FILE)
    src, picture = status.FRONT_PICTURE
    text = Image.open(REPO / picture).text
    assert report.SCORES_KEY in text, (
        f"{picture} does not carry the scores it draws: copy a run's results/{src} with ablate expected "
        "--write"
    )
    drawn = {
        f"mask: {k}": expected.score_text(v) for k, v in json.loads(text[report.SCORES_KEY]).items()
    }
    kinds = [
        kind
        for kind, row in rows.items()
        if drawn
        == {
            q: v
            for q, v in expected.values(row).items()
            if q.startswith("mask: ") and " under " in q
        }
    ]
    assert kinds, f"{picture}'s scores are no row's of {expected.EXPECTED_FILE}"
    for (page, name), body in expected.front(rows, kinds[0]).items():
        assert page_table(REPO / page, name) == body, f"{page}'s {name} is not {kinds[0]}'s row"
