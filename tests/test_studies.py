"""The hub-offline switch is each job's own, decided from its study's config slice
(ablate.studies.hub_switch): an embedded mask study no longer makes the bridge's hub jobs run
offline, nor the reverse. No network: the switch is checked where it is decided, in a fresh
process as a job's script sets it, and in every study script's source."""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ablate import studies
from ablate.core import planner

ROOT = Path(__file__).resolve().parents[1]


def mixed(hub_study: str) -> dict:
    """The embedded default with one study's model on the hub (the other wholly embedded)."""
    config = copy.deepcopy(planner.load_config(ROOT / "config" / "config.yaml"))
    if hub_study == "bridge":
        config["bridge"]["target"] = {"source": "hub", "path": "meta-llama/Llama-3.1-8B-Instruct"}
    else:
        config["mask"]["model"] = {**config["mask"]["model"], "source": "hub", "path": "org/name"}
    return config


@pytest.mark.parametrize("hub_study, embedded_study", [("bridge", "mask"), ("mask", "bridge")])
def test_each_study_gets_its_own_switch(hub_study, embedded_study, monkeypatch):
    config = mixed(hub_study)
    assert studies.hub_free(config, embedded_study) and not studies.hub_free(config, hub_study)

    def environment(given: dict[str, str]) -> dict[str, str]:  # the process's, as given
        monkeypatch.setattr(os, "environ", dict(given))
        return os.environ

    env = environment({})
    assert studies.hub_switch(config, embedded_study)
    assert env == studies.HUB_OFFLINE
    env = environment({})
    assert not studies.hub_switch(config, hub_study) and env == {}
    env = environment({"HF_HUB_OFFLINE": "0"})  # a user's own setting stays
    studies.hub_switch(config, embedded_study)
    assert env["HF_HUB_OFFLINE"] == "0"
    default = planner.load_config(ROOT / "config" / "config.yaml")
    assert all(studies.hub_free(default, s) for s in studies.STUDIES)


JOB = """
import json, sys
from ablate import studies
studies.hub_switch(json.load(open(sys.argv[1])), sys.argv[2])
from huggingface_hub import constants
print(json.dumps(constants.HF_HUB_OFFLINE))
"""


def test_a_job_process_reads_its_own_switch(tmp_path):
    """As a job's script: the switch set first, the hub library reads it at import."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(mixed("bridge"), default=str))
    env = {k: v for k, v in os.environ.items() if k not in studies.HUB_OFFLINE}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    offline = {}
    for study in ("mask", "bridge"):
        r = subprocess.run([sys.executable, "-c", JOB, str(path), study], env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        offline[study] = json.loads(r.stdout)
    assert offline == {"mask": True, "bridge": False}


#: what a script may do before its switch: standard-library imports and its log redirect
BEFORE_SWITCH = {"sys", "json", "time", "pathlib", "os"}
#: the project's modules a script may import before its switch (a side output's name, a restored
#: record's MLflow run): the test below checks that importing them imports no HF library
LIGHT = {
    "ablate": {"job_script"},
    "ablate.core.reports": {"tracking"},
    "ablate.core.outputs.checkpoint_integrity": {"CHECKPOINTS_DIR"},
}


def study_scripts() -> list[tuple[str, Path]]:
    """(study, script) of every rule under rules/<study>/."""
    out = set()
    for study in studies.STUDIES:
        for smk in (ROOT / "rules" / study).glob("*.smk"):
            for name in re.findall(r'workflow/scripts/(\w+\.py)"', smk.read_text()):
                out.add((study, ROOT / "workflow" / "scripts" / name))
    return sorted(out)


def test_every_study_script_sets_its_own_switch_first():
    """Each study script's first statement after standard-library imports (and the light modules
    of LIGHT) is ablate.job_script's start (log, this study's hub switch, ...), and importing
    those modules imports no HF library."""
    scripts = study_scripts()
    assert {s for s, _ in scripts} == set(studies.STUDIES) and len(scripts) >= 18
    for study, script in scripts:
        calls = []
        for node in ast.parse(script.read_text()).body:
            value = node.value if isinstance(node, (ast.Expr, ast.Assign)) else None
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
                if value.func.attr in ("start", "start_light", "start_table"):
                    calls.append([ast.unparse(a) for a in value.args])
                    break
            if isinstance(node, ast.Import):
                assert {a.name for a in node.names} <= BEFORE_SWITCH, script.name
            elif isinstance(node, ast.ImportFrom):
                allowed = node.module in BEFORE_SWITCH or (
                    {a.name for a in node.names} <= LIGHT.get(node.module, set())
                )
                assert allowed, f"{script.name} imports {node.module} before its hub switch"
        assert calls == [["snakemake", repr(study)]], script.name
    light = "; ".join(f"from {m} import {', '.join(sorted(names))}" for m, names in LIGHT.items())
    code = f"import sys; {light}; print(sorted(m for m in HF if m in sys.modules))"
    hf = "HF = ('transformers', 'datasets', 'huggingface_hub', 'lm_eval', 'torch'); "
    out = subprocess.run([sys.executable, "-c", hf + code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
