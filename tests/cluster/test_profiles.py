"""The executor profiles as files: found by name from the repository root, every key commented,
partition/account/API key from the environment only, the Vast executor registered and pinned.
Fast and without root; the runs themselves are in test_slurm.py and test_vast.py."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from conftest import CLEAN_ENV, ROOT, SNAKEMAKE, copy_checkout

PROFILES = ("slurm", "vast")


@pytest.mark.parametrize("name", PROFILES)
def test_profile_name_resolves_from_repo_root_to_profiles_dir(name, monkeypatch):
    """`--profile NAME` searches ./NAME first (then ~/.config/snakemake, /etc/xdg/snakemake):
    ./NAME is a symlink into profiles/, so the profiles stay where the workflow keeps them."""
    from snakemake.cli import get_profile_dir

    monkeypatch.chdir(ROOT)
    found = get_profile_dir(name)
    assert found is not None, f"--profile {name} not found from {ROOT}"
    assert found[1].resolve() == ROOT / "profiles" / name / "config.yaml"
    assert (ROOT / name).is_symlink() and os.readlink(ROOT / name) == f"profiles/{name}"


@pytest.mark.parametrize("name", PROFILES)
def test_scheduler_runs_leave_cores_unset(name, monkeypatch):
    """Snakemake caps every job's threads at --cores, remote jobs included: a `cores` from the
    executor profile or from the workflow profile (loaded with it) would hold an 8-thread
    finetune on its SLURM node or Vast instance to the submit host's CPU count."""
    from snakemake.cli import parse_args

    monkeypatch.chdir(ROOT)
    _, args = parse_args(["--profile", name, "results/recovery.csv"])
    assert args.executor != "local" and args.jobs
    assert args.cores is None, f"--profile {name} sets cores={args.cores}"


def test_literal_vast_command_parses_from_a_checkout(tmp_path):
    """`snakemake --profile vast results/recovery.csv` (dry run) in a fresh checkout: the vast
    profile and the workflow profile are both loaded and the profile's groups are applied."""
    wd = copy_checkout(tmp_path / "checkout")
    r = subprocess.run(
        [SNAKEMAKE, "--profile", "vast", "results/recovery.csv", "-n"],
        cwd=wd,
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "Using profiles vast and workflow specific profile profiles/default" in out, out[:2000]
    groups = out.split("Group job train_eval")[1:]
    joint = [
        g
        for g in groups
        if "rule finetune:" in g.split("Group job")[0]
        and "rule eval_model:" in g.split("Group job")[0]
    ]
    assert joint, "no group job holds a finetune with its evaluations: profile groups not applied"


def _key_lines(text: str):
    """(line number, line, previous line) of every YAML mapping key line."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*[?\w\"'][^#]*:(\s|$)", line) and not line.lstrip().startswith("#"):
            yield i + 1, line, lines[i - 1] if i else ""


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_key_is_commented(name):
    text = (ROOT / "profiles" / name / "config.yaml").read_text()
    bare = [
        f"{n}: {line.strip()}"
        for n, line, prev in _key_lines(text)
        if "#" not in line and not prev.strip().startswith("#")
    ]
    assert not bare, f"profiles/{name}/config.yaml keys without a comment:\n" + "\n".join(bare)


def _parse_profile(name: str, env: dict) -> dict:
    """The profile as Snakemake reads it (YTE templating evaluated in this environment)."""
    from snakemake.profiles import ProfileConfigFileParser

    path = ROOT / "profiles" / name / "config.yaml"
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update({**CLEAN_ENV, **env})
    try:
        with open(path) as f:
            return dict(ProfileConfigFileParser().parse(f))
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_slurm_partition_and_account_come_from_the_environment():
    none = _parse_profile("slurm", {})
    assert not any(
        r.startswith(("slurm_partition=", "slurm_account=")) for r in none["default-resources"]
    ), none["default-resources"]
    both = _parse_profile("slurm", {"SBATCH_PARTITION": "gpu-h100", "SBATCH_ACCOUNT": "proj42"})
    assert "slurm_partition=gpu-h100" in both["default-resources"]
    assert "slurm_account=proj42" in both["default-resources"]
    assert both["executor"] == "ablate-slurm"


def test_vast_profile_has_no_api_key():
    text = (ROOT / "profiles" / "vast" / "config.yaml").read_text()
    keys = yaml.safe_load(text)
    assert not [k for k in keys if "key" in k.lower()], keys
    assert keys["executor"] == "ablate-vast"
    # nothing that looks like a Vast key (64 hex chars) anywhere in the profiles
    for name in PROFILES:
        text = (ROOT / "profiles" / name / "config.yaml").read_text()
        assert not re.search(r"[0-9a-f]{32,}", text), name


def test_vast_executor_registered_and_pinned():
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    from snakemake_executor_plugin_ablate_vast import executor

    plugin = ExecutorPluginRegistry().get_plugin("ablate-vast")
    assert plugin.executor is executor.Executor  # not the import-error stand-in
    assert executor.plugin_version() == executor.PLUGIN_VERSION
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"snakemake-executor-plugin-vastai=={executor.PLUGIN_VERSION}"' in pyproject


def test_registry_loads_both_executor_stand_ins_without_their_dependencies():
    """Without the stock SLURM and Vast plugins Snakemake's registry still loads both executors
    (it imports every one at each start); each stand-in refuses in one line when it starts."""
    code = """
import pkgutil, sys
stock = ("snakemake_executor_plugin_slurm", "snakemake_executor_plugin_vastai")
for name in stock:
    sys.modules[name] = None  # not installed: importing it fails ...
found = pkgutil.iter_modules  # ... and the registry's search does not list it
pkgutil.iter_modules = lambda *a: (m for m in found(*a) if m.name not in stock)
from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
registry = ExecutorPluginRegistry()
for name in ("ablate-slurm", "ablate-vast"):
    try:
        registry.get_plugin(name).executor.__post_init__(None)
    except Exception as exc:
        print(type(exc).__name__, exc)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    slurm, vast = r.stdout.splitlines()
    assert slurm.startswith("WorkflowError executor ablate-slurm (--profile slurm) needs "), slurm
    assert vast.startswith("WorkflowError executor ablate-vast unavailable: "), vast
    assert "snakemake_executor_plugin_vastai" in vast, vast


def test_remote_requirement_check_runs_pip_only_when_needed(tmp_path):
    """The instance-side check passes on an environment holding the pins (no pip at all) and
    fails on a missing or mismatched pin (then pip runs)."""
    from snakemake_executor_plugin_ablate_vast.executor import (
        _CHECK_REQUIREMENTS,
        project_requirements,
    )

    pins = [r for r in project_requirements() if not r.startswith("torch")]
    ok = subprocess.run(
        [sys.executable, "-c", _CHECK_REQUIREMENTS, json.dumps(pins)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    for bad in (["no-such-package-xyz==1.0"], ["pyyaml==0.0.1"]):
        r = subprocess.run(
            [sys.executable, "-c", _CHECK_REQUIREMENTS, json.dumps(bad)],
            capture_output=True,
            text=True,
        )
        assert r.returncode != 0, bad


def _setup_pip_calls(tmp_path, monkeypatch, extra: list[str]) -> list[str]:
    """The Vast job setup run by sh with this interpreter as the instance's python: the pip
    commands it ran (logged, not run), with ``extra`` added to the project's requirements."""
    from snakemake_executor_plugin_ablate_vast import executor as vast

    requirements = vast.project_requirements()
    monkeypatch.setattr(vast, "project_requirements", lambda: [*requirements, *extra])
    runner = vast.Executor.__new__(vast.Executor)  # the setup reads storage_mode alone
    runner.storage_mode = False
    script = runner.job_setup_script()
    bin_dir, log = tmp_path / "bin", tmp_path / "pip.log"
    bin_dir.mkdir(parents=True)
    for name in ("python", "python3"):  # pip logged, anything else run by this interpreter
        (bin_dir / name).write_text(
            f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then echo "$@" >> {log}; exit 0; fi\n'
            f'exec {sys.executable} "$@"\n'
        )
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run(["sh", "-c", script], cwd=tmp_path, env=env, check=True, capture_output=True)
    return log.read_text().splitlines() if log.exists() else []


def test_vast_setup_runs_pip_only_when_a_pin_is_missing(tmp_path, monkeypatch):
    """Workaround (10): the stock job setup ran `pip install snakemake==X <storage plugins>` before
    every job, installed or not (12 s a job on a loaded 2-core host). Its pins are now checked
    with the project's: no pip on an environment holding them all; one pip of every pin, the
    stock's included, when one is missing."""
    from snakemake_executor_plugin_vastai import snakemake_bootstrap_script

    from snakemake_executor_plugin_ablate_vast.executor import stock_bootstrap_pins

    stock = stock_bootstrap_pins(snakemake_bootstrap_script(with_storage_plugins=True))
    assert any(p.startswith("snakemake==") for p in stock), stock
    assert _setup_pip_calls(tmp_path / "held", monkeypatch, []) == []
    (call,) = _setup_pip_calls(tmp_path / "missing", monkeypatch, ["no-such-package-xyz==1.0"])
    assert call.startswith("-m pip install --quiet ") and "no-such-package-xyz==1.0" in call
    assert set(stock) <= set(call.split()), (stock, call)


def test_vast_setup_script_puts_shipped_src_first():
    from snakemake_executor_plugin_ablate_vast.executor import remote_project_setup

    script = remote_project_setup(["torch==2.13.0", "pandas==2.3.3"])
    assert script.startswith('export PYTHONPATH="$PWD/src')
    assert "pandas==2.3.3" in script and "find_spec" in script  # torch only where missing
    assert "-m pip install --quiet torch==2.13.0" in script


def test_profiles_yaml_is_valid():
    for name in PROFILES:
        assert isinstance(
            yaml.safe_load(io.StringIO((ROOT / "profiles" / name / "config.yaml").read_text())),
            dict,
        )
