"""The bridge study's jobs as the runtime/cost planner sees them (its ``plan`` side, found through ``ablate.studies``).

A size that cannot be worked out leaves ``tokens`` or ``params`` empty with the reason; it never
raises. A job's model size is source + target + translator (docs/planner.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ablate.bridge import cost, families, grid, layout, pins
from ablate.bridge.params import BridgeParams
from ablate.core.planner.inputs import Reference, log
from ablate.core.planner.model_size import count_params, params_of_hub_model
from ablate.core.planner.planned_jobs import PlannedJob, StudyPlan

_OPTIM = "adamw_torch"  # ablate.bridge.training.recipe.optimizer: torch AdamW
_FROZEN_RULES = ("bridge_source_states", "bridge_teacher_states")


def embedded_config(m: dict[str, Any]) -> dict[str, Any]:
    """An embedded model's transformers config as ``models.build_config`` builds it, offline."""
    a = families.family_arch(m["family"], m.get("arch"))
    cfg = {**families.CONFIG_DEFAULTS, **{k: v for k, v in a.items() if k != "tokenizer"}}
    return {**cfg, "model_type": m["family"], "vocab_size": a["tokenizer"]["vocab_size"]}


def _model_shape(m: dict[str, Any], ref: Reference) -> tuple[float | None, int | None, str]:
    """(parameters, hidden size, where from) of a bridge model, offline."""
    if m["source"] == "embedded":
        cfg = embedded_config(m)
        return float(count_params(cfg)), cfg["hidden_size"], f"embedded {m['family']} (arch)"
    params, where = params_of_hub_model(m["path"], m.get("revision"), ref.models, ref.path)
    hidden = None
    if m["path"] in ref.models:
        hidden = ref.models[m["path"]]["text_config"]["hidden_size"]
    elif (Path(m["path"]) / "config.json").is_file():
        cfg = json.loads((Path(m["path"]) / "config.json").read_text())
        hidden = (cfg.get("text_config") or cfg).get("hidden_size")
    return params, hidden, where


def translator_params(p: BridgeParams, d_src: int, d_tgt: int) -> int:
    """The entry's translator's parameters, counted without torch (which costs the planner
    seconds); tests/bridge/test_plan.py holds the count to the meta-device build."""
    w = p.bottleneck
    # per block: 3 LayerNorms, self- and cross-attention (in and out projections), a 4x FFN, gates
    block = 3 * 2 * w + 2 * (4 * w * w + 4 * w) + (w * 4 * w + 4 * w + 4 * w * w + w) + 3
    rope = d_src * d_src if p.rope_projection else 0
    ends = 2 * d_src + (d_src * w + w) + p.K * w + 2 * w + (w * d_tgt + d_tgt)
    return rope + ends + p.depth * block


def _decode_flops(target_params: float, batch: int) -> float:
    """FLOPs per new token of the target's decoding: a decode step is bound by reading the
    weights, so a batch of 16 costs about what a batch of 1 does."""
    return 2 * target_params / batch


def _lengths(p: BridgeParams, data: dict[str, Any], ref: Reference) -> tuple[cost.Lengths, str]:
    if data["source"] == "embedded":
        n = cost.Lengths(p.max_source_len, p.max_prompt_len, p.max_new_tokens)
        return n, "upper bound: max_source_len, max_prompt_len, answer = max_new_tokens"
    spec = ref.bridge_lengths.get(p.dataset)
    if spec is None:
        raise KeyError(f"no bridge_lengths.{p.dataset} in {ref.path}")
    return cost.Lengths.of(spec, p), f"bridge_lengths.{p.dataset}: {spec['source']}"


def study_plan(config: dict[str, Any], ref: Reference, root: Path) -> StudyPlan:
    study = grid.resolve(config["bridge"], config["results"])
    bridge = study.config
    shapes = {role: _model_shape(bridge[role], ref) for role in pins.ROLES}
    names = {r: bridge[r].get("path") or bridge[r].get("family") for r in pins.ROLES}
    hub = all(bridge[r]["source"] != "embedded" for r in pins.ROLES)
    jobs = []
    for j in layout.jobs(config, study):
        rule = j.rule
        if j.kind is None:
            continue  # local jobs (data, registration, tables): seconds on the submit host
        common = dict(
            job=j,
            dtype=_frozen_dtype(j, study),
            # the devices it holds (jobs of fewer GPUs run side by side) and the jobs it reads
            gpus=j.gpus,
            after=j.upstream,
        )
        try:
            if rule == "bridge_model":
                jobs.append(_pretrain_job(j, bridge, shapes, common))
            elif rule in _FROZEN_RULES:
                jobs.append(_frozen_job(j, study, shapes, names, ref, common, hub))
            else:
                jobs.append(_bridge_job(j, study, shapes, names, ref, common, hub))
        except Exception as exc:  # a size that cannot be worked out: the row says why
            log.warning("planner: bridge job %s: %r", j.name, exc)
            jobs.append(
                PlannedJob(
                    model="",
                    policy=None,
                    tokens=None,
                    tokens_source=f"unknown: {exc}",
                    params=None,
                    params_source=f"unknown: {type(exc).__name__}: {exc}",
                    **common,
                )
            )
    total = [shapes[r][0] for r in pins.ROLES]
    return StudyPlan(
        study="bridge",
        model=f"bridge {names['source']} -> {names['target']}",
        params=None if None in total else sum(total),
        params_source="; ".join(f"{r}: {shapes[r][2]}" for r in pins.ROLES),
        jobs=jobs,
        # a run's summary throughput includes its evaluations: not a step rate (docs/planner.md)
        params_of_run=lambda job, data: None,
        tokens_of_run=lambda job, data: None,
    )


def _frozen_dtype(j, study: grid.Study) -> str:
    """Its entry's resolved ``model_dtype``; float32 without one (the pretraining sets its own)."""
    w = j.wildcards
    if "run_id" in w:
        return study.runs[w["run_id"]].settings.model_dtype
    if "states_id" in w:
        return study.runs[study.states[w["states_id"]]["runs"][0]].settings.model_dtype
    return "float32"


def _pretrain_job(j, bridge, shapes, common) -> PlannedJob:
    """An embedded model's pretraining, from its pretraining params."""
    from ablate.core.planner.model_size import model_shape as shape_of
    from ablate.core.training.params import resolve_params

    role = j.wildcards["role"]
    p = resolve_params({**families.PRETRAIN, **(bridge[role].get("pretrain") or {})}, "pretrain")
    tokens = p.max_steps * p.batch_size * p.grad_accum * p.max_seq_len
    return PlannedJob(
        model=f"{role} ({bridge[role]['family']})",
        policy="causal",
        tokens=float(tokens),
        tokens_source="max_steps x batch_size x grad_accum x max_seq_len (packed blocks)",
        params=shapes[role][0],
        params_source=shapes[role][2],
        optim=p.optim,
        # "auto" (bf16 only on a bf16-capable GPU): the memory check counts the larger
        master_weights=p.master_weights is not False,
        shape=shape_of(embedded_config(bridge[role])),
        forward_tokens=float(p.batch_size * p.max_seq_len),
        gradient_checkpointing=bool(p.gradient_checkpointing),
        **{**common, "dtype": p.model_dtype},
    )


def _frozen_job(j, study, shapes, names, ref, common, hub) -> PlannedJob:
    """A frozen-state cache: one model's forward pass over the items, sharded over its GPUs."""
    sid = j.wildcards["states_id"]
    st = study.states[sid]
    what, role = st["what"], st["role"]
    e = study.runs[st["runs"][0]]
    data = study.config["data"]
    n, n_where = _lengths(e.settings, data, ref)
    if data["source"] == "embedded":  # the generated world's train split (its config's size)
        world = data.get("embedded") or {}
        key = "n_qa_train" if e.dataset == "hotpotqa" else "n_train"
        n_train = int(world.get(key, 400))
    else:
        spec = ref.bridge_lengths.get(e.dataset) or {}
        if "train" not in spec:
            raise KeyError(f"no bridge_lengths.{e.dataset}.train (training items) in {ref.path}")
        n_train = int(spec["train"])
    items = n_train + st["test_items"]
    return PlannedJob(
        model=f"{names[role]} ({what} states of {e.dataset})",
        policy=None,
        tokens=float(items * cost.frozen_tokens(what, n)),
        tokens_source=f"{n_train} train + {st['test_items']} test items x "
        f"{cost.frozen_tokens(what, n)} tokens ({n_where})",
        params=shapes[role][0],
        params_source=shapes[role][2],
        loads_hub_model=hub,
        hub_models=(names[role],) if hub else (),
        # one data-parallel process per GPU, each extracting its batches
        scaling_key="data_parallel",
        **common,
    )


def _bridge_job(j, study, shapes, names, ref, common, hub) -> PlannedJob:
    run_id = j.wildcards["run_id"]
    if j.rule == "bridge_infer":
        e = next(x for _, x in study.infer if x.run_id == run_id)
    else:
        e = study.runs[run_id]
    p = e.settings
    (ps, hs, ws), (pt, ht, wt) = shapes[e.source_role], shapes[e.target_role]
    if None in (ps, pt, hs, ht):
        raise ValueError(f"model size unknown offline: source {ws}; target {wt}")
    ptr = translator_params(p, hs, ht)
    total = ps + pt + ptr
    n, n_where = _lengths(p, study.config["data"], ref)
    model = f"{names[e.source_role]} -> {names[e.target_role]} ({e.run_id})"
    size = f"source {ps / 1e9:.3g} B ({ws}) + target {pt / 1e9:.3g} B ({wt}) + translator "
    size += f"{ptr / 1e6:.1f} M"
    pair = (names[e.source_role], names[e.target_role]) if hub else ()  # the hub models it loads
    if j.rule == "bridge_infer":
        return _infer_job(study, e, pt, float(total), size, model, common, pair)
    procs = grid.processes(study.config)
    rows = p.batch_size  # per process, one process per GPU
    tokens = p.steps * rows * procs * cost.example_tokens(p.K, n)
    flops = cost.example_flops(
        p, n, ps, pt, ptr, cached_source=True, cached_teacher=e.teacher_id is not None
    )
    flops /= cost.example_tokens(p.K, n)
    evals = cost.eval_generated_tokens(p)
    gpus = f"{procs} GPU{'s' if procs > 1 else ''}"
    return PlannedJob(
        model=model,
        # the measured step's rate and peak memory at its rows per GPU (config/gpu_measurements.yaml)
        policy=f"rows{rows}",
        tokens=float(tokens),
        tokens_source=f"{p.steps} steps x global batch {rows * procs} ({rows} rows per GPU x "
        f"{gpus}, bridge.resources.train.gpu) x {cost.example_tokens(p.K, n)} tokens/example "
        f"(source {n.source} + BOS/K/cue {cost.latent_len(p.K, n)} + answer {n.answer}; "
        f"{n_where}); early stopping can end it sooner",
        params=float(total),
        params_source=size,
        loads_hub_model=hub,
        hub_models=pair,
        optim=_OPTIM,
        flops_per_token=flops,
        trainable_params=float(ptr),
        memory_measured=True,
        unfit_note=_unfit_note(e, rows),
        resume_every=(p.eval_every, p.steps),  # the loop's checkpoints: at each evaluation
        scaling_key="data_parallel",
        extra=[
            dict(
                kind="generate",
                policy=f"batch{p.eval_batch_size}",
                tokens=float(evals),
                flops_per_token=_decode_flops(pt, p.eval_batch_size),
                what=f"{cost.n_evaluations(p)} bridged evaluations x {p.eval_size} items x "
                f"{p.max_new_tokens} new tokens (upper bound), the items sharded over the "
                "data-parallel processes",
                scaling_key="data_parallel",
            )
        ],
        **common,
    )


def _unfit_note(e: grid.Entry, rows: int) -> str:
    """What a training row says when its rows per GPU do not fit: the same run at fewer rows."""
    g = e.identity["params"]["batch_size"]  # its InfoNCE group (ablate.bridge.grid.placement)
    if g < rows:
        how = (
            f"the same run (its run id) at {g} rows per GPU: bridge.resources.train.gpu "
            f"{e.identity.get('processes', 1)}, batch_size {g}, infonce_group null"
        )
    else:
        how = f"{rows} rows per GPU are its InfoNCE group: no placement of this run has fewer"
    return f"{how}; gradient accumulation (fewer rows per step on one GPU) is not built"


def _infer_job(study, e, pt, total, size, model, common, hub_models) -> PlannedJob:
    """The inference benchmark: the batched quality pass, then the timed pass at batch 1."""
    p, n_samples = e.settings, study.config["infer"]["n_samples"]
    timed = study.config["infer"]["timed_samples"]
    extra = []
    if timed:
        extra.append(
            dict(
                kind="generate",
                policy="batch1",
                tokens=float(cost.infer_timed_tokens(p, timed)),
                flops_per_token=_decode_flops(pt, 1),
                what=f"latency pass: {timed} timed + 1 warm-up items x {cost.INFER_GENERATIONS} "
                f"generations x max_new_tokens {p.max_new_tokens} at batch 1 (upper bound)",
            )
        )
    return PlannedJob(
        model=model,
        policy=f"batch{p.eval_batch_size}",
        tokens=float(cost.infer_generated_tokens(p, n_samples)),
        tokens_source=f"upper bound: {n_samples} samples x {cost.INFER_GENERATIONS} "
        f"generations x max_new_tokens {p.max_new_tokens} (batches of {p.eval_batch_size})",
        params=total,
        params_source=size,
        loads_hub_model=bool(hub_models),
        hub_models=hub_models,
        flops_per_token=_decode_flops(pt, p.eval_batch_size),
        extra=extra,
        **common,
    )
