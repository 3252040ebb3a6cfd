"""The local SLURM cluster's config link (tests/cluster/slurm_local.py): a link a killed session
left is removed before any test starts snakemake. It made every `scontrol` wait 9 s for a
controller that was gone, and the SLURM executor plugin runs one at every snakemake start: every
later snakemake call of the suite, and of the developer's own runs, paid it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import slurm_local


def cluster(root: Path, pid: int | None) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "slurm.conf").write_text("ClusterName=x\n")
    if pid is not None:
        (root / "pids.json").write_text(json.dumps({"pids": {"slurmctld": pid}}))
    return root / "etc" / "slurm.conf"


def test_a_link_to_a_cluster_that_is_gone_is_removed(tmp_path, monkeypatch):
    conf = tmp_path / "etc-slurm" / "slurm.conf"
    conf.parent.mkdir()
    monkeypatch.setattr(slurm_local, "DEFAULT_CONF", conf)
    conf.symlink_to(cluster(tmp_path / "dead", pid=None))
    assert "a killed session left" in slurm_local.remove_stale_link()
    assert not conf.is_symlink()


def test_a_running_cluster_or_a_real_configuration_is_kept(tmp_path, monkeypatch):
    conf = tmp_path / "etc-slurm" / "slurm.conf"
    conf.parent.mkdir()
    monkeypatch.setattr(slurm_local, "DEFAULT_CONF", conf)
    conf.symlink_to(cluster(tmp_path / "live", pid=os.getpid()))
    assert slurm_local.remove_stale_link() is None and conf.is_symlink()
    conf.unlink()
    conf.symlink_to("/nonexistent/etc/slurm.conf")  # a link out of the temporary folder
    assert slurm_local.remove_stale_link() is None and conf.is_symlink()
    conf.unlink()
    conf.write_text("ClusterName=real\n")
    assert slurm_local.remove_stale_link() is None and conf.read_text() == "ClusterName=real\n"
