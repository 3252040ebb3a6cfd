"""A config file with a YAML syntax error is named in one line with its line and column, by the
dry run (before Snakemake reads it) and by ``ablate status``, not blamed on a misplaced target;
so is a config file that is no text (a binary file) or holds no config keys (a list)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT, dry_run

from ablate.core.config import ConfigError
from ablate.core.user_yaml import load_config_file

# `lr` is indented one space less than its sibling `max_steps`: line 6, column 6
BAD_INDENT = """results: results
mask:
  finetune:
    defaults:
      max_steps: 3
     lr: 2
"""
WHERE = ":6:6: not valid YAML: did not find expected key"


@pytest.fixture
def bad(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_INDENT)
    return path


def one_line(out: str, path) -> str:
    assert "Traceback" not in out and "target" not in out, out
    lines = [line for line in out.splitlines() if str(path) in line]
    assert len(lines) == 1, out
    return lines[0]


def test_loader_names_file_line_and_column(bad):
    with pytest.raises(ConfigError) as exc:
        load_config_file(bad)
    assert str(exc.value).startswith(f"{bad}{WHERE} (while parsing a block mapping from line 4")


def test_dry_run_names_the_line(workflow_copy, bad):  # noqa: F811
    r = dry_run(workflow_copy, "-n", "--configfile", str(bad))
    assert r.returncode != 0
    assert f"{bad}{WHERE}" in one_line(r.stdout + r.stderr, bad)


def test_status_names_the_line(bad):
    r = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "status", "--configfile", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    assert f"{bad}{WHERE}" in one_line(r.stdout + r.stderr, bad)


@pytest.mark.parametrize(
    "name, content, says",
    [("over.yaml", b"\x89PNG\r\n\x1a\n\xff\xfe" * 8, "not UTF-8 text (byte 0 is 0x89; a binary file?)"),
     ("over.yaml", b"- mask\n- results\n", "holds a list of 2 items, not config keys"),
     ("over.json", b"[1, 2, 3]", "holds a list of 3 items, not config keys")],
    ids=["binary", "yaml-list", "json-list"],
)  # fmt: skip
def test_dry_run_names_an_overlay_that_holds_no_config(workflow_copy, name, content, says):
    """A binary overlay stopped the profile with a UnicodeDecodeError naming no file, and an
    overlay of a list was "not a JSON or YAML config file (a target typed after
    --configfile...)": blamed on a target. Now one line naming the file and what it holds."""
    path = workflow_copy / name
    path.write_bytes(content)
    r = dry_run(workflow_copy, "-n", "--configfile", "config/config.yaml", name)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert one_line(out, name).startswith(f"{name}: {says}"), out
