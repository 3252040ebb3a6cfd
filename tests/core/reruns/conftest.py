"""The reruns tests' shared storage: a run cache at a Snakemake storage plugin's location."""

from __future__ import annotations

import os
import shutil
import sys

import pytest


@pytest.fixture
def fs_storage(tmp_path, monkeypatch):
    """A run cache at a Snakemake storage plugin's location: snakemake-storage-plugin-fs (the
    `test` extra), which copies with rsync; where rsync is not installed, a stand-in copies the
    one file the run cache moves at a time (an entry's .tar)."""
    pytest.importorskip("snakemake_storage_plugin_fs")
    if shutil.which("rsync") is None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        rsync = bin_dir / "rsync"
        rsync.write_text(
            f"#!{sys.executable}\n"
            "import shutil, sys\n"
            "src, dst = [a for a in sys.argv[1:] if not a.startswith('-')][-2:]\n"
            "shutil.copyfile(src, dst)\n"
        )
        rsync.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return {"storage": "fs", "prefix": str(tmp_path / "shared-storage")}
