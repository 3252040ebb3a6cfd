"""``ablate cache --max-size`` (:mod:`ablate.core.reruns.cache_prune`): the run cache pruned to a
bound, the refused entries and then the entries used longest ago first (a restore counts as a
use). No command pruned the cache before: it only grew."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ablate import cli
from ablate.core.reruns import cache_prune, runcache


def entry(cache: Path, name: str, size: int, used: float) -> Path:
    path = cache / name
    (path / "outputs").mkdir(parents=True)
    (path / "outputs" / "0").write_bytes(b"x" * size)
    (path / runcache.MANIFEST).write_text("{}")
    os.utime(path / runcache.MANIFEST, (used, used))
    return path


def test_the_entries_used_longest_ago_go_first_down_to_the_bound(tmp_path, capsys):
    cache = tmp_path / "cache"
    old, mid, new = (entry(cache, n, 1000, t) for n, t in (("a", 1e9), ("b", 2e9), ("c", 3e9)))
    (cache / runcache.REFUSED / "bad").mkdir(parents=True)
    (cache / runcache.REFUSED / "bad" / "f").write_bytes(b"y" * 500)
    assert cli.main(["cache", "--cache", str(cache)]) == 0  # no bound: its size only
    assert all(p.exists() for p in (old, mid, new, cache / runcache.REFUSED))
    assert cli.main(["cache", "--cache", str(cache), "--max-size", "2100"]) == 0
    assert not old.exists() and not (cache / runcache.REFUSED).exists()
    assert mid.exists() and new.exists()
    out = capsys.readouterr().out
    assert "removed the 1 entries used longest ago" in out and "2 entries, 0.00 GB" in out


@pytest.mark.parametrize("text", ["20X", "-1G", "lots", ""])
def test_a_size_that_is_none_is_refused_in_one_line(tmp_path, capsys, text):
    (tmp_path / "cache").mkdir()
    assert cli.main(["cache", "--cache", str(tmp_path / "cache"), f"--max-size={text}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ablate cache: --max-size {text}: write a size") and err.count("\n") == 1


def test_sizes():
    assert cache_prune.parse_size("20G") == 20_000_000_000
    assert cache_prune.parse_size("1.5t") == 1_500_000_000_000
    assert cache_prune.parse_size("500MB") == 500_000_000
    assert cache_prune.parse_size("123") == 123
