"""The bridge study's grid, resolved at parse time (no torch): entries and run ids.

The run id hashes the entry's resolved identity (params, both models, the data, hub revisions
pinned), so a run id never names two configurations; two entries of one identity without
``same_as`` stop the workflow (the seed's ablB / ablC fault). The identity is independent of the
run's placement (:func:`placement`; docs/bridge.md, "Many GPUs").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any

from ablate.bridge import caches, hub, switches
from ablate.bridge import params as bridge_params  # the schema (yaml), not torch
from ablate.bridge.params import BridgeParams
from ablate.bridge.pins import ROLES, data_identity, is_hub_model, model_identity, pin_revisions
from ablate.bridge.world import DATASET_KIND  # dataset name -> file stem and scorer kind
from ablate.core.config import ConfigError, sorted_tree
from ablate.core.outputs.provenance import config_hash
from ablate.core.reports.seeds import seed_name


@dataclass(frozen=True)
class Entry:
    name: str
    run_id: str
    # as recorded (bridge.params.recorded: late keys at their default left out): what the rules
    # pass the jobs; read it through `settings`
    params: dict[str, Any]
    identity: dict[str, Any]  # what the run id hashes; the provenance config slice
    source_role: str  # which config model reads (bridge.source, or bridge.target when swapped)
    target_role: str
    same_as: str | None = None  # the entry whose run this one reuses
    states_id: str | None = None  # the source-state cache it reads (None: the live source)
    teacher_id: str | None = None  # the KL teacher's cache it reads (None: live, or no KL)
    base: str | None = None  # the declared entry of a seed (``1a`` of ``1a-s0``); None: no seeds
    seed: int | None = None  # its seed (bridge.grid.<base>.seeds)

    @functools.cached_property
    def settings(self) -> BridgeParams:
        """:attr:`params` typed and complete; derived, never stored, so the two cannot disagree."""
        return bridge_params.check(self.params, f"bridge.grid.{self.name}")

    @property
    def dataset(self) -> str:
        return self.settings.dataset

    @property
    def kind(self) -> str:
        return DATASET_KIND[self.dataset]


@dataclass
class Study:
    entries: dict[str, Entry]
    runs: dict[str, Entry]  # run id -> the entry that owns the run (never a same_as entry)
    infer: list[tuple[str, Entry]] = field(default_factory=list)  # (role, entry) benchmarked
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # cache id -> its job facts
    config: dict[str, Any] = field(default_factory=dict)  # the bridge section, revisions pinned
    # a hub model's role -> its revision as the config wrote it (config has the commit)
    requested: dict[str, str | None] = field(default_factory=dict)


def _err(msg: str) -> ConfigError:
    return ConfigError(f"invalid config at {msg}")


def resolved_dtype(bridge: dict[str, Any], p: BridgeParams) -> str:
    """``model_dtype: auto`` as bfloat16 where the training runs on GPUs, else float32."""
    if p.model_dtype != "auto":
        return p.model_dtype
    return "bfloat16" if bridge["resources"]["train"]["gpu"] > 0 else "float32"


def processes(bridge: dict[str, Any]) -> int:
    """Training processes per run: one per GPU of bridge.resources.train.gpu (one on CPU)."""
    return max(1, bridge["resources"]["train"]["gpu"])


def placement(p: BridgeParams, procs: int, study_group: int | None = None) -> tuple[int, int]:
    """(g, G / g): the global batch G = batch_size x procs in InfoNCE groups of g rows, as the
    identity holds it; where InfoNCE is inert g is ``study_group`` if it divides batch_size."""
    if p.infonce_weight > 0:
        g = switches.infonce_group(p)
    elif study_group and p.batch_size % study_group == 0:
        g = study_group
    else:
        g = p.batch_size
    return g, p.batch_size * procs // g


def _check_models(bridge: dict[str, Any]) -> None:
    """The study bridges two tokenizers: a pair that shares one is an error before any job."""
    s, t = bridge["source"], bridge["target"]
    if s["source"] != t["source"]:
        return
    if s["source"] == "pretrained" and s["path"] == t["path"]:
        raise _err(
            f"bridge.target.path: {t['path']!r} is also bridge.source.path; the study needs two "
            "models with different tokenizers"
        )
    if s["source"] == "embedded":
        tok_s = (s.get("arch") or {}).get("tokenizer") or {}
        tok_t = (t.get("arch") or {}).get("tokenizer") or {}
        if s["family"] == t["family"] and tok_s == tok_t:
            raise _err(
                f"bridge.target.family: {t['family']!r} is also bridge.source.family with the "
                "same tokenizer; the study needs two models with different tokenizers"
            )
        # a family's tokenizer algorithm can be overridden: the two must still differ
        if tok_s.get("type") and tok_s.get("type") == tok_t.get("type"):
            raise _err(
                f"bridge.target.arch.tokenizer.type: {tok_t['type']!r} is also "
                "bridge.source.arch.tokenizer.type; the study needs two different tokenizers"
            )


def _resolve_params(p: dict[str, Any], where: str) -> BridgeParams:
    """``p`` over the defaults, resolved and typed; an error is the config's, naming the key."""
    try:
        return bridge_params.check(bridge_params.resolve(p, where), where)
    except bridge_params.BridgeConfigError as exc:
        raise _err(str(exc)) from None


def expand_seeds(grid: dict[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[str, int]]]:
    """The grid with one entry per seed of each entry that lists ``seeds`` (and of an entry
    ``same_as`` it), and each such entry's (declared entry, seed)."""
    out: dict[str, Any] = {}
    origin: dict[str, tuple[str, int]] = {}
    for name, spec in grid.items():
        spec = dict(spec or {})
        seeds = spec.pop("seeds", None)
        if seeds is not None and ("seed" in spec or "same_as" in spec):
            other = "seed" if "seed" in spec else "same_as"
            raise _err(f"bridge.grid.{name}: seeds and {other} exclude each other")
        target = (grid.get(spec.get("same_as")) or {}).get("seeds")
        if target is not None:  # same_as a seeded entry: the same seeds, each reusing its own
            seeds, spec = target, {}
        if seeds is None:
            out[name] = grid[name]
            continue
        for s in seeds:
            out[seed_name(name, s)] = (
                {"same_as": seed_name(grid[name]["same_as"], s)} if target else {**spec, "seed": s}
            )
            origin[seed_name(name, s)] = (name, s)
    clash = sorted(set(grid) & set(origin))
    if clash:
        raise _err(f"bridge.grid.{clash[0]}: the name is also a seed of {origin[clash[0]][0]!r}")
    return out, origin


def _distinct_runs(entries: dict[str, Entry]) -> dict[str, Entry]:
    """run id -> its entry; two entries of one configuration are refused."""
    runs: dict[str, Entry] = {}
    for name, e in entries.items():
        other = runs.get(e.run_id)
        if other is not None:
            raise _err(
                f"bridge.grid: entries {other.name!r} and {name!r} resolve to the same "
                f"configuration (run {e.run_id}); declare `same_as: {other.name}` in "
                f"{name!r} if it is meant to reuse that run, or make them differ"
            )
        runs[e.run_id] = e
    return runs


def _add_same_as(grid: dict[str, Any], entries: dict[str, Entry]) -> None:
    """Each ``same_as`` entry of ``grid`` into ``entries``: the run of the entry it names."""
    for name, spec in grid.items():
        if "same_as" not in (spec or {}):
            continue
        extra = sorted(set(spec) - {"same_as"})
        if extra:
            raise _err(
                f"bridge.grid.{name}: an entry with same_as takes no other key (has "
                f"{', '.join(extra)}); it reuses {spec['same_as']!r} as it is"
            )
        base = entries.get(spec["same_as"])
        if base is None:
            raise _err(
                f"bridge.grid.{name}.same_as: {spec['same_as']!r} is not an entry without "
                f"same_as (bridge.grid has: {', '.join(sorted(entries))})"
            )
        entries[name] = replace(base, name=name, same_as=base.name, base=None, seed=None)


def resolve(bridge: dict[str, Any], results: str | None = None) -> Study:
    """The bridge section -> a Study; ``results`` holds the hub revisions' lock file."""
    _check_models(bridge)
    hub.check_data(bridge["data"])  # a misspelled id fails before the hub is asked about it
    requested = {r: bridge[r].get("revision") for r in ROLES if is_hub_model(bridge[r])}
    bridge = pin_revisions(bridge, results)
    defaults = dict(bridge.get("defaults") or {})
    _resolve_params(defaults, "bridge.defaults")
    study_group = defaults.get("infonce_group")  # an inert entry's g (placement)
    study_group = int(study_group) if study_group else None
    grid, origin = expand_seeds(bridge["grid"])
    data = bridge["data"]
    entries: dict[str, Entry] = {}
    for name, spec in grid.items():
        spec = dict(spec or {})
        if "same_as" in spec:
            continue
        swap = bool(spec.pop("swap", False))
        s = _resolve_params({**defaults, **spec}, f"bridge.grid.{name}")
        s = replace(s, model_dtype=resolved_dtype(bridge, s))
        g, groups = placement(s, processes(bridge), study_group)
        if data["source"] == "hub" and s.dataset not in data:
            raise _err(f"bridge.grid.{name}.dataset: {s.dataset!r} has no bridge.data entry")
        # a key added later, at its default, is left out: the run id stands
        p = bridge_params.recorded(s.as_dict())
        src, tgt = ROLES[::-1] if swap else ROLES
        identity = dict(
            # batch_size: its InfoNCE group g; infonce_group left out
            params=bridge_params.recorded({**p, "batch_size": g, "infonce_group": None}),
            source=model_identity(bridge[src], data),
            target=model_identity(bridge[tgt], data),
            data=data_identity(data, s.dataset),
        )
        if groups > 1:  # the global batch in groups of g rows: G / g of them
            identity["processes"] = groups
        identity = sorted_tree(identity)
        # a readable prefix and the hash of the identity: distinct configurations, distinct ids
        run_id = f"{s.dataset}-k{s.K}-{config_hash(identity)[:12]}"
        entries[name] = Entry(name, run_id, p, identity, src, tgt)
    runs = _distinct_runs(entries)
    states = caches.of_runs(bridge, runs) if bridge["cache_frozen_states"] else {}
    for sid, st in states.items():
        field_name = "states_id" if st["what"] == "source" else "teacher_id"
        for run_id in st["runs"]:
            e = replace(runs[run_id], **{field_name: sid})
            runs[run_id] = entries[e.name] = e
    _add_same_as(grid, entries)
    entries = {  # the config's order; a seed knows its declared entry
        n: replace(entries[n], base=origin[n][0], seed=origin[n][1]) if n in origin else entries[n]
        for n in grid
    }
    runs = {e.run_id: entries[e.name] for e in runs.values()}
    infer = _infer_entries(bridge, entries, origin)
    return Study(entries, runs, infer, states=states, config=bridge, requested=requested)


def _infer_entries(
    bridge: dict[str, Any], entries: dict[str, Entry], origin: dict[str, tuple[str, int]]
) -> list[tuple[str, Entry]]:
    """(role, entry) of each benchmarked entry, one per run; an entry with seeds: its first seed."""
    firsts = {b: n for n, (b, _) in reversed(origin.items())}
    infer: list[tuple[str, Entry]] = []
    for role in ("entry", "qa_entry"):
        name = bridge["infer"].get(role)
        if name is None:
            continue
        name = firsts.get(name, name)
        if name not in entries:
            raise _err(
                f"bridge.infer.{role}: {name!r} is not a grid entry "
                f"(bridge.grid has: {', '.join(entries)})"
            )
        if all(e.run_id != entries[name].run_id for _, e in infer):  # one benchmark per run
            infer.append((role, entries[name]))
    return infer


def infer_params(study: Study, entry: Entry) -> dict[str, Any]:
    """The benchmark's params: the identity's (not the training's placement), on n_samples items."""
    return {**entry.identity["params"], "eval_size": study.config["infer"]["n_samples"]}


#: The benchmark table's version, part of its identity: a new column reruns older benchmarks
#: (2: ``kv_cache_total_mb``, source + target; the token budget from the full prompt;
#: 3: quality decoded batched, latency timed at batch 1 on ``infer.timed_samples`` items).
INFER_TABLE = 3


def infer_identity(study: Study, entry: Entry) -> dict[str, Any]:
    timed = study.config["infer"]["timed_samples"]
    params = infer_params(study, entry)
    return sorted_tree(
        {**entry.identity, "params": params, "table": INFER_TABLE, "timed_samples": timed}
    )


def datasets_used(study: Study) -> list[str]:
    return sorted({e.dataset for e in study.entries.values()})
