"""The provenance block: the workflow checkout's git state, the CPU, the changed-keys summary, a
checkpoint's fingerprint read from its manifest."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from checkout import copy_checkout, snakemake

from ablate.core.outputs import checkpoint_integrity, provenance
from ablate.core.outputs.checkpoint_integrity import CheckpointError

ROOT = Path(__file__).resolve().parents[3]


def git(wd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=wd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def init_checkout(wd: Path) -> str:
    """wd as a git checkout of its own with every file committed; its HEAD commit."""
    git(wd, "init", "-q")
    git(wd, "add", "-A")
    git(wd, "commit", "-q", "-m", "checkout")
    return git(wd, "rev-parse", "HEAD")


def test_git_state_is_the_workflow_checkout_not_the_library(tmp_path, monkeypatch):
    (tmp_path / "Snakefile").write_text("# a workflow\n")
    head = init_checkout(tmp_path)
    assert Path(provenance.__file__).resolve().is_relative_to(ROOT)  # the library lives elsewhere
    # the rules name the checkout in the environment
    monkeypatch.setenv(provenance.WORKFLOW_DIR_ENV, str(tmp_path))
    clean = provenance.collect(config_slice={})["git"]
    assert clean == {"commit": head, "dirty": False}
    (tmp_path / "Snakefile").write_text("# a workflow, edited\n")  # a tracked file
    assert provenance.collect(config_slice={})["git"] == {"commit": head, "dirty": True}
    # outside Snakemake it is the cwd
    monkeypatch.delenv(provenance.WORKFLOW_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert provenance.collect(config_slice={})["git"]["commit"] == head
    monkeypatch.delenv(provenance.WORKFLOW_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert provenance.collect(config_slice={})["git"]["dirty"] is True


def test_git_state_outside_a_checkout_is_unknown(tmp_path):
    assert provenance.git_state(tmp_path) == {"commit": None, "dirty": None}


def test_a_stage_script_records_its_workflow_checkout(tmp_path, tiny_model_dir):
    """The prepare_model rule of a pretrained model, run by Snakemake in a separate git checkout
    with an edited tracked file, while the library is imported from this repository."""
    wd = copy_checkout(tmp_path / "wf")
    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
    cfg["mask"]["model"] = {"source": "pretrained", "path": str(tiny_model_dir), "download": False}
    (wd / "config/local.yaml").write_text(yaml.safe_dump(cfg))
    head = init_checkout(wd)
    with (wd / "config/README.md").open("a") as f:
        f.write("\nedited after the commit\n")
    r = snakemake(
        wd,
        "-c1",
        "results/model/base.json",
        "--configfile",
        "config/local.yaml",
        env={"PYTHONPATH": str(ROOT / "src")},
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    card = json.loads((wd / "results/model/base.json").read_text())
    assert card["provenance"]["git"] == {"commit": head, "dirty": True}


def test_cpu_model_and_instruction_sets(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 207\n"
        "model name\t: Intel(R) Xeon(R) Platinum 8480+\nstepping\t: 2\n"
        "flags\t\t: fpu sse2 avx2 fma avx512f amx_tile amx_bf16\n\n"
        "processor\t: 1\nvendor_id\t: AuthenticAMD\n"
    )
    monkeypatch.setattr(provenance, "CPUINFO", info)  # this machine's file, as given
    cpu = provenance.cpu_info()
    assert cpu["cpu_model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert cpu["cpu_vendor"] == "GenuineIntel"
    assert cpu["cpu_family_model_stepping"] == "6/207/2"  # a VM's generic name hides the model
    assert cpu["cpu_flags"]["avx2"] and cpu["cpu_flags"]["avx512f"] and cpu["cpu_flags"]["amx_bf16"]
    assert cpu["cpu_flags"]["avx512_bf16"] is False
    monkeypatch.setattr(provenance, "CPUINFO", tmp_path / "absent")
    missing = provenance.cpu_info()
    assert missing["cpu_flags"] is None  # unknown, not "no AVX"
    assert missing["cpu_vendor"] is None and missing["cpu_family_model_stepping"] is None
    hw = provenance.hardware()
    assert {"cpu_model", "cpu_flags", "torch_cpu_capability"} <= set(hw)


def test_changed_keys_name_the_edited_leaf():
    old = {"defaults": {"learning_rate": 0.001, "seed": 0}, "tasks": [{"n": "a", "limit": 5}]}
    new = {"defaults": {"learning_rate": 0.002, "seed": 0}, "tasks": [{"n": "a", "limit": 6}]}
    assert provenance.changed_keys(old, new, "finetune") == [
        "finetune.defaults.learning_rate 0.001 -> 0.002",
        "finetune.tasks.0.limit 5 -> 6",
    ]
    assert provenance.changed_keys(old, old) == []
    assert provenance.changed_keys({"a": 1}, {"b": True}) == [
        "a 1 -> <absent>",
        "b <absent> -> true",
    ]
    assert provenance.changed_keys({"a": 1}, {"a": True}) == ["a 1 -> true"]  # 1 == True in Python
    assert provenance.changed_keys({"l": [1, 2]}, {"l": [1]}) == ["l [1,2] -> [1]"]


# the lines of torch.__config__.show() (torch 2.13, CPU wheel) that name the BLAS path
TORCH_CONFIG = """PyTorch built with:
  - Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 20240605 for Intel(R) 64 ...
  - Intel(R) MKL-DNN v3.12.0 (Git Hash 80afa71049cd69a3df32adcccb623b12cd7baa22)
  - CPU capability usage: AVX512
  - Build settings: BLAS_INFO=mkl, BUILD_TYPE=Release, CUDA_FLAGS= -DCUDA_HAS_FP16=1 -Werror=format, \
LAPACK_INFO=mkl, TORCH_VERSION=2.13.0, USE_MKL=ON,
"""


def test_the_blas_path_of_the_torch_build():
    assert provenance.torch_build(TORCH_CONFIG) == {
        "blas": "mkl",
        "lapack": "mkl",
        "mkl": "2024.2",
        "onednn": "3.12.0",
    }
    openblas = "Build settings: BLAS_INFO=open, LAPACK_INFO=open, USE_MKL=OFF,"
    assert provenance.torch_build(openblas) == {
        "blas": "open",
        "lapack": "open",
        "mkl": None,
        "onednn": None,
    }


def test_the_numerics_environment_is_recorded_and_nothing_else(monkeypatch):
    """MKL_CBWR and the thread count change results on one CPU: the record names them; a token
    in the environment never enters it."""
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_TOKEN", "hf_FAKEnumericsToken")
    numerics = provenance.hardware()["numerics"]
    assert numerics["env"]["MKL_CBWR"] == "COMPATIBLE"
    assert numerics["env"]["OMP_NUM_THREADS"] == "1"
    assert "hf_FAKEnumericsToken" not in json.dumps(numerics)
    assert numerics["blas"] and numerics["float32_matmul_precision"] == "highest"


def test_the_installed_packages_are_read_once_per_install(tmp_path, monkeypatch, request):
    """runtime_packages (every run cache key; 0.6 s of CPU per job on a 2-core AMD EPYC without
    AVX-512 before) is kept in the user's cache under a key of what is installed: read back
    while nothing changes, computed again when a distribution's metadata changes."""
    import os
    import sys

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site = tmp_path / "site"
    meta = site / "fake_dist-1.0.dist-info" / "METADATA"
    meta.parent.mkdir(parents=True)
    meta.write_text("Metadata-Version: 2.1\nName: fake-dist\nVersion: 1.0\n")
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    provenance.runtime_packages.cache_clear()
    # a fake answer must not outlive the test, passed or failed (the next test reads the real one)
    request.addfinalizer(provenance.runtime_packages.cache_clear)
    monkeypatch.setattr(provenance, "_runtime_packages", lambda root: {"fake-dist": "1.0"})
    assert provenance.runtime_packages() == {"fake-dist": "1.0"}
    assert len(list((tmp_path / "cache" / "ablate").glob("runtime-packages-v2-ablate-*.json"))) == 1

    def computed(root):  # a kept answer must not compute again
        raise AssertionError("computed again")

    monkeypatch.setattr(provenance, "_runtime_packages", computed)
    provenance.runtime_packages.cache_clear()
    assert provenance.runtime_packages() == {"fake-dist": "1.0"}
    # an upgrade rewrites the metadata: another key, computed again
    key = provenance.installed_key()
    meta.write_text("Metadata-Version: 2.1\nName: fake-dist\nVersion: 1.1\n")
    os.utime(meta, ns=(1, 2))
    assert provenance.installed_key() != key
    monkeypatch.setattr(provenance, "_runtime_packages", lambda root: {"fake-dist": "1.1"})
    provenance.runtime_packages.cache_clear()
    assert provenance.runtime_packages() == {"fake-dist": "1.1"}


def test_fingerprint_of_a_checkpoint_comes_from_its_manifest(
    tmp_path, monkeypatch, hashed_checkpoint
):
    final = hashed_checkpoint
    read_twice = provenance.fingerprint_path(final)
    # the same list of (name, sha256) as hashing the files, without reading them again
    plain = tmp_path / "plain"
    plain.mkdir()
    for rel in checkpoint_integrity.verify(final)["files"]:
        (plain / rel).write_bytes((final / rel).read_bytes())
    assert provenance.fingerprint_path(plain) == read_twice
    monkeypatch.setattr(checkpoint_integrity, "sha256_file", lambda p: pytest.fail(f"rehashed {p}"))
    assert provenance.fingerprint_path(final) == read_twice
    (final / "extra.bin").write_bytes(b"x")  # a file the manifest does not list: refused
    with pytest.raises(CheckpointError, match="not in its manifest"):
        provenance.fingerprint_path(final)
