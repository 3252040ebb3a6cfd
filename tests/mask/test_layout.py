"""The mask study's one job list (ablate.mask.layout.jobs): the rules run exactly its jobs, with
its output, log and benchmark paths; the planner and the recovery table read the same list."""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest
from checkout import copy_checkout, snakemake
from helpers import AGGREGATES, MASK_CONFIG_SETS, dry_run_jobs

from ablate.core import planner
from ablate.mask import layout

ROOT = Path(__file__).resolve().parents[2]
#: every shipped config set as --configfile takes it: the two base configs, then the overlays
#: and the smoke run (their dry runs: seconds each, so in the slow tier; the job list itself is
#: checked in the fast one)
CONFIGS, OVERLAYS = (
    [" ".join(f"config/{n}" for n in names) for names in sets]
    for sets in (MASK_CONFIG_SETS[:2], MASK_CONFIG_SETS[2:])
)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return copy_checkout(tmp_path_factory.mktemp("jobs"))


def config_of(name: str) -> dict:
    """The config as the rules get it: schema defaults filled (``name``: config files, in order)."""
    return planner.load_config([ROOT / n for n in name.split()])


@pytest.mark.parametrize(
    "name", [*CONFIGS, *(pytest.param(n, marks=pytest.mark.slow) for n in OVERLAYS)]
)
@pytest.mark.usefixtures("gpu_host")
def test_the_rules_run_exactly_the_job_list(fresh, name):
    config = config_of(name)
    r = snakemake(fresh, "-n", "--configfile", *name.split(), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    # the mask study's jobs (the bridge study's own list: tests/bridge/test_pipeline.py)
    ran = [
        j
        for j in dry_run_jobs(r.stdout)
        if j[0] not in AGGREGATES and not j[0].startswith("bridge_")
    ]
    listed = [(j.rule, frozenset(j.outputs.values()), j.log) for j in layout.jobs(config)]
    # the same jobs (counts per rule included), each with the job list's outputs and log
    assert collections.Counter(ran) == collections.Counter(listed)
    assert len(ran) == len(listed) == len({j.name for j in layout.jobs(config)})


@pytest.mark.parametrize("name", [*CONFIGS, *OVERLAYS])
def test_every_planned_job_is_a_job_of_the_list(name, monkeypatch):
    monkeypatch.chdir(ROOT)  # the measurements file is relative to the repository root
    """The planner forecasts the jobs with a kind, with the job list's record and benchmark."""
    config = config_of(name)
    listed = {j.name: j for j in layout.jobs(config) if j.kind}
    from ablate.core.planner.inputs import load_reference
    from ablate.mask.plan import study_plan

    ref = load_reference(config["plan"]["measurements"])
    planned = [j for sp in study_plan(config, ref, ROOT / "none") for j in sp.jobs]
    assert [p.id for p in planned] == list(listed)
    for p in planned:
        j = listed[p.id]
        assert (p.rule, p.kind, p.record, p.benchmark) == (j.rule, j.kind, j.record, j.benchmark)
        assert p.record.startswith(config["results"] + "/") and p.record in j.outputs.values()


def test_stages_of_the_evaluations():
    config = config_of("config/config.yaml")
    stages = {j.name: j.stage for j in layout.jobs(config) if j.rule == "eval_model"}
    assert stages == {
        "eval/base/causal": 1,
        "eval/base/prefill_bidir": 2,
        **{f"eval/{v}/{p}": 4 for v in ("3A", "3B") for p in ("causal", "prefill_bidir")},
        **{f"eval/5B/{p}": 5 for p in ("causal", "prefill_bidir")},
    }
    finetunes = {j.name: j.stage for j in layout.jobs(config) if j.rule == "finetune"}
    assert finetunes == {"finetune/3A": 3, "finetune/3B": 3, "finetune/5B": 5}
    labels = layout.recovery_labels(layout.jobs(config))
    assert labels["results/eval/5B/causal/metrics.json"] == {
        "stage": 5,
        "variant": "5B",
        "train_policy": "prefix_bidir",
    }


def test_file_patterns_are_defined_once():
    """The rules take every path from ablate.mask.layout.PATTERNS: no literal path in them (a
    model's file, mout("<key>"), names a key of PATTERNS)."""
    for smk in (ROOT / "rules" / "mask").glob("*.smk"):
        text = smk.read_text()
        assert not re.search(r'(?<!m)out\(\s*f?"', text), f"{smk.name} writes a path of its own"
        for key in re.findall(r'(?:mout|model_file)\(\s*"([^"]*)"', text):
            assert key in layout.PATTERNS, f"{smk.name}: {key!r} is no key of PATTERNS"
