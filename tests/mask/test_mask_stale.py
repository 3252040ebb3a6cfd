"""Staleness of the mask study's jobs: each job's record holds its config slice (``Job.config``),
and an edit of any key of a slice names that key, where the config sets it, in the stale line
(``ablate.core.reruns.stale``) and STATUS; a record written before jobs recorded their slice alone
reads as current."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ablate.core import planner
from ablate.core.reruns.stale import stale_lines
from ablate.mask import layout, policies, status

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cfg() -> dict:
    """The embedded default config, schema defaults filled (as the rules get it)."""
    return planner.load_config(ROOT / "config/config.yaml")


def write_records(jobs, workdir: Path, slice_of=lambda job: job.config) -> None:
    """Each job's JSON outputs as its script writes them: a provenance block holding its slice
    (the embedded model's summary and card both)."""
    for job in jobs:
        for out in job.outputs.values():
            if out.endswith(".json"):
                path = workdir / out
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"provenance": {"config": slice_of(job)}}))


def leaves(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """The key path of every leaf of a slice (list items by index)."""
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in leaves(v, (*prefix, k))]
    if isinstance(tree, list) and tree:
        return [p for i, v in enumerate(tree) for p in leaves(v, (*prefix, i))]
    return [prefix]


def edited(value: Any) -> Any:
    """Another value of the same kind (another policy for a policy)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if value in policies.POLICIES:
        return next(p for p in policies.POLICIES if p not in (value, "causal"))
    return "edited" if value is None else f"{value}-edited"


def config_path(cfg: dict, job, key: tuple) -> tuple | None:
    """Where the config sets a slice key now: a node slice's key under its node; a finetune's
    key on its variant, else on the stage-3 variant it extends, else in the defaults."""
    if job.rule != "finetune":
        return ("mask", layout.SLICE_NODES[job.rule], *key)
    if key[0] == "variant":
        return None  # the variant's name: the job itself
    declared = cfg["mask"]["finetune"]["variants"]
    own = job.config["variant"]
    own = job.labels["variant"].get("base", own)
    k = key[1] if key[0] == "params" else key[0]
    if key == ("params", "seed") and "seed" in job.labels["variant"]:
        return None  # a seed's seed: its job's name
    for name in (own, declared[own].get("extends")):
        if name and k in declared[name]:
            return ("mask", "finetune", "variants", name, *(key[1:] if key[0] == "params" else key))
    if key[0] == "params":
        return ("mask", "finetune", "defaults", *key[1:])
    return ("mask", "finetune", "variants", own, *key)  # a variant key left at its default


def set_at(tree: Any, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        tree = tree[k]
    tree[path[-1]] = value


def get_at(tree: Any, path: tuple) -> Any:
    for k in path:
        tree = tree[k]
    return tree


def test_every_key_of_every_slice_names_itself_in_the_stale_line(cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the records are read from the working directory
    jobs = layout.jobs(cfg)
    write_records(jobs, tmp_path)
    assert stale_lines(jobs, cfg) == []  # nothing changed: silent
    checked = set()
    for job in jobs:
        if job.record is None:
            continue
        for key in leaves(job.config):
            where = config_path(cfg, job, key)
            # no stage edit alone is a config: a stage-5 variant extends a stage-3 one, which
            # extends none
            if where is None or where in checked or key == ("stage",):
                continue
            checked.add(where)
            now = copy.deepcopy(cfg)
            set_at(now, where, edited(get_at(job.config, key)))
            new_jobs = layout.jobs(now)
            name = ".".join(map(str, where))
            lines = stale_lines(new_jobs, now)
            label = " ".join([job.rule, "/".join(job.wildcards.values())]).strip()
            # a finetune's key its variant inherits: named on the variant, then where it is set
            named = (f" {name} ", f"(now set by {name})")
            assert any(
                ln.startswith(f"stale: {label}: ") and any(n in ln for n in named) for ln in lines
            ), (name, lines)
    # every node and every finetune key was edited once (the n_pairs of the leakage probe too)
    assert ("mask", "leakage", "n_pairs") in checked
    assert ("mask", "finetune", "defaults", "learning_rate") in checked
    assert len(checked) > 40


def test_the_stale_line_names_the_key_where_it_is_set(cfg, tmp_path, monkeypatch):
    """A key that a stage-5 variant inherits is named on the variant that sets it."""
    monkeypatch.chdir(tmp_path)  # the records are read from the working directory
    cfg = copy.deepcopy(cfg)
    cfg["mask"]["finetune"]["variants"]["3B"]["warmup_ratio"] = 0.1
    write_records(layout.jobs(cfg), tmp_path)
    cfg["mask"]["finetune"]["variants"]["3B"]["warmup_ratio"] = 0.2
    lines = [ln for ln in stale_lines(layout.jobs(cfg), cfg) if "finetune" in ln]
    assert lines == [
        "stale: finetune 3B: mask.finetune.variants.3B.warmup_ratio 0.1 -> 0.2",
        "stale: finetune 5B: mask.finetune.variants.5B.warmup_ratio 0.1 -> 0.2 "
        "(now set by mask.finetune.variants.3B.warmup_ratio)",
    ]


def test_a_variants_key_removed_is_named_on_the_variant_not_as_a_defaults_edit(
    cfg, tmp_path, monkeypatch
):
    """The variant's own learning_rate removed: the line named the defaults' key, as if the
    defaults had been edited from 0.0005 to 0.001."""
    monkeypatch.chdir(tmp_path)  # the records are read from the working directory
    cfg = copy.deepcopy(cfg)
    cfg["mask"]["finetune"]["variants"]["3A"]["learning_rate"] = 5e-4
    write_records(layout.jobs(cfg), tmp_path)
    del cfg["mask"]["finetune"]["variants"]["3A"]["learning_rate"]
    assert cfg["mask"]["finetune"]["defaults"]["learning_rate"] == 1e-3
    lines = [ln for ln in stale_lines(layout.jobs(cfg), cfg) if "finetune" in ln]
    assert lines == [
        "stale: finetune 3A: mask.finetune.variants.3A.learning_rate 0.0005 -> 0.001 "
        "(now set by mask.finetune.defaults.learning_rate)"
    ]


def test_a_record_written_before_jobs_recorded_their_slice_reads_current(
    cfg, tmp_path, monkeypatch
):
    """An evaluation recorded {eval: slice, model, policy}, a probe {**slice, policy}: current."""
    monkeypatch.chdir(tmp_path)  # the records are read from the working directory

    def old_shape(job):
        if job.rule == "eval_model":
            return {"eval": job.config, **job.wildcards}
        if job.rule == "leakage_probe":
            return {**job.config, **job.wildcards}
        return job.config

    jobs = layout.jobs(cfg)
    write_records(jobs, tmp_path, old_shape)
    assert stale_lines(jobs, cfg) == []
    # the ones rules/mask/common.smk says how to keep (their scripts changed since)
    older = [j.name for j in status.older_records(jobs)]
    assert older == [j.name for j in jobs if j.rule in ("leakage_probe", "eval_model")]
    write_records(jobs, tmp_path)
    assert status.older_records(jobs) == []
    write_records(jobs, tmp_path, old_shape)
    now = copy.deepcopy(cfg)
    now["mask"]["leakage"]["n_pairs"] += 1
    now["mask"]["eval"]["seed"] += 1
    lines = stale_lines(layout.jobs(now), now)
    assert sum("mask.leakage.n_pairs " in ln for ln in lines) == len(
        [j for j in jobs if j.rule == "leakage_probe"]
    )
    assert sum("mask.eval.seed " in ln for ln in lines) == len(
        [j for j in jobs if j.rule == "eval_model"]
    )
