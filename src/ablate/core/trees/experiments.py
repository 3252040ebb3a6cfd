"""Experiments side by side (config key ``experiments``): a variant of the configuration, run in
its own results tree beside the base's, that runs only what its change reaches.

Its configuration is the base's with its keys merged over it, its results under the base's
(:func:`folder`); a job whose result is the base job's is shared: it reads the base's files
(:func:`sharing`; docs/design.md, "Experiments"). Pure Python (no torch): the Snakefile, STATUS
and ``ablate runs`` import it.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate import studies
from ablate.core.config import (
    DEFAULT_CONFIGFILE,
    PATTERN_MEANING,
    ConfigError,
    config_schema,
    schema_error,
    validate_config,
)
from ablate.core.jobs import LOG, RESTORED_LINE, Job, said
from ablate.core.outputs import io
from ablate.core.outputs.io import file_run_id
from ablate.core.outputs.provenance import changed_keys
from ablate.core.outputs.records import read_json
from ablate.core.reruns.stale import job_changes
from ablate.core.trees.results_origin import resolved

#: An experiment's results tree under the base's results folder.
EXP_DIR = "exp"
#: The config key of an experiment's configuration: {"name": ..., "base": the base config}.
MARKER = "experiment"
#: Why no config file or ``--config`` sets :data:`MARKER` (it would be read as an experiment of
#: the base it names): key -> that line (:func:`ablate.core.config.config_files_error`).
BY_WORKFLOW = {
    MARKER: "set by the workflow for an experiment's own configuration, never by hand: to run "
    "an experiment, write experiments: {NAME: {KEY: VALUE}} in a config file (or ablate exp run "
    "NAME --set KEY=VALUE)"
}
#: Where ``ablate exp run NAME`` writes its experiments, a config file read after the base's.
OVERLAYS = "experiments"
#: Config keys that describe where and how a configuration runs, not what its jobs compute.
_RUN_KEYS = frozenset({"results", "run_cache", "tracking", "plan", "experiments", MARKER})
#: A study's keys read only by its jobs without a config slice (tables, claims); the default of
#: a layout's ``TABLE_KEYS``.
TABLE_KEYS: tuple[str, ...] = ()


def folder(results: str, name: str) -> str:
    """The results tree of experiment ``name`` of the base whose results are in ``results``."""
    return f"{results}/{EXP_DIR}/{name}"


def base_of(results: str | os.PathLike) -> str | None:
    """The base's results folder of an experiment's tree (symlinks resolved), else None."""
    path = Path(resolved(results))
    base = path.parent.parent
    return str(base) if path.parent.name == EXP_DIR and str(base) != "." else None


def rule_prefix(name: str) -> str:
    """The prefix of experiment ``name``'s rules (``exp_lr_``): Snakemake's module namespace."""
    return "exp_" + re.sub(r"\W", "_", name) + "_"


def base_rule(rule: str, config: Mapping[str, Any] | None) -> str:
    """The base's rule an experiment's rule copies (``exp_lr_finetune`` -> ``finetune``)."""
    marker = (config or {}).get(MARKER)
    return rule.removeprefix(rule_prefix(marker["name"])) if marker else rule


def name_rule() -> dict[str, Any]:
    """The schema's ``pattern`` of an experiment's name, and its words."""
    rule = config_schema()["properties"]["experiments"]["propertyNames"]
    return {"pattern": rule["pattern"], "words": rule[PATTERN_MEANING]}


def is_name(name: str) -> bool:
    return re.fullmatch(name_rule()["pattern"], str(name)) is not None


def check_names(names: Iterable[str]) -> None:
    """Each experiment's name is a folder name and no two name the same rules: ConfigError."""
    seen: dict[str, str] = {}
    for name in names:
        if not is_name(name):
            words = name_rule()["words"]
            raise ConfigError(f"invalid config at experiments.{name}: {name!r} is not {words}")
        prefix = rule_prefix(name)
        if prefix in seen:
            raise ConfigError(
                f"invalid config at experiments.{name}: its rules would be named as those of "
                f"experiments.{seen[prefix]} ({prefix}*): rename one"
            )
        seen[prefix] = name


def base_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The base configuration of a config (its experiments and marker left out)."""
    return {k: copy.deepcopy(v) for k, v in config.items() if k not in ("experiments", MARKER)}


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged over a copy of ``base``, mapping by mapping (a later config file's rule)."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merged(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def experiment_config(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Experiment ``name``'s configuration, validated (ConfigError naming it)."""
    from jsonschema import ValidationError

    over = config["experiments"][name] or {}
    for key in sorted(_RUN_KEYS & set(over)):
        raise ConfigError(
            f"invalid config at experiments.{name}.{key}: an experiment sets what its jobs "
            f"compute; its {key} is the base's (its results: {folder(config['results'], name)})"
        )
    base = base_config(config)
    cfg = merged(base, over)
    cfg.update(results=folder(base["results"], name), experiments={})
    try:
        validate_config(cfg)
    except ValidationError as exc:
        raise ConfigError(f"experiments.{name}: {schema_error(exc)}") from None
    cfg[MARKER] = {"name": name, "base": base, "set": copy.deepcopy(over)}
    return cfg


def leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of every leaf of a config tree (a list is one leaf)."""
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


def changed(base: Mapping[str, Any], exp: Mapping[str, Any]) -> list[str]:
    """The dotted keys whose values differ between two configurations, run keys aside."""
    a = leaves({k: v for k, v in base.items() if k not in _RUN_KEYS})
    b = leaves({k: v for k, v in exp.items() if k not in _RUN_KEYS})
    missing = object()
    return sorted(k for k in set(a) | set(b) if a.get(k, missing) != b.get(k, missing))


def _wheres(job: Job) -> list[str]:
    """The config keys a job's slice holds (its ``labels["where"]``)."""
    where = job.labels.get("where")
    if isinstance(where, Mapping):
        return [w for w in where.values() if w]
    return [where] if where else []


def _within(key: str, node: str) -> bool:
    return key == node or key.startswith(node + ".")


def sharing(
    base_jobs: Iterable[Job], exp_jobs: Iterable[Job], keys: Iterable[str]
) -> dict[str, Job]:
    """The shared jobs: experiment job name -> the base's job (both lists in run order)."""
    base = {j.name: j for j in base_jobs}
    exp = list(exp_jobs)
    keys = list(keys)
    held = [w for j in [*base.values(), *exp] if j.config is not None for w in _wheres(j)]
    # a changed key no slice holds (and no table reads alone) reaches every job of its study
    tables = [  # the keys its tables alone read (a layout's TABLE_KEYS), as config keys
        f"{s}.{k}"
        for s in {j.study for j in exp}
        for k in getattr(studies.side(s, "layout"), "TABLE_KEYS", TABLE_KEYS)
    ]
    loose = {
        k
        for k in keys
        if not any(_within(k, w) or _within(w, k) for w in held)
        and not any(_within(k, t) for t in tables)
    }
    out: dict[str, Job] = {}
    for job in exp:
        b = base.get(job.name)
        if b is None or b.rule != job.rule or b.wildcards != job.wildcards:
            continue
        if any(_within(k, job.study) for k in loose):
            continue  # a key of its study that no slice holds
        if job.config is None and any(_within(k, job.study) for k in keys):
            continue  # a table, plot or claims job reads its study's section
        if job.config != b.config or not all(u in out for u in job.upstream):
            continue
        out[job.name] = b
    return out


def share(jobs: Iterable[Job], shared: Mapping[str, Job]) -> None:
    """The shared jobs of an experiment's job list made the base's, in place."""
    for job in jobs:
        b = shared.get(job.name)
        if b is not None:
            job.outputs = dict(b.outputs)
            job.record, job.log, job.benchmark = b.record, b.log, b.benchmark
            job.labels = {**job.labels, "shared": True}


def redirects(exp_jobs: Iterable[Job], shared: Mapping[str, Job]) -> dict[str, str]:
    """Each output of a shared job as the experiment's rules name it -> the base's file (a
    module's ``replace_prefix``); one whose name starts with another's that maps alike is left
    to that one: Snakemake refuses two prefixes of one path."""
    pairs = {
        path: shared[j.name].outputs[k]
        for j in exp_jobs
        if j.name in shared
        for k, path in j.outputs.items()
    }
    out: dict[str, str] = {}
    for path in sorted(pairs, key=len):
        if not any(
            path.startswith(p) and pairs[path] == q + path[len(p) :] for p, q in out.items()
        ):
            out[path] = pairs[path]
    return out


def study_jobs(config: Mapping[str, Any]) -> dict[str, list[Job]]:
    """Each study's job list; an experiment's with its shared jobs the base's."""
    jobs = {s: studies.side(s, "layout").jobs(config) for s in config["studies"]}
    if config.get(MARKER):
        every = [j for js in jobs.values() for j in js]
        share(every, shared_of(config, every))
    return jobs


def _base_jobs(config: Mapping[str, Any]) -> list[Job]:
    base = config[MARKER]["base"]
    return [j for s in base["studies"] for j in studies.side(s, "layout").jobs(base)]


def shared_of(
    config: Mapping[str, Any], jobs: Iterable[Job], base: list[Job] | None = None
) -> dict[str, Job]:
    """An experiment's :func:`sharing`; ``base``: its base's jobs, when the caller has them."""
    return sharing(base or _base_jobs(config), jobs, changed(config[MARKER]["base"], config))


def _slice_changes(base: Iterable[Job], jobs: Iterable[Job]) -> list[str]:
    """``<job>: key old -> new`` of each job whose own config slice differs from its base's."""
    mine = {j.name: j for j in base}
    return [
        f"{j.name}: {c}"
        for j in jobs
        if j.name in mine and j.config is not None
        for c in changed_keys(mine[j.name].config, j.config)
    ]


#: An experiment's definition, written into its tree when a run of it starts.
DEFINITION = "experiment.json"


def resolved_config(config: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """A copy with each key of ``keys`` it leaves unset given its study's value."""
    out = copy.deepcopy(dict(config))
    have = leaves(out)
    for key in keys:
        study = key.split(".")[0]
        if key in have or study not in studies.STUDIES:
            continue
        hook = getattr(studies.side(study, "layout"), "resolved_value", None)
        if hook is None:
            continue
        try:
            value = hook(config, key)
        except KeyError:
            continue
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = copy.deepcopy(value)
    return out


def changes(base: Mapping[str, Any], exp: Mapping[str, Any]) -> list[str]:
    """``key old -> new`` of each key an experiment changes, unset ones resolved."""

    def what(cfg: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in cfg.items() if k not in _RUN_KEYS}

    keys = changed(base, exp)
    return changed_keys(what(resolved_config(base, keys)), what(resolved_config(exp, keys)))


@dataclass
class Plan:
    """One experiment as the base's Snakefile loads it: its configuration, its Snakemake module,
    the files of its shared jobs -> the base's (``redirects``) and the rules it runs no job of
    (``excluded``)."""

    name: str
    config: dict[str, Any]
    module: str
    prefix: str
    redirects: dict[str, str]
    excluded: list[str]
    jobs: list[Job]
    slices: list[str]

    def definition(self) -> dict[str, Any]:
        base = self.config[MARKER]["base"]
        return {
            "name": self.name,
            "base": base["results"],
            "changes": changes(base, self.config),
            "slices": self.slices,
            "set": self.config[MARKER].get("set", {}),
            "shared": [j.name for j in self.jobs if j.labels.get("shared")],
            "own": [j.name for j in self.jobs if not j.labels.get("shared")],
        }


#: The definition's record of the base an experiment was last made with: base job -> its record
#: and run id then, and the config keys its record was stale by (``stale``, where it was);
#: ``ablate runs`` withholds the deltas once the base's records differ, or where the base's
#: counterpart of one of its own jobs was stale (a delta would mix in the base's edit).
BASE_RUNS = "base_runs"


def base_runs(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The :data:`BASE_RUNS` of an experiment's configuration, as its base's records are now."""
    base = config[MARKER]["base"]
    out: dict[str, dict[str, Any]] = {}
    for j in _base_jobs(config):
        if j.record:
            rel = os.path.relpath(j.record, base["results"])
            out[j.name] = {"record": rel, "run_id": file_run_id(j.record)}
            if changes := job_changes(j, base):
                out[j.name]["stale"] = changes
    return out


def _base_files(configfiles: Iterable[str]) -> list[str]:
    """The base configuration's files among a run's ``--configfile`` files."""
    import yaml

    out = []
    for f in configfiles:
        try:
            cfg = yaml.safe_load(Path(f).read_text())
        except (OSError, yaml.YAMLError):
            cfg = None
        if not (isinstance(cfg, Mapping) and set(cfg) <= {"experiments"}):
            rel = os.path.relpath(f)
            out.append(str(f) if rel.split(os.sep)[0] == os.pardir else rel)
    return out


def record(plans: Iterable[Plan], configfiles: Iterable[str] = ()) -> None:
    """Each experiment's :data:`DEFINITION` into its tree (its BASE_RUNS kept if unchanged)."""
    files = _base_files(configfiles)
    for plan in plans:
        path = f"{plan.config['results']}/{DEFINITION}"
        new, old = {**plan.definition(), "configfiles": files}, read_json(path) or {}
        if BASE_RUNS in old and {k: v for k, v in old.items() if k != BASE_RUNS} == new:
            new[BASE_RUNS] = old[BASE_RUNS]
        io.write_json(path, new)


def finished(plans: Iterable[Plan], made: Iterable[str]) -> None:
    """A successful run's end: each experiment it made up to date records its BASE_RUNS."""
    made = {os.path.normpath(p) for p in made}
    runs = None
    for plan in plans:
        own = [p for j in plan.jobs if not j.labels.get("shared") for p in j.outputs.values()]
        if all(os.path.normpath(p) in made for p in own):
            runs = base_runs(plan.config) if runs is None else runs
            path = f"{plan.config['results']}/{DEFINITION}"
            written = read_json(path) or plan.definition()  # the run's start wrote it
            io.write_json(path, {**written, BASE_RUNS: runs})


def rerun_command(definition: Mapping[str, Any]) -> str:
    """The ``ablate exp run NAME --set KEY=VALUE ...`` that makes an experiment again."""
    sets = [
        f"--set {k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}"
        for k, v in (leaves(definition["set"]) if definition.get("set") else {}).items()
    ]
    files = [str(f) for f in definition.get("configfiles") or []]
    if files and files != [DEFAULT_CONFIGFILE]:
        sets.append(" ".join(["--configfile", *files]))
    return " ".join(["ablate exp run", str(definition.get("name")), *sets])


def base_changed(definition: Mapping[str, Any], base: str | Path) -> str | None:
    """Why an experiment's deltas cannot be compared with its base as it is now, or None."""
    again = f"re-run it: `{rerun_command(definition)}`"
    runs = definition.get(BASE_RUNS)
    if not isinstance(runs, Mapping):
        return (
            "deltas withheld: no finished run of this experiment records which base records it "
            f"was made with; {again}"
        )
    own = set(definition.get("own") or [])
    moved, stale = [], []  # stale: the base's counterparts of its own jobs, when it was made
    for job, seen in sorted(runs.items()):
        seen = seen if isinstance(seen, Mapping) else {}
        rel, was, keys = seen.get("record"), seen.get("run_id"), seen.get("stale")
        known = isinstance(rel, str) and bool(rel)
        now = file_run_id(Path(base) / rel) if known else None
        if not known or now != was:
            moved.append(f"{job} (run {was or 'none'} -> {now or 'none'})")
        elif job in own and isinstance(keys, list) and keys:
            stale.append(f"{job} ({_named(keys, 1)})")
    if moved:
        return (
            f"deltas withheld: the base's {_named(moved)} changed since this experiment was made "
            f"from it; {again}"
        )
    if not stale:
        return None
    return (
        f"deltas withheld: the base's {_named(stale)} was stale when this experiment was made "
        f"from it (its record is of another config than the base's); run the base (snakemake), "
        f"then {again}"
    )


def _named(items: list[str], shown: int = 3) -> str:
    """The first ``shown`` of ``items``, then how many more."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def jobs_line(definition: Mapping[str, Any], tree: str | Path) -> str:
    """How many of an experiment's jobs are its base's and what ran in its tree: each job log
    there, restored from the run cache where its closing line (:func:`ablate.core.jobs.said`)
    says so; a log without one is of a job stopped before its end."""
    logs, counts = LOG.split("/")[0], Counter()
    for log in sorted(Path(tree).rglob("*.log")):
        if logs in log.relative_to(tree).parts[:-1]:
            text = said(log)
            counts["restored" if text and text.startswith(RESTORED_LINE) else bool(text)] += 1
    shared = f"{len(definition.get('shared') or [])} jobs are the base's (not run in its tree)"
    ran = counts["restored"] + counts[True] + counts[False]
    if not ran:
        return f"{shared}; none of its own has run yet"
    notes = [f"{counts['restored']} restored from the run cache"] if counts["restored"] else []
    if counts[False]:
        notes.append(f"{counts[False]} with no closing line in its log: stopped before its end?")
    return f"{shared}; {ran} of its own ran" + (f" ({'; '.join(notes)})" if notes else "")


def plans(config: Mapping[str, Any]) -> list[Plan]:
    """Every experiment of a validated base configuration, in order."""
    names = list(config.get("experiments") or {})
    check_names(names)
    out, base = [], None
    for name in names:
        cfg = experiment_config(config, name)
        base = base or _base_jobs(cfg)
        every = [j for s in cfg["studies"] for j in studies.side(s, "layout").jobs(cfg)]
        shared = shared_of(cfg, every, base)
        moved = redirects(every, shared)
        rules = {j.rule for j in every}
        own = [j for j in every if j.name not in shared]
        share(every, shared)
        prefix = rule_prefix(name)
        excluded = sorted(rules - {j.rule for j in own})
        slices = _slice_changes(base, own)
        out.append(Plan(name, cfg, prefix.rstrip("_"), prefix, moved, excluded, every, slices))
    return out
