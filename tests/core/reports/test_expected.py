"""ablate.core.reports.expected: the expected results per CPU kind, the page rendered from them, and
the comparison a user runs after the quick start."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from oracles import page_table

from ablate.core.reports import expected

REPO = Path(__file__).resolve().parents[3]


def test_cpu_kind_is_the_vendor_and_torchs_kernels():
    amd = {"cpu_vendor": "AuthenticAMD", "torch_cpu_capability": "AVX2"}
    intel = {"cpu_vendor": "GenuineIntel", "torch_cpu_capability": "AVX512"}
    assert expected.cpu_kind(amd) == "AMD AVX2"
    assert expected.cpu_kind(intel) == "Intel AVX512"
    assert expected.cpu_kind({"cpu_vendor": "ARM"}) == "ARM unknown"


@pytest.mark.parametrize("page", list(expected.TABLES))
def test_the_pages_table_is_the_files(page):
    """docs/embedded.md's and the README's tables are rendered from docs/expected_results.csv,
    never edited apart (their caption and sections: tests/mask/test_front.py)."""
    rows = expected.load(REPO / expected.EXPECTED_FILE)
    assert page_table(REPO / page) == expected.TABLES[page](rows)


def fake_results(
    root: Path,
    macro: float,
    verdict: str,
    vendor: str = "AuthenticAMD",
    claims: dict[str, str] | None = None,
) -> Path:
    """A results tree with a mask recovery table, its claims (every EVERY_CPU claim with
    ``verdict``, then ``claims``: claim -> verdict) and one record naming the CPU."""
    results = root / "results"
    (results / "claims").mkdir(parents=True)
    with open(results / "recovery.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task", "stage", "variant", "eval_policy", "score"])
        w.writerow(["macro", 1, "base", "causal", macro])
        w.writerow(["emb_count", 1, "base", "causal", 1.0])
        w.writerow(["macro", 2, "base", "prefill_bidir", 0.7])
        w.writerow(["macro", 4, "3B", "prefill_bidir", 0.8])
    with open(results / "claims/mask.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["study", "claim", "verdict"])
        verdicts = {c.split(": ")[1]: verdict for c in expected.every_cpu()} | (claims or {})
        w.writerows(["mask", c, v] for c, v in verdicts.items())
    hw = {"cpu_vendor": vendor, "cpu_model": "a CPU", "torch_cpu_capability": "AVX2"}
    (results / "metrics.json").write_text(json.dumps({"provenance": {"hardware": hw}}))
    for src in expected.pictures():  # the run's plot, as the pipeline draws it
        (results / src).parent.mkdir(parents=True, exist_ok=True)
        (results / src).write_bytes(f"a picture of {macro}".encode())
    return results


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A folder with the pages the tables are written into, as the working directory."""
    (tmp_path / "docs").mkdir()
    for page in {*expected.TABLES, *(page for _, page, _, _ in expected.front_sections())}:
        shutil.copy(REPO / page, tmp_path / page)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_write_then_compare(checkout, capsys):
    results = fake_results(checkout / "a", 0.954, "supported")
    assert expected.main(["--results", str(results), "--write"]) == 0
    rows = expected.load()
    assert expected.values(rows["AMD AVX2"])["mask: base under causal"] == "0.954"
    assert "| mask: base under causal | 0.954 |" in page_table(checkout / "docs/embedded.md")
    assert "| base | 0.954 |" in page_table(checkout / "README.md")
    assert "written to docs/expected_results.csv, docs/embedded.md, README.md" in (
        capsys.readouterr().out
    )
    assert expected.main(["--results", str(results)]) == 0
    assert "matches AMD AVX2's row" in capsys.readouterr().out

    other = fake_results(checkout / "b", 0.951, "supported")
    assert expected.main(["--results", str(other)]) == 1
    out = capsys.readouterr().out
    assert "mask: base under causal: expected 0.954, got 0.951" in out


def test_an_unmeasured_cpu_kind_is_named_and_held_to_the_every_cpu_claims(checkout, capsys):
    expected.write(fake_results(checkout / "a", 0.954, "supported"))
    intel = fake_results(checkout / "b", 0.9, "supported", vendor="GenuineIntel")
    assert expected.main(["--results", str(intel)]) == 0
    assert "CPU kind Intel AVX2 is unmeasured" in capsys.readouterr().out
    bad = fake_results(checkout / "c", 0.9, "inconclusive", vendor="GenuineIntel")
    assert expected.main(["--results", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "ablate expected: FAILED: mask: learned is inconclusive (CPU kind Intel AVX2 is " in out


def test_a_flipped_finding_fails_loudly(checkout, capsys):
    """A claim that must hold on every CPU kind (the recovery, prefix_recovers) flips against
    the row: a line of its own names it, and the command fails; another claim's flip is a
    difference as any number's."""
    expected.write(fake_results(checkout / "a", 0.954, "supported", claims={"other": "supported"}))
    flipped = {"prefix_recovers": "not supported", "other": "inconclusive"}
    capsys.readouterr()
    assert (
        expected.main(
            ["--results", str(fake_results(checkout / "b", 0.954, "supported", claims=flipped))]
        )
        == 1
    )
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == (
        "ablate expected: FAILED: mask: prefix_recovers flipped: expected supported, got not "
        "supported (it must hold on every CPU kind: the study's finding)"
    )
    assert "  mask: other: expected supported, got inconclusive" in out
    assert not any("mask: prefix_recovers: expected" in line for line in out)  # said once


def test_a_claim_the_row_lacks_is_unmeasured_for_that_claim(checkout, capsys):
    """A row written before a claim existed (its CSV lacks it): the claim is unmeasured there,
    not a difference, and one that must hold on every CPU kind must still be supported."""
    new = {"prefix_recovers": "supported", "causal_recovers": "not supported"}
    results = fake_results(checkout / "a", 0.954, "supported", claims=new)
    expected.write(results)
    lines = expected.EXPECTED_FILE.read_text().splitlines()
    kept = [line for line in lines if "_recovers," not in line]
    assert len(kept) == len(lines) - 2
    expected.EXPECTED_FILE.write_text("\n".join(kept) + "\n")
    capsys.readouterr()
    assert expected.main(["--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "matches AMD AVX2's row" in out
    assert (
        "not in AMD AVX2's row, so unmeasured there (rewrite the row from a run of this tree: "
        "ablate expected --write): mask: causal_recovers not supported, mask: prefix_recovers "
        "supported"
    ) in out
    lost = fake_results(
        checkout / "b", 0.954, "supported", claims={"prefix_recovers": "inconclusive"}
    )
    assert expected.main(["--results", str(lost)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        "ablate expected: FAILED: mask: prefix_recovers is inconclusive (not in AMD AVX2's row) "
        "(it must hold on every CPU kind: the study's finding)"
    )


def test_records_of_two_cpu_kinds_have_no_row(checkout, capsys):
    results = fake_results(checkout / "a", 0.954, "supported")
    hw = {"cpu_vendor": "GenuineIntel", "torch_cpu_capability": "AVX512"}
    (results / "other.json").write_text(json.dumps({"provenance": {"hardware": hw}}))
    assert expected.main(["--results", str(results), "--write"]) == 2
    assert "the records name 2 CPU kinds (AMD AVX2, Intel AVX512), not one" in (
        capsys.readouterr().err
    )


def test_a_results_folder_that_is_missing_or_holds_no_record_is_named(checkout, capsys):
    """``--results nope`` said "the records name 0 CPU kinds (none), not one": what is wrong is
    the folder (missing) or the run (not made yet)."""
    assert expected.main(["--results", "nope"]) == 2
    assert capsys.readouterr().err == (
        "ablate expected: nope: no such folder: give --results the results folder of a run\n"
    )
    (checkout / "empty").mkdir()
    assert expected.main(["--results", "empty"]) == 2
    assert capsys.readouterr().err == (
        "ablate expected: empty: no job record with its hardware: run the embedded default "
        "(snakemake -c2) first, or give --results the results folder of a finished run\n"
    )


def test_write_copies_the_runs_picture_and_renders_the_front_door_from_its_row(checkout, capsys):
    """--write copies the run's picture into the checkout and renders each study's front-door
    sections from that run's row, whichever kind's row was written last, and says so."""
    expected.write(fake_results(checkout / "a", 0.954, "supported"))
    intel = fake_results(checkout / "b", 0.9, "supported", vendor="GenuineIntel")
    assert expected.main(["--results", str(intel), "--write"]) == 0
    out = capsys.readouterr().out
    assert set(expected.load()) == {"AMD AVX2", "Intel AVX2"}
    for src, dst in expected.pictures().items():
        assert (checkout / dst).read_bytes() == (intel / src).read_bytes()
        assert str(dst) in out
    for (page, name), body in expected.front(expected.load(), "Intel AVX2").items():
        assert page_table(checkout / page, name) == body
        assert "Intel AVX2 (a CPU, tree " in body and str(page) in out


def test_write_refuses_a_run_without_its_picture_and_writes_nothing(checkout, capsys):
    results = fake_results(checkout / "a", 0.954, "supported")
    for src in expected.pictures():
        (results / src).unlink()
    before = {page: (checkout / page).read_text() for page in expected.TABLES}
    assert expected.main(["--results", str(results), "--write"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file; draw it first (snakemake -c2 " in err
    assert not (checkout / expected.EXPECTED_FILE).exists()
    assert before == {page: (checkout / page).read_text() for page in expected.TABLES}
