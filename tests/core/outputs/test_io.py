"""Atomic writes: the target is replaced whole, and a failed write leaves the old file alone."""

import json

import pandas as pd
import pytest
from helpers import DEEP_JSON

from ablate.core.outputs import io
from ablate.core.outputs.records import read_json


def test_write_json_replaces_whole(tmp_path):
    p = tmp_path / "a" / "x.json"
    io.write_json(p, {"b": 1, "a": 2})
    assert json.loads(p.read_text()) == {"a": 2, "b": 1}
    assert p.read_text().index('"a"') < p.read_text().index('"b"')  # sorted keys
    assert [f.name for f in p.parent.iterdir()] == ["x.json"]  # no temporary left


def test_failed_write_keeps_old_file(tmp_path):
    p = tmp_path / "x.txt"
    io.write_text(p, "old")

    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        io.atomic_write(p, boom)
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["x.txt"]


def test_write_frame_by_suffix(tmp_path):
    df = pd.DataFrame({"a": [1, 2]})
    io.write_frame(tmp_path / "t.csv", df)
    io.write_frame(tmp_path / "t.parquet", df)
    assert pd.read_csv(tmp_path / "t.csv").equals(df)
    assert pd.read_parquet(tmp_path / "t.parquet").equals(df)
    with pytest.raises(ValueError, match="unknown table format"):
        io.write_frame(tmp_path / "t.xlsx", df)


@pytest.mark.parametrize("text", [DEEP_JSON, "[" * 101 + "]" * 101], ids=["100k", "101"])
def test_json_nested_too_deep_is_a_file_that_cannot_be_read(tmp_path, text):
    """Python's parser raised RecursionError (no reader's error for a bad file) on JSON 100k deep,
    and a reader recursing through what it parsed from about 500 levels (a record's result
    content): deeper than io.MAX_JSON_DEPTH is a ValueError naming the file, so every reader
    takes it as one it cannot read."""
    p = tmp_path / "summary.json"
    p.write_text(text)
    with pytest.raises(ValueError, match=f"^{p} holds JSON nested deeper than 100 levels$"):
        io.load_json(p)
    assert io.file_run_id(p) is None
    assert read_json(p) is None


def test_json_as_deep_as_the_bound_reads():
    text = "[" * 100 + "]" * 100
    assert io.parse_json(text, "x") == json.loads(text)
    assert io.json_depth({"a": [1, {"b": []}], "c": 2}) == 4 and io.json_depth(5) == 0
