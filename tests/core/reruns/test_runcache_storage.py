"""Run-cache entries at a Snakemake storage plugin's location
(:class:`ablate.core.reruns.runcache_storage.PluginEntries`, through snakemake-storage-plugin-fs): an
entry goes up as one ``<prefix>/<key>.tar`` and comes back whole into a local folder cache; a key
with no object is none; an object whose members would land outside that folder is refused."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from ablate.core.reruns.runcache_storage import PluginEntries


def _entry(folder: Path, key: str) -> dict[str, bytes]:
    """An entry folder ``folder/key`` as runcache.store writes one; its files by relative path."""
    files = {"manifest.json": b"{}", "outputs/final/weights.bin": b"\x00\x01" * 100}
    for rel, data in files.items():
        (folder / key / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / key / rel).write_bytes(data)
    return files


def test_an_entry_goes_up_as_one_tar_and_comes_back_whole(tmp_path, fs_storage):
    up = PluginEntries(fs_storage, tmp_path / "work-a")
    assert up.where("k1") == f"{fs_storage['prefix']}/k1.tar"
    assert not up.exists("k1") and up.fetch("k1") is None  # nothing stored yet
    files = _entry(tmp_path / "cache", "k1")
    up.put(tmp_path / "cache", "k1")
    assert [p.name for p in Path(fs_storage["prefix"]).iterdir()] == ["k1.tar"]
    down = PluginEntries(fs_storage, tmp_path / "work-b")  # another clone's scratch folder
    assert down.exists("k1") and not down.exists("k2")
    local = down.fetch("k1")
    assert local == tmp_path / "work-b" / "entries"
    got = {
        str(p.relative_to(local / "k1")): p.read_bytes() for p in local.rglob("*") if p.is_file()
    }
    assert got == files


def test_a_trailing_slash_of_the_prefix_is_one_location(tmp_path, fs_storage):
    entries = PluginEntries({**fs_storage, "prefix": fs_storage["prefix"] + "/"}, tmp_path)
    assert entries.where("k") == f"{fs_storage['prefix']}/k.tar"


def test_an_object_reaching_outside_its_folder_is_refused(tmp_path, fs_storage):
    entries = PluginEntries(fs_storage, tmp_path / "work")
    _entry(tmp_path / "cache", "k1")
    entries.put(tmp_path / "cache", "k1")  # the location exists, with one honest object
    bad = Path(fs_storage["prefix"]) / "k2.tar"
    with tarfile.open(bad, "w") as t:
        member = tarfile.TarInfo("../../escaped.txt")
        member.size = 3
        t.addfile(member, io.BytesIO(b"bad"))
    with pytest.raises(tarfile.OutsideDestinationError):
        entries.fetch("k2")
    assert not (tmp_path / "escaped.txt").exists()
