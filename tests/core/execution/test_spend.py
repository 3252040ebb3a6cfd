"""What the rented instances have cost (:mod:`ablate.core.execution.spend`): the Vast executor's
record read back from the working directory, and STATUS.md's one line (none without a record, or
with one that does not parse)."""

from __future__ import annotations

from helpers import DEEP_JSON

from ablate.core.execution import spend

RECORD = {"spent_usd": 1.234, "instances": 3, "running": 1, "updated": "2026-11-27T10:00:00Z"}


def test_a_record_written_reads_back_beside_snakemakes_own(tmp_path):
    path = spend.write(tmp_path, {**RECORD, "bound_usd": 5})
    assert path == tmp_path / ".snakemake" / "auxiliary" / "vast_spend.json"
    assert spend.read(tmp_path) == {**RECORD, "bound_usd": 5}


def test_no_record_or_one_that_does_not_parse_is_none(tmp_path):
    assert spend.read(tmp_path) is None and spend.status_line(tmp_path) is None
    (tmp_path / spend.SPEND_FILE).parent.mkdir(parents=True)
    (tmp_path / spend.SPEND_FILE).write_text('{"spent_usd": 1.2')  # cut off mid-write
    assert spend.read(tmp_path) is None and spend.status_line(tmp_path) is None
    (tmp_path / spend.SPEND_FILE).write_text(DEEP_JSON)  # a RecursionError before
    assert spend.read(tmp_path) is None and spend.status_line(tmp_path) is None


def test_the_status_line_names_the_spend_the_bound_and_the_instances(tmp_path):
    spend.write(tmp_path, {**RECORD, "bound_usd": 5})
    assert spend.status_line(tmp_path) == (
        "Vast.ai spend of the last run: $1.23 of the $5.00 bound, 3 instance(s) rented, "
        "1 running at 2026-11-27T10:00:00Z."
    )
    spend.write(tmp_path, {**RECORD, "bound_usd": None})
    assert spend.status_line(tmp_path).startswith(
        "Vast.ai spend of the last run: $1.23 (no bound set), "
    )
