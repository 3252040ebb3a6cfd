"""The bridge study's grid, resolved at parse time: entries, run ids, jobs and file patterns.

Pure Python (no torch): the Snakefile imports it, and a no-op rerun must stay fast. One list of
jobs (:func:`jobs`) serves the rules, the tables and the execution plan.

- An entry = ``bridge.defaults`` + its overrides, checked by :func:`ablate.bridge.params.resolve`
  (unknown key, bad value, a K / bottleneck / heads the translator cannot build: an error naming
  ``bridge.grid.<entry>.<key>``).
- ``same_as: <entry>`` declares an entry identical to another (the seed's 2c = 1a): it reuses that
  entry's run, nothing runs for it.
- ``swap: true`` swaps the direction: ``bridge.target`` reads, ``bridge.source`` answers.
- The run id is derived from the entry's identity (resolved params, both models' settings, the
  data), so a run id never names two configurations. Resolved: numbers by their schema type,
  inert parameters at their defaults (:func:`ablate.bridge.params.canonical`), ``model_dtype:
  auto`` as the dtype it resolves to (:func:`resolved_dtype`), a hub model's or dataset's
  branch or tag as the commit it names (:func:`pin_revisions`). Two entries with the same
  identity and no ``same_as`` declaration stop the workflow, naming both (the seed's ablB /
  ablC fault).
- ``bridge.cache_frozen_states``: the frozen source's states are a job of their own, one per
  :func:`states_key` (source model and revision, dataset, layer, max source length, dtype), which
  every run sharing that key reads (:mod:`ablate.bridge.states`); so are the KL teacher's rows
  (:func:`teacher_key`: target model, dataset, max prompt length, KL positions, dtype).
- A training run on ``bridge.resources.train.gpu`` > 1 GPUs is data-parallel with ``batch_size``
  items per GPU: the process count is part of its identity (it sets the global batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ablate.bridge import hub
from ablate.bridge.world import DATASET_KIND  # dataset name -> file stem and scorer kind
from ablate.core import hub_revisions
from ablate.core.config import ConfigError, sorted_tree
from ablate.core.jobs import Job
from ablate.core.provenance import config_hash

#: The two model roles (config keys bridge.source / bridge.target).
ROLES = ("source", "target")
#: The resources group (``bridge.resources``) each rule's jobs request; rules not named run local.
RESOURCE_GROUP = {
    "bridge_model": "prepare_model",
    "bridge_source_states": "frozen_states",
    "bridge_teacher_states": "frozen_states",
    "bridge_train": "train",
    "bridge_infer": "infer",
}
#: Which hidden states the caches hold (the final normed layer: the translator reads the
#: source's, as in the seed; the KL teacher's logits are the target's LM head on its own).
SOURCE_LAYER = "last_hidden_state"
#: The frozen-state caches and the splits each holds: the source's (the whole train split, the
#: evaluated test items) and the KL teacher's (train only: the KL term is a training loss).
FROZEN_SPLITS = {"source": ("train", "test"), "teacher": ("train",)}

#: Every file of the bridge study, relative to the results folder (rules use out(PATTERNS[...])).
PATTERNS = {
    "world_dir": "bridge/data",
    "dataset": "bridge/data/{kind}_{split}.jsonl",
    "corpus": "bridge/data/corpus.jsonl",
    "data_provenance": "bridge/data/provenance.json",
    "model_dir": "bridge/models/{role}",
    "model_final": "bridge/models/{role}/final",
    "model_summary": "bridge/models/{role}/summary.json",
    "card": "bridge/models/{role}/card.json",
    # a cache = its split folders (FROZEN_SPLITS[what]) and, beside them, its record
    "states_split": "bridge/{what}_states/{states_id}/{split}",
    "states_summary": "bridge/{what}_states/{states_id}/summary.json",
    "run_dir": "bridge/runs/{run_id}",
    "translator": "bridge/runs/{run_id}/translator",
    "run_summary": "bridge/runs/{run_id}/summary.json",
    "run_samples": "bridge/runs/{run_id}/samples.parquet",
    "infer_samples": "bridge/infer/{run_id}/samples.parquet",
    "infer_summary": "bridge/infer/{run_id}/summary.csv",
    # written by ablate.bridge.infer.benchmark beside the aggregate table
    "infer_provenance": "bridge/infer/{run_id}/summary.csv.provenance.json",
    "summary": "bridge/summary.csv",
    "curves": "bridge/curves.csv",
    "claims": "bridge/claims.csv",
    "claims_md": "bridge/claims.md",
    "claims_html": "bridge/claims.html",  # the report's view of the table
    "plot_curves": "bridge/plots/accuracy_over_steps.png",
    "plot_k": "bridge/plots/accuracy_vs_k.png",
    "plot_baselines": "bridge/plots/baselines.png",
    "log": "logs/bridge/{rule}/{name}.log",
    "benchmark": "benchmarks/bridge/{rule}/{name}.tsv",
}


@dataclass(frozen=True)
class Entry:
    """One named grid entry, resolved."""

    name: str
    run_id: str
    params: dict[str, Any]  # complete (schema defaults filled), what train_entry receives
    identity: dict[str, Any]  # what the run id hashes; the provenance config slice
    source_role: str  # which config model reads (bridge.source, or bridge.target when swapped)
    target_role: str
    same_as: str | None = None  # the entry whose run this one reuses
    states_id: str | None = None  # the source-state cache it reads (None: the live source)
    teacher_id: str | None = None  # the KL teacher's cache it reads (None: live, or no KL)
    base: str | None = None  # the declared entry of a seed (``1a`` of ``1a-s0``); None: no seeds
    seed: int | None = None  # its seed (bridge.grid.<base>.seeds)

    @property
    def dataset(self) -> str:
        return self.params["dataset"]

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


def model_identity(m: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """What makes a model what it is: the embedded recipe (and its corpus) or the hub id+revision."""
    if m["source"] == "embedded":
        keep = ("source", "family", "arch", "pretrain")
        return sorted_tree({**{k: m.get(k) for k in keep}, "corpus": data_identity(data, None)})
    return sorted_tree({"source": m["source"], "path": m.get("path"), "revision": revision(m)})


def revision(m: dict[str, Any]) -> str:
    """A hub model's (or dataset's) revision in one spelling: a commit sha in lower case,
    ``null`` as ``main`` (the branch the hub loads for it). :func:`pin_revisions` makes a branch
    or tag its commit; one that stays a name could not be resolved (a warning said so)."""
    rev = m.get("revision") or "main"
    return rev.lower() if hub_revisions.SHA.fullmatch(rev.lower()) else rev


def is_hub_model(m: dict[str, Any]) -> bool:
    """A pretrained model named by a hub id (not a local directory: its files are its revision)."""
    path = str(m.get("path") or "")
    return (
        m["source"] == "pretrained"
        and not Path(path).expanduser().exists()
        and not path.startswith(("/", ".", "~"))
        and path.count("/") <= 1
    )


def pin_revisions(bridge: dict[str, Any], results: str | None) -> dict[str, Any]:
    """The bridge section with each hub model's and hub dataset's branch or tag replaced by the
    commit it names (:func:`ablate.core.hub_revisions.resolve`: the lock file in ``results``, the
    Hugging Face cache, the hub), so a run id names weights and data, not a branch that moves."""
    out = dict(bridge)
    for role in ROLES:
        m = bridge[role]
        if is_hub_model(m):
            out[role] = {**m, "revision": hub_revisions.resolve(m["path"], revision(m), results)}
    data = dict(bridge["data"])
    for name in DATASET_KIND if data["source"] == "hub" else ():
        spec = data.get(name)
        if spec is not None and not Path(spec["path"]).expanduser().is_dir():
            sha = hub_revisions.resolve(spec["path"], revision(spec), results, "dataset")
            data[name] = {**spec, "revision": sha}
    return {**out, "data": data}


def resolved_dtype(bridge: dict[str, Any], p: dict[str, Any]) -> str:
    """``model_dtype: auto`` as the dtype the jobs load the frozen models in: bfloat16 when the
    training runs on GPUs (``bridge.resources.train.gpu`` > 0), else float32."""
    if p["model_dtype"] != "auto":
        return p["model_dtype"]
    return "bfloat16" if bridge["resources"]["train"]["gpu"] > 0 else "float32"


def data_identity(data: dict[str, Any], dataset: str | None) -> dict[str, Any]:
    """The data an entry trains and evaluates on (embedded: the whole world; hub: its dataset)."""
    if data["source"] == "embedded":
        return sorted_tree({k: data[k] for k in ("source", "seed", "embedded")})
    if dataset is None:  # a pretrained model's identity does not depend on the study's data
        return {"source": "hub"}
    return sorted_tree({"source": "hub", dataset: data[dataset]})


def run_id_of(identity: dict[str, Any]) -> str:
    """A readable prefix and the hash of the identity: distinct configurations, distinct ids."""
    p = identity["params"]
    return f"{p['dataset']}-k{p['K']}-{config_hash(identity)[:12]}"


def processes(bridge: dict[str, Any]) -> int:
    """Training processes per run: one per GPU of bridge.resources.train.gpu (one on CPU)."""
    return max(1, bridge["resources"]["train"]["gpu"])


def _frozen_key(bridge, what: str, model_key: str, role: str, p, *lengths: str) -> dict[str, Any]:
    """What a frozen model's cached outputs depend on: the model (under ``model_key``), the
    data, the layer, the ``lengths`` params and the dtype; never the translator or its training."""
    data = bridge["data"]
    return sorted_tree(
        {
            "what": what,
            model_key: model_identity(bridge[role], data),
            "data": data_identity(data, p["dataset"]),
            "dataset": p["dataset"],
            "layer": SOURCE_LAYER,
            **{k: p[k] for k in (*lengths, "model_dtype")},
        }
    )


def states_key(bridge: dict[str, Any], source_role: str, p: dict[str, Any]) -> dict[str, Any]:
    """What a source-state cache depends on."""
    return _frozen_key(bridge, "source", "source", source_role, p, "max_source_len")


def teacher_key(bridge: dict[str, Any], target_role: str, p: dict[str, Any]) -> dict[str, Any]:
    """What the KL teacher's rows depend on (the target reading the text prompt + answer)."""
    return _frozen_key(
        bridge, "teacher", "target", target_role, p, "max_prompt_len", "kl_positions"
    )


def _states(bridge: dict[str, Any], runs: dict[str, Entry]) -> dict[str, dict[str, Any]]:
    """One cache per key (a run with kl_weight 0 needs no teacher): its model's role, its runs,
    the test items the largest eval_size needs, the smallest forward batch of its runs."""
    out: dict[str, dict[str, Any]] = {}
    for e in runs.values():
        keys = [("source", e.source_role, states_key(bridge, e.source_role, e.params))]
        if e.params["kl_weight"] > 0:
            keys.append(("teacher", e.target_role, teacher_key(bridge, e.target_role, e.params)))
        for what, role, key in keys:
            sid = f"{e.dataset}-{config_hash(key)[:12]}"
            s = out.setdefault(
                sid, dict(what=what, key=key, role=role, runs=[], test_items=0, batch=1 << 30)
            )
            s["runs"].append(e.run_id)
            s["test_items"] = max(s["test_items"], e.params["eval_size"] if what == "source" else 0)
            s["batch"] = min(s["batch"], e.params["eval_batch_size"])  # a forward pass's items
    return out


def states_params(states: dict[str, Any]) -> dict[str, Any]:
    """The params the cache job computes with: its key's, and the smallest forward batch."""
    keep = ("max_source_len", "max_prompt_len", "kl_positions", "model_dtype")
    return {
        **{k: v for k, v in states["key"].items() if k in keep},
        "eval_batch_size": states["batch"],
    }


def states_outputs(study: Study, states_id: str) -> list[str]:
    """A cache job's outputs: its split folders, then its record."""
    what = study.states[states_id]["what"]
    fill = dict(what=what, states_id=states_id)
    return [PATTERNS["states_split"].format(split=s, **fill) for s in FROZEN_SPLITS[what]] + [
        PATTERNS["states_summary"].format(**fill)
    ]


def check_models(bridge: dict[str, Any]) -> None:
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


def _resolve_params(bridge: dict[str, Any]):
    # imported here: ablate.bridge.params reads the schema (yaml, jsonschema), not torch
    from ablate.bridge import params as bridge_params

    def resolve(p: dict[str, Any], where: str) -> dict[str, Any]:
        try:
            return bridge_params.resolve(p, where)
        except bridge_params.BridgeConfigError as exc:
            raise _err(str(exc)) from None

    resolve(bridge.get("defaults") or {}, "bridge.defaults")
    return resolve


def seed_name(name: str, seed: int) -> str:
    """The entry (and run) that trains grid entry ``name`` with seed ``seed``."""
    return f"{name}-s{seed}"


def expand_seeds(grid: dict[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[str, int]]]:
    """The grid with each entry that lists ``seeds`` replaced by one entry per seed
    (:func:`seed_name`, param ``seed`` = that seed; an entry ``same_as`` it gets one per seed
    too, each reusing the same seed), and each such entry's (declared entry, seed)."""
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
    """run id -> its entry; two entries of one resolved configuration are refused (the seed's
    ablB/ablC fault) unless one declares ``same_as``."""
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
    """The bridge section -> a Study; raises ConfigError naming the key for any bad entry.
    ``results`` (the configuration's results folder) holds the hub revisions' lock file
    (:func:`pin_revisions`; None: none is read or written)."""
    check_models(bridge)
    hub.check_data(bridge["data"])  # a misspelled id fails before the hub is asked about it
    requested = {r: bridge[r].get("revision") for r in ROLES if is_hub_model(bridge[r])}
    bridge = pin_revisions(bridge, results)
    resolve_params = _resolve_params(bridge)
    defaults = dict(bridge.get("defaults") or {})
    grid, origin = expand_seeds(bridge["grid"])
    data = bridge["data"]
    entries: dict[str, Entry] = {}
    for name, spec in grid.items():
        spec = dict(spec or {})
        if "same_as" in spec:
            continue
        swap = bool(spec.pop("swap", False))
        p = resolve_params({**defaults, **spec}, f"bridge.grid.{name}")
        p["model_dtype"] = resolved_dtype(bridge, p)
        if data["source"] == "hub" and p["dataset"] not in data:
            raise _err(f"bridge.grid.{name}.dataset: {p['dataset']!r} has no bridge.data entry")
        src, tgt = ROLES[::-1] if swap else ROLES
        identity = dict(
            params=p,
            source=model_identity(bridge[src], data),
            target=model_identity(bridge[tgt], data),
            data=data_identity(data, p["dataset"]),
        )
        if processes(bridge) > 1:  # batch_size per process: the global batch is W x batch_size
            identity["processes"] = processes(bridge)
        identity = sorted_tree(identity)
        entries[name] = Entry(name, run_id_of(identity), p, identity, src, tgt)
    runs = _distinct_runs(entries)
    states = _states(bridge, runs) if bridge["cache_frozen_states"] else {}
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
    """(role, entry) of each benchmarked entry (bridge.infer), one benchmark per run; an entry
    with seeds: its first seed."""
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
    """The benchmark's params: the entry's, evaluated on bridge.infer.n_samples items."""
    return {**entry.params, "eval_size": study.config["infer"]["n_samples"]}


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


def dataset_file(kind: str, split: str) -> str:
    return PATTERNS["dataset"].format(kind=kind, split=split)


def data_files(study: Study) -> list[str]:
    """The data rule's jsonl outputs (embedded: the whole world; hub: the datasets the grid uses)."""
    if study.config["data"]["source"] == "embedded":
        kinds = sorted(set(DATASET_KIND.values()))
        return [dataset_file(k, s) for k in kinds for s in ("train", "test")] + [PATTERNS["corpus"]]
    kinds = sorted({DATASET_KIND[d] for d in datasets_used(study)})
    return [dataset_file(k, s) for k in kinds for s in ("train", "test")]


def model_slice(study: Study, role: str) -> dict[str, Any]:
    """What the model rule of ``role`` records and reruns on (a hub model: its revision as the
    config wrote it too; ``model.revision`` is the commit it was pinned to)."""
    out = dict(
        model=study.config[role],
        identity=model_identity(study.config[role], study.config["data"]),
    )
    if role in study.requested:
        out["requested_revision"] = study.requested[role]
    return sorted_tree(out)


def states_slice(study: Study, states_id: str) -> dict[str, Any]:
    """What a cache job records and reruns on: its key, the test items it holds, its batch."""
    st = study.states[states_id]
    return sorted_tree(dict(key=st["key"], test_items=st["test_items"], batch=st["batch"]))


#: The planner's kind of each planned rule's jobs; the other rules run local (data, registration,
#: tables: seconds on the submit host) and are not planned.
KIND = {
    "bridge_model": "train",
    "bridge_source_states": "eval",
    "bridge_teacher_states": "eval",
    "bridge_train": "train",
    "bridge_infer": "generate",
}
#: the logs folder of rules named otherwise: a registration's log sits beside the embedded
#: model's, the tables' in one folder
LOG_RULE = {
    "bridge_register": "model",
    **{f"bridge_{r}": "tables" for r in ("summary", "claims", "plots")},
}


def _job(cfg: dict[str, Any], rule: str, name: str, outputs: dict[str, str], **kw: Any) -> Job:
    """A core Job of this study: ``outputs`` (PATTERNS-formatted, relative to the results folder)
    and ``record`` (an output name) under the results folder, its log and (a planned rule's)
    benchmark named after the rule and ``file_name`` (the rules' bout("log", ...))."""
    at = f"{cfg['results']}/{{}}".format
    short = LOG_RULE.get(rule, rule.removeprefix("bridge_"))
    file_name = kw.pop("file_name")
    record = kw.pop("record", None)
    group = RESOURCE_GROUP.get(rule)
    return Job(
        study="bridge",
        rule=rule,
        name=name,
        outputs={k: at(o) for k, o in outputs.items()},
        log=at(PATTERNS["log"].format(rule=short, name=file_name)),
        kind=KIND.get(rule),
        benchmark=at(PATTERNS["benchmark"].format(rule=short, name=file_name))
        if rule in KIND
        else None,
        record=at(outputs[record]) if record else None,
        gpus=int(cfg["bridge"]["resources"][group].get("gpu", 0)) if group else 0,
        **kw,
    )


def _serving(study: Study, test) -> list[str]:
    return sorted(n for n, e in study.entries.items() if test(e))


def _setup_jobs(config: dict[str, Any], study: Study) -> list[Job]:
    """The data, and each role's model: pretrained here (embedded) or registered."""
    data = {Path(f).stem: f for f in data_files(study)} | {
        "provenance": PATTERNS["data_provenance"]
    }
    out = [
        _job(
            config,
            "bridge_data",
            "data",
            data,
            record="provenance",
            file_name="data",
            wildcards={},
            config=sorted_tree(study.config["data"]),
            labels={"where": "bridge.data"},
            serves=sorted(study.entries),
        )
    ]
    for role in ROLES:
        embedded = study.config[role]["source"] == "embedded"
        files = {"card": PATTERNS["card"].format(role=role)}
        if embedded:
            files["summary"] = PATTERNS["model_summary"].format(role=role)
            files["model"] = PATTERNS["model_final"].format(role=role)
        rule, short = ("bridge_model", "model") if embedded else ("bridge_register", "register")
        out.append(
            _job(
                config,
                rule,
                f"{short}/{role}",
                files,
                file_name=role,
                wildcards={"role": role},
                record="summary" if embedded else "card",
                config=model_slice(study, role),
                labels={"where": f"bridge.{role}"},
                upstream=["data"] if embedded else [],
                serves=_serving(study, lambda e, r=role: r in (e.source_role, e.target_role)),
            )
        )
    return out


def states_name(study: Study, states_id: str) -> str:
    """A frozen-state cache job's name: what it holds, its dataset and key hash."""
    dataset, _, key = states_id.rpartition("-")
    return f"{study.states[states_id]['what']}_states/{dataset}:{key}"


def _states_jobs(config: dict[str, Any], study: Study) -> list[Job]:
    out = []
    for sid, st in study.states.items():
        files = states_outputs(study, sid)
        outputs = {Path(f).name: f for f in files[:-1]} | {"summary": files[-1]}
        serves = _serving(study, lambda e, s=sid: s in (e.states_id, e.teacher_id))
        out.append(
            _job(
                config,
                f"bridge_{st['what']}_states",
                states_name(study, sid),
                outputs,
                file_name=sid,
                wildcards={"states_id": sid},
                record="summary",
                config=states_slice(study, sid),
                labels={"where": f"bridge.grid.{serves[0]}"},
                serves=serves,
            )
        )
    return out


def train_name(study: Study, run_id: str) -> str:
    """A training job's name: the grid entries it serves (``train/1a+2c``: 2c is same_as 1a)."""
    return "train/" + "+".join(_serving(study, lambda e: e.run_id == run_id))


def _run_jobs(config: dict[str, Any], study: Study, setup: list[str]) -> list[Job]:
    """One training job per distinct run, one inference benchmark per bridge.infer entry."""
    out = []
    for run_id, e in study.runs.items():
        caches = [states_name(study, s) for s in (e.states_id, e.teacher_id) if s]
        keys = {"summary": "run_summary", "samples": "run_samples", "translator": "translator"}
        out.append(
            _job(
                config,
                "bridge_train",
                train_name(study, run_id),
                {k: PATTERNS[p].format(run_id=run_id) for k, p in keys.items()},
                file_name=run_id,
                wildcards={"run_id": run_id},
                record="summary",
                config=e.identity,
                labels={"where": f"bridge.grid.{e.name}"},
                upstream=setup + caches,
                serves=_serving(study, lambda x, r=run_id: x.run_id == r),
            )
        )
    keys = {
        "samples": "infer_samples",
        "summary": "infer_summary",
        "provenance": "infer_provenance",
    }
    for role, e in study.infer:
        out.append(
            _job(
                config,
                "bridge_infer",
                f"infer/{role}:{e.name}",
                {k: PATTERNS[p].format(run_id=e.run_id) for k, p in keys.items()},
                file_name=e.run_id,
                wildcards={"run_id": e.run_id},
                record="provenance",
                config=infer_identity(study, e),
                labels={"where": f"bridge.grid.{e.name}"},
                upstream=[train_name(study, e.run_id)],
                serves=[f"infer:{role}:{e.name}"],
            )
        )
    return out


def _table_jobs(config: dict[str, Any], trains: list[str], infers: list[str]) -> list[Job]:
    """The summary and curves, the claims, the plots (rules/bridge/tables.smk), from the runs."""

    def table(rule: str, name: str, keys: tuple[str, ...], upstream: list[str]) -> Job:
        outputs = {k: PATTERNS[k] for k in keys}
        return _job(
            config,
            rule,
            name,
            outputs,
            file_name=name,
            wildcards={},
            serves=["all"],
            upstream=upstream,
        )

    return [
        table("bridge_summary", "summary", ("summary", "curves"), trains),
        table(
            "bridge_claims",
            "claims",
            ("claims", "claims_md", "claims_html"),
            ["summary", *trains, *infers],
        ),
        table(
            "bridge_plots",
            "plots",
            ("plot_curves", "plot_k", "plot_baselines"),
            ["summary", *infers],
        ),
    ]


def jobs(config: dict[str, Any], study: Study | None = None) -> list[Job]:
    """Every job of the bridge study, in run order (core Jobs: the rules, STATUS and the planner
    read them): per job its rule, wildcards, outputs, the config slice its provenance records
    (``config``), its record, benchmark, the jobs it reads and the grid entries it serves."""
    study = study or resolve(config["bridge"], config["results"])
    setup = _setup_jobs(config, study)
    runs = _run_jobs(config, study, [j.name for j in setup])
    trains = [j.name for j in runs if j.rule == "bridge_train"]
    infers = [j.name for j in runs if j.rule == "bridge_infer"]
    return setup + _states_jobs(config, study) + runs + _table_jobs(config, trains, infers)


def targets(config: dict[str, Any]) -> list[str]:
    """The files a full run of the bridge study ends with: the summary, claims, plots and every
    inference benchmark's table."""
    study = resolve(config["bridge"], config["results"])
    keys = ("summary", "claims", "plot_curves", "plot_k", "plot_baselines")
    infer = [PATTERNS["infer_summary"].format(run_id=e.run_id) for _, e in study.infer]
    return [f"{config['results']}/{p}" for p in [*(PATTERNS[k] for k in keys), *infer]]


def plan_config(config: dict[str, Any]) -> dict[str, Any]:
    """The study's whole section."""
    return config["bridge"]
