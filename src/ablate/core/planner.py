"""Runtime and cost planner: every stage x every setup, predicted before a run, compared after it.

For each stage of the study (derived from the config, like the pipeline derives its jobs) and each
setup (GPU model x count, ``plan.setups``) the planner predicts

    est_s      = rental_overhead_s + job_overhead_s + compute_s
    compute_s  = tokens / (tok_s_per_gpu * speedup(count))
    speedup(n) = 1 + (n - 1) * plan.scaling[kind]
    est_cost   = est_s / 3600 * price_per_hour (the whole instance)

and shows where every number came from (docs/planner.md):

- ``tokens``: eval = tasks x docs x choices x tokens/request; train = max_steps x batch x
  grad_accum x tokens/pair (or the measured mean tokens/step of an earlier run); the leakage
  probe = 2 forwards x n_pairs x tokens/pair.
- ``tok_s_per_gpu``: measured on that GPU (this pipeline's summaries, metrics, Snakemake
  ``benchmark:`` files, then config/gpu_measurements.yaml), or measured on another GPU and scaled
  by peak BF16 FLOP/s, or, when nothing was measured for the model, the FLOP estimate
  ``mfu * peak / (6 * params)`` (train) or ``/(2 * params)`` (eval, probe).
- prices: live Vast offers through the vastai SDK when ``VAST_API_KEY`` is set, else the offers
  snapshot (its capture date in every row), else a price set on the setup; a setup without any
  gets an empty cost and a ``price_source`` saying why, never a made-up number.

After a run, or part of one, :func:`add_actuals` fills ``actual_s`` (the Snakemake benchmark file
of the stage, or the wall time in its output's provenance block) and ``error_pct`` on the row of
the setup the stage ran on, and ``status`` on every row says whether (and where) its stage ran.
CLI: ``ablate plan --config ... --out results/plan.csv``.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ablate.mask import study

KINDS = ("train", "eval", "probe")
#: Matmul FLOPs per token per parameter: forward 2, forward + backward 6 (Kaplan et al. 2020).
FLOPS_PER_PARAM_TOKEN = {"train": 6, "eval": 2, "probe": 2}
CPU = "cpu"
CONFIG_SCHEMA = "workflow/schemas/config.schema.yaml"
PLAN_SCHEMA = "workflow/schemas/plan.schema.yaml"

#: Column order of plan.csv (the contract with the report, the docs and the tests).
COLUMNS = [
    "setup",
    "gpu",
    "gpus",
    "stage",
    "kind",
    "model",
    "policy",
    "tokens",
    "tokens_source",
    "tok_s_per_gpu",
    "throughput_source",
    "measured_run_id",
    "speedup",
    "compute_s",
    "job_overhead_s",
    "rental_overhead_s",
    "est_job_s",
    "est_s",
    "fits_memory",
    "price_per_hour",
    "price_source",
    "prices_captured_at",
    "est_cost_usd",
    "actual_s",
    "actual_source",
    "error_pct",
    "status",
    "note",
]
#: Filled by add_actuals only: a frozen estimate needs none of them (and any it has are replaced).
ACTUAL_COLUMNS = ["actual_s", "actual_source", "error_pct", "status"]
NOT_RUN = "not run yet"
UNPLANNED = "ran on hardware that is not a setup of this plan: no estimate"
TOTAL = "TOTAL"


class PlanError(ValueError):
    pass


# ------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class Setup:
    gpu: str  # Vast gpu_name (e.g. "H100 SXM") or "cpu"
    count: int = 1
    local: bool = False  # runs where Snakemake runs: no instance to boot, nothing to ship
    price_per_hour: float | None = None  # a price the user set for this setup

    @property
    def label(self) -> str:
        return f"{self.count}x {self.gpu}"


@dataclass
class Stage:
    id: str  # e.g. "eval/base/causal", "finetune/prefix_bidir"
    kind: str  # train | eval | probe
    model: str  # base | <variant>
    policy: str
    tokens: float | None  # None: unknown (tokens_source says why)
    tokens_source: str
    output: str | None = None  # stage output JSON whose provenance has wall time + hardware
    benchmark: str | None = None  # Snakemake benchmark file of the stage
    loads_hub_model: bool = False  # downloads the base weights from the hub
    ships_checkpoint: bool = False  # its input checkpoint is copied to a rented instance
    writes_checkpoint: bool = False  # saves (and ships back) a full checkpoint
    train_shape: dict[str, Any] | None = None  # batch_size, grad_accum, max_seq_len (train)
    dtype: str = "float32"  # dtype the weights are held in (memory check)
    shares_instance: str | None = None  # runs on the instance of this stage (a Snakemake group)
    optim: str | None = None  # optimizer (train): its states count in the memory check


@dataclass
class Measurement:
    kind: str
    policy: str | None
    gpu: str
    params: float
    tokens_per_s: float  # per GPU
    source: str
    origin: str  # "pipeline" (this project's outputs) or "table" (measurements file)
    run_id: str | None = None
    stage: str | None = None  # the stage id it was measured on (pipeline measurements)
    optim: str | None = None  # training recipe: the optimizer it ran with


@dataclass
class Reference:
    """config/gpu_measurements.yaml: GPU specs, model shapes, task sizes, measured throughput."""

    gpus: dict[str, dict[str, Any]]
    models: dict[str, dict[str, Any]]
    tasks: dict[str, dict[str, Any]]
    tokens_per_request: dict[str, Any]
    measurements: list[Measurement]
    path: str

    @classmethod
    def load(cls, path: str | os.PathLike) -> Reference:
        p = Path(path)
        if not p.exists():
            raise PlanError(f"measurements file {p} does not exist (config key plan.measurements)")
        data = yaml.safe_load(p.read_text()) or {}
        for key in ("gpus", "measurements"):
            if key not in data:
                raise PlanError(f"measurements file {p} lacks the section {key!r}")
        for name, spec in data["gpus"].items():
            for key in ("tflops_bf16", "memory_gb", "torch_names", "source"):
                if key not in spec:
                    raise PlanError(f"{p}: gpus.{name} lacks {key!r}")
        ms = []
        for i, m in enumerate(data["measurements"]):
            missing = [k for k in ("kind", "gpu", "params", "tokens_per_s", "source") if k not in m]
            if missing:
                raise PlanError(f"{p}: measurements[{i}] lacks {', '.join(missing)}")
            if m["kind"] not in KINDS:
                raise PlanError(f"{p}: measurements[{i}].kind {m['kind']!r} is not one of {KINDS}")
            ms.append(
                Measurement(
                    kind=m["kind"],
                    policy=m.get("policy"),
                    gpu=m["gpu"],
                    params=float(m["params"]),
                    tokens_per_s=float(m["tokens_per_s"]),
                    source=f"{m['source']} [{p.name}]",
                    origin="table",
                    optim=m.get("optim"),
                )
            )
        return cls(
            gpus=data["gpus"],
            models=data.get("models") or {},
            tasks=data.get("tasks") or {},
            tokens_per_request=data.get("tokens_per_request") or {},
            measurements=ms,
            path=str(p),
        )

    def canonical_gpu(self, device_name: str) -> str | None:
        """torch device name ("NVIDIA H100 80GB HBM3") -> Vast gpu_name ("H100 SXM")."""
        for name, spec in self.gpus.items():  # file order: specific patterns first
            if any(re.search(pat, device_name, re.I) for pat in spec["torch_names"]):
                return name
        return None

    def peak_flops(self, gpu: str, plan: dict[str, Any]) -> tuple[float | None, str]:
        if gpu == CPU:
            gf = plan["cpu_gflops"]
            return gf * 1e9, f"cpu peak {gf:g} GFLOP/s (assumption, plan.cpu_gflops)"
        spec = self.gpus.get(gpu)
        if spec is None:
            return None, f"no spec for GPU {gpu!r} in {self.path}"
        return spec["tflops_bf16"] * 1e12, spec["source"]


def load_config(
    path: str | os.PathLike,
    schema: str | os.PathLike | None = CONFIG_SCHEMA,
    plan_schema: str | os.PathLike = PLAN_SCHEMA,
) -> dict:
    """Read a pipeline config; fill defaults from the pipeline's schema and the plan fragment.

    The ``plan:`` block is validated on its own, so the pipeline schema need not know it.
    """
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    p = Path(path)
    if not p.exists():
        raise PlanError(f"config file {p} does not exist")
    config = yaml.safe_load(p.read_text()) or {}
    plan = config.pop("plan", None) or {}
    if not Path(plan_schema).exists():
        raise PlanError(f"plan schema {plan_schema} does not exist (run from the repository root)")
    for data, sch, prefix in ((config, schema, ""), (plan, plan_schema, "plan.")):
        if not sch or not Path(sch).exists():
            continue
        try:
            validate(data, str(sch), set_default=True)
        except WorkflowError as exc:
            cause = exc.__context__
            where = prefix + ".".join(str(x) for x in getattr(cause, "absolute_path", []))
            raise PlanError(
                f"invalid config {p} at {where or '<top level>'}: {getattr(cause, 'message', exc)}"
            ) from None
    config["plan"] = plan
    return config


def local_hardware(ref: Reference) -> tuple[str, int]:
    """(gpu_name, count) of this machine: its visible CUDA GPUs, else ("cpu", 1)."""
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return ref.canonical_gpu(name) or name, torch.cuda.device_count()
    return CPU, 1


def parse_setups(plan: dict[str, Any], ref: Reference) -> list[Setup]:
    setups: list[Setup] = []
    for i, s in enumerate(plan.get("setups") or []):
        if "gpu" not in s:
            raise PlanError(
                f"plan.setups[{i}] lacks 'gpu' (a Vast gpu_name such as 'H100 SXM', 'cpu' or 'local')"
            )
        gpu, count = str(s["gpu"]), int(s.get("count", 1))
        if count < 1:
            raise PlanError(f"plan.setups[{i}].count must be >= 1, got {count}")
        if gpu == "local":
            gpu, count = local_hardware(ref)
            local = True
        else:
            local = bool(s.get("local", gpu == CPU))
        setup = Setup(gpu, count, local, s.get("price_per_hour"))
        if all((x.gpu, x.count) != (gpu, count) for x in setups):
            setups.append(setup)
    if not setups:
        raise PlanError("plan.setups is empty: list at least one {gpu, count}")
    return setups


# ------------------------------------------------------------------- model size


_PARAMS_CACHE: dict[str, int] = {}


def count_params(text_config: Any) -> int:
    """Parameters of the causal LM of a config (dict with model_type, or PretrainedConfig).

    Built on the meta device (no memory; tied weights counted once) and cached by the config's
    JSON: the 3B shape takes ~2 s to build.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if isinstance(text_config, dict):
        kw = dict(text_config)
        text_config = AutoConfig.for_model(kw.pop("model_type"), **kw)
    text = text_config.get_text_config()
    if text is not text_config:  # a VLM: its text model keeps the top-level tying (modeling.py)
        text = copy.deepcopy(text)
        text.tie_word_embeddings = getattr(
            text_config, "tie_word_embeddings", text.tie_word_embeddings
        )
    text_config = text
    key = text_config.to_json_string(use_diff=False)
    if key not in _PARAMS_CACHE:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(text_config)
        _PARAMS_CACHE[key] = sum(p.numel() for p in model.parameters())
    return _PARAMS_CACHE[key]


# --------------------------------------------------------------------- throughput


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def hardware_setup(prov: dict[str, Any] | None, ref: Reference) -> tuple[str, int] | None:
    """(gpu_name, count) a provenance block says a stage ran on; ("cpu", 1) without GPUs."""
    hw = (prov or {}).get("hardware")
    if not hw:
        return None
    gpus = hw.get("gpus") or []
    if not gpus:
        return CPU, 1
    name = ref.canonical_gpu(gpus[0])
    return (name or gpus[0]), len(gpus)


def benchmark_seconds(path: str | os.PathLike) -> float | None:
    """Mean ``s`` of a Snakemake benchmark file (TSV, or JSONL); None if absent or unreadable."""
    p = Path(path)
    if not p.exists():
        return None
    try:
        df = pd.read_json(p, lines=True) if p.suffix == ".jsonl" else pd.read_csv(p, sep="\t")
        return float(df["s"].mean())
    except (ValueError, KeyError, pd.errors.ParserError):
        return None


@dataclass
class Throughput:
    tok_s_per_gpu: float | None
    source: str
    measurement: Measurement | None = None


def pick_throughput(
    stage: Stage, gpu: str, params: float, ms: list[Measurement], ref: Reference, plan: dict
) -> Throughput:
    """Best measured tokens/s for this stage on this GPU, else the FLOP estimate.

    A measurement only counts for the same kind of work on a model of the same size (within 5 %);
    across GPUs it is scaled by peak BF16 FLOP/s, never between CPU and GPU. Preference: same kind,
    same GPU, this pipeline's own outputs over the measurements table, same optimizer, same rule,
    same policy.
    """
    target_peak, peak_src = ref.peak_flops(gpu, plan)
    best, best_key = None, None
    kinds = ("probe", "eval") if stage.kind == "probe" else (stage.kind,)  # both forward-only
    for m in ms:
        if m.kind not in kinds or abs(m.params - params) > 0.05 * params:
            continue
        if (m.gpu == CPU) != (gpu == CPU):
            continue
        if m.gpu != gpu and (target_peak is None or ref.peak_flops(m.gpu, plan)[0] is None):
            continue
        # the pipeline's own runs beat a bench table, a bench of the same recipe (optimizer) beats
        # another; then the same rule (finetune, not pretraining), the same policy (it changes
        # speed by ~2-8 % only), the same stage
        group = (m.stage or "").split("/")[0] == stage.id.split("/")[0]
        key = (
            m.kind == stage.kind,
            m.gpu == gpu,
            m.origin == "pipeline",
            m.optim == stage.optim,
            group,
            m.policy == stage.policy,
            m.stage == stage.id,
        )
        if best_key is None or key > best_key:
            best, best_key = m, key
    if best is not None:
        policy_note = (
            ""
            if best.policy == stage.policy
            else f", policy {best.policy} (none for {stage.policy})"
        )
        if best.kind != stage.kind:
            policy_note += f", {best.kind} rate for this forward-only {stage.kind}"
        if best.gpu == gpu:
            return Throughput(
                best.tokens_per_s, f"measured on {gpu}{policy_note}: {best.source}", best
            )
        src_peak = ref.peak_flops(best.gpu, plan)[0]
        tok_s = best.tokens_per_s * target_peak / src_peak
        return Throughput(
            tok_s,
            f"measured on {best.gpu}{policy_note}, scaled by peak FLOP/s {src_peak / 1e12:g}->"
            f"{target_peak / 1e12:g} T: {best.source}",
            best,
        )
    if target_peak is None:
        return Throughput(None, f"no measurement and {peak_src}")
    mfu = plan["mfu"][stage.kind]
    k = FLOPS_PER_PARAM_TOKEN[stage.kind]
    tok_s = mfu * target_peak / (k * params)
    return Throughput(
        tok_s,
        f"flop-estimate: nothing measured for {stage.kind} of a {params / 1e9:.3g} B model; "
        f"{mfu:g} MFU x {target_peak / 1e12:g} TFLOP/s / ({k} x params) [peak: {peak_src}]",
    )


# ------------------------------------------------------------------------ prices


@dataclass
class Price:
    per_hour: float | None
    source: str
    captured_at: str | None


def load_snapshot(path: str | os.PathLike) -> dict[str, Any] | None:
    p = Path(path)
    if not p.exists():
        return None
    data = json.loads(p.read_text())
    for key in ("captured_at", "offers"):
        if key not in data:
            raise PlanError(f"offers snapshot {p} lacks {key!r}")
    for i, o in enumerate(data["offers"]):
        for key in ("gpu_name", "num_gpus", "dph_total"):
            if key not in o:
                raise PlanError(f"offers snapshot {p}: offers[{i}] lacks {key!r}")
    data["path"] = str(p)
    return data


def snapshot_price(setup: Setup, snap: dict[str, Any] | None, path: str = "") -> Price:
    if snap is None:
        return Price(None, f"no price: no offers snapshot file {path}".rstrip(), None)
    where = f"snapshot {snap['path']} ({snap['captured_at']}; {snap.get('source', 'source not stated')})"
    offers = [o for o in snap["offers"] if o["gpu_name"] == setup.gpu]
    exact = [o for o in offers if int(o["num_gpus"]) == setup.count]
    if exact:
        o = min(exact, key=lambda o: o["dph_total"])
        note = f"; {o['note']}" if o.get("note") else ""
        return Price(
            float(o["dph_total"]), f"{where}: {setup.label} offer{note}", snap["captured_at"]
        )
    if offers:
        # A per-GPU rate times the count: Vast bundles price roughly linearly in GPUs.
        o = min(offers, key=lambda o: o["dph_total"] / int(o["num_gpus"]))
        per_gpu = o["dph_total"] / int(o["num_gpus"])
        note = f"; {o['note']}" if o.get("note") else ""
        return Price(
            per_gpu * setup.count,
            f"{where}: per-GPU rate {per_gpu:g} $/h x {setup.count} (no {setup.count}-GPU offer in "
            f"the snapshot){note}",
            snap["captured_at"],
        )
    return Price(None, f"no price: {where} has no offer for {setup.gpu}", snap["captured_at"])


VAST_PROFILE_PREFIXES = ("ablate-vast-", "vastai-")


def vast_profile(plan: dict[str, Any]) -> dict[str, Any]:
    """The vast profile's executor settings and groups, overlaid with ``plan.vast``.

    Returns ``{"settings": {...ExecutorSettings fields}, "groups": {...}, "source": ...}``: the
    planner prices the instance that profile would rent (same filters, max_price) and knows which
    rules share an instance.
    """
    from snakemake_executor_plugin_vastai import ExecutorSettings

    fields = set(ExecutorSettings.__dataclass_fields__)
    path = Path(plan["vast_profile"]) if plan.get("vast_profile") else None
    settings, groups, source = {}, {}, "plan.vast"
    if path is not None and path.exists():
        prof = yaml.safe_load(path.read_text()) or {}
        for key, value in prof.items():
            for prefix in VAST_PROFILE_PREFIXES:
                name = key[len(prefix) :].replace("-", "_") if key.startswith(prefix) else None
                if name in fields and name != "api_key":
                    settings[name] = value
        groups = prof.get("groups") or {}
        source = f"{path} + plan.vast"
    settings.update(plan.get("vast") or {})
    return {"settings": settings, "groups": groups, "source": source}


def live_prices(setups: list[Setup], vast_settings: dict[str, Any]) -> dict[Setup, Price]:
    """Cheapest on-demand Vast offer per setup, searched with the executor plugin's own query.

    The query is built by snakemake-executor-plugin-vastai (``build_offer_query``) from the vast
    profile's settings (:func:`vast_profile`: reliability, datacenter, max_price, ...), so the price
    is that of the instance the pipeline would rent. ``VAST_URL`` selects the API server (tests use
    a fake).
    """
    from snakemake_executor_plugin_vastai import ExecutorSettings, build_offer_query
    from vastai import VastAI

    settings = ExecutorSettings(**vast_settings)
    client = VastAI(
        api_key=os.environ["VAST_API_KEY"], server_url=os.environ.get("VAST_URL"), retry=1
    )
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
    out: dict[Setup, Price] = {}
    for s in setups:
        if s.local:
            continue
        query = build_offer_query(settings, {"gpu": s.count, "gpu_model": s.gpu}, 0)
        try:
            offers = client.search_offers(
                query=query, type="on-demand", order=settings.order, limit=20, storage=settings.disk
            )
        except Exception as exc:  # network, auth, API errors: say so in price_source
            out[s] = Price(
                None, f"no price: live Vast search failed ({type(exc).__name__}: {exc})", now
            )
            continue
        offers = [o for o in offers or [] if o.get("dph_total") is not None]
        if not offers:
            out[s] = Price(None, f"no price: no live Vast offer matches '{query}'", now)
            continue
        o = min(offers, key=lambda o: o["dph_total"])
        out[s] = Price(
            float(o["dph_total"]),
            f"vast live {now}: cheapest of {len(offers)} offers for '{query}' (offer {o.get('id')})",
            now,
        )
    return out


def resolve_prices(setups: list[Setup], plan: dict[str, Any]) -> dict[Setup, Price]:
    """Per setup: the user's own price, else live offers (if a key is set), else the snapshot."""
    mode = plan["prices"]
    snap = load_snapshot(plan["offers_snapshot"]) if mode in ("auto", "snapshot") else None
    vast = vast_profile(plan)
    live: dict[Setup, Price] = {}
    if mode == "vast" or (mode == "auto" and os.environ.get("VAST_API_KEY")):
        if not os.environ.get("VAST_API_KEY"):
            raise PlanError("plan.prices is 'vast' but VAST_API_KEY is not set")
        live = live_prices(
            [s for s in setups if s.price_per_hour is None and not s.local], vast["settings"]
        )
    out = {}
    for s in setups:
        if s.price_per_hour is not None:
            out[s] = Price(float(s.price_per_hour), "config: plan.setups price_per_hour", None)
        elif s.local:
            out[s] = Price(
                None, f"no price: {s.label} is a local setup, not rented (set price_per_hour)", None
            )
        elif s in live and live[s].per_hour is not None:
            out[s] = live[s]
        elif s in live and mode == "auto":
            fallback = snapshot_price(s, snap, plan["offers_snapshot"])
            fallback.source = f"{live[s].source}; fell back to {fallback.source}"
            out[s] = fallback
        elif s in live:
            out[s] = live[s]
        else:
            out[s] = snapshot_price(s, snap, plan["offers_snapshot"])
            if snap is None and mode == "auto":
                out[s].source += " and VAST_API_KEY is not set (live offers)"
        cap = vast["settings"].get("max_price")
        if (
            not s.local
            and cap is not None
            and out[s].per_hour is not None
            and out[s].per_hour > cap
        ):
            out[
                s
            ].source += (
                f"; above max_price {cap:g} $/h ({vast['source']}): the executor would not rent it"
            )
    return out


def capture_offers(setups: list[Setup], plan: dict[str, Any], path: str | os.PathLike) -> dict:
    """Write a fresh offers snapshot (the cheapest live offer of every setup) for offline planning."""
    if not os.environ.get("VAST_API_KEY"):
        raise PlanError("--capture-offers needs VAST_API_KEY (live Vast offers)")
    prices = live_prices(setups, vast_profile(plan)["settings"])
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
    snap = {
        "captured_at": now,
        "method": "ablate plan --capture-offers: cheapest on-demand offer per setup",
        "source": os.environ.get("VAST_URL") or "https://console.vast.ai",
        "offers": [
            {"gpu_name": s.gpu, "num_gpus": s.count, "dph_total": p.per_hour, "note": p.source}
            for s, p in prices.items()
            if p.per_hour is not None
        ],
        "missing": [f"{s.label}: {p.source}" for s, p in prices.items() if p.per_hour is None],
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(snap, indent=1) + "\n")
    return snap


# --------------------------------------------------------- measurements of past runs


def _model_params_from_dir(path: str | os.PathLike | None, cache: dict) -> float | None:
    cfg = Path(path) / "config.json" if path else None
    if cfg is None or not cfg.exists():
        return None
    key = cfg.read_text()
    if key not in cache:
        from transformers import AutoConfig

        cache[key] = float(count_params(AutoConfig.from_pretrained(str(cfg.parent))))
    return cache[key]


@dataclass
class Run:
    """A finished stage: its output JSON, where it ran and how long it took."""

    data: dict[str, Any]
    gpu: str
    count: int
    run_id: str | None
    wall_s: float | None  # provenance wall_time_s (inside the script)
    bench_s: float | None  # Snakemake benchmark file (the whole job)


def finished_run(stage: Stage, root: Path, ref: Reference) -> Run | None:
    if not stage.output or not (root / stage.output).exists():
        return None
    data = _read_json(root / stage.output) or {}
    prov = data.get("provenance") or {}
    hw = hardware_setup(prov, ref)
    if hw is None:
        return None
    bench = benchmark_seconds(root / stage.benchmark) if stage.benchmark else None
    return Run(
        data, hw[0], hw[1], prov.get("run_id") or data.get("run_id"), prov.get("wall_time_s"), bench
    )


def pipeline_measurements(study: Study) -> list[Measurement]:
    """Throughput this pipeline measured in earlier runs: finetune summaries, eval/probe timings.

    The model size of each run is read from the checkpoint it wrote or evaluated (config.json), so
    results left by another config (the embedded tiny model) cannot pose as the 3B model. Train
    rates are the Trainer's pure step time (summary ``throughput``); eval and probe rates come from
    the provenance wall time (else the benchmark file) minus the modelled start-up and load time
    (at most half of it is taken off).
    """
    out: list[Measurement] = []
    for st in study.stages:
        run = finished_run(st, study.root, study.ref)
        if run is None:
            continue
        params = study.params_of_run(st, run.data)
        if params is None:
            continue
        where = f"{st.output} (run {run.run_id} on {run.count}x {run.gpu})"
        if st.kind == "train":
            tp = run.data.get("throughput") or {}
            if not tp.get("train_tokens_per_s"):
                continue
            out.append(
                Measurement(
                    kind="train",
                    policy=run.data.get("policy") or st.policy,
                    gpu=run.gpu,
                    params=params,
                    optim=(run.data.get("params") or {}).get("optim"),
                    tokens_per_s=float(tp["train_tokens_per_s"]) / run.count,
                    origin="pipeline",
                    run_id=run.run_id,
                    stage=st.id,
                    source=f"train_tokens_per_s {tp['train_tokens_per_s']:.4g} of {where}",
                )
            )
            continue
        secs, what = (run.wall_s, "wall_time_s") if run.wall_s else (run.bench_s, "benchmark s")
        if st.kind == "eval":
            n_docs = {t: r.get("n") for t, r in (run.data.get("tasks") or {}).items() if r.get("n")}
            tokens = study.eval_tokens(n_docs)[0]
        else:
            tokens = st.tokens
        if not secs or not tokens:
            continue
        load = job_overhead(st, Setup(run.gpu, run.count, local=True), params, study.plan)[0]
        compute = max(secs - load, 0.5 * secs)
        out.append(
            Measurement(
                kind=st.kind,
                policy=st.policy,
                gpu=run.gpu,
                params=params,
                tokens_per_s=tokens / compute / run.count,
                origin="pipeline",
                run_id=run.run_id,
                stage=st.id,
                source=f"{tokens:.4g} tokens in {what} {secs:.4g} s - modelled load {secs - compute:.3g} s, {where}",
            )
        )
    return out


# --------------------------------------------------------------------- overheads


def job_overhead(stage: Stage, setup: Setup, params: float, plan: dict) -> tuple[float, str]:
    """Seconds inside the job besides the compute: start-up, weight download/load, saves."""
    o = plan["overheads"]
    weights_mb = params * plan["bytes_per_param"] / 1e6
    parts = [("startup", o["startup_s"])]
    if stage.loads_hub_model and not setup.local:
        parts.append(("download", weights_mb / o["download_mb_s"]))
    parts.append(("load", weights_mb / o["disk_mb_s"]))
    if stage.writes_checkpoint:
        saves = 1
        shape = stage.train_shape or {}
        if shape.get("save_steps") and shape.get("max_steps"):
            saves += shape["max_steps"] // shape["save_steps"]
        state_mb = params * plan["train_state_bytes_per_param"] / 1e6
        parts.append(
            (
                f"{saves} save(s)",
                weights_mb / o["disk_mb_s"] + (saves - 1) * state_mb / o["disk_mb_s"],
            )
        )
    total = sum(v for _, v in parts)
    return total, " + ".join(f"{k} {v:.0f}" for k, v in parts)


def rental_overhead(stage: Stage, setup: Setup, params: float, plan: dict) -> tuple[float, str]:
    """Seconds a rented instance is billed outside the job: boot, shipping, checkpoint transfers."""
    if setup.local:
        return 0.0, "local"
    if stage.shares_instance:
        return (
            0.0,
            f"none: runs on the instance of {stage.shares_instance} (a group job of the vast profile)",
        )
    o = plan["overheads"]
    weights_mb = params * plan["bytes_per_param"] / 1e6
    parts = [("boot", o["boot_s"]), ("setup", o["setup_s"])]
    if stage.ships_checkpoint:
        parts.append(("ckpt in", weights_mb / o["transfer_mb_s"]))
    if stage.writes_checkpoint:
        parts.append(("ckpt out", weights_mb / o["transfer_mb_s"]))
    return sum(v for _, v in parts), " + ".join(f"{k} {v:.0f}" for k, v in parts)


DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
#: Optimizer states per parameter, in the weights' dtype (torch allocates them like the weights;
#: adafactor's are factored into row/column vectors: ~0).
OPTIM_STATES = {"adamw_torch": 2, "adamw_torch_fused": 2, "adafactor": 0, "sgd": 0}


def memory_need_gb(stage: Stage, params: float, plan: dict) -> tuple[float, str]:
    """GPU memory per GPU: weights (+ grads + optimizer states when training) x (1 + margin).

    Activations are only covered by the margin. For scale: the H200 bench (bf16 weights + AdamW =
    8 B/param = 27 GB for the 3.43 B model) peaked at 40.6 GB with B=4 x T=1024 (shared findings,
    section 3); the pipeline's finetunes run B=1.
    """
    b = DTYPE_BYTES.get(stage.dtype, 4)
    if stage.kind == "train":
        states = OPTIM_STATES.get(stage.optim or "", 2)
        per, what = b * (2 + states), f"{stage.dtype} weights + grads + {stage.optim} states"
    else:
        per, what = b, f"{stage.dtype} weights"
    margin = plan["memory_margin"]
    return params * per * (1 + margin) / 1e9, f"{per:g} B/param ({what}) + {margin:.0%} margin"


# ------------------------------------------------------------------------- table


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), nd)


def estimate(
    study: Study,
    setups: list[Setup],
    prices: dict[Setup, Price],
    ref: Reference,
    measurements: list[Measurement],
) -> pd.DataFrame:
    """One row per (setup, stage) plus a TOTAL row per setup (stages in sequence, summed cost)."""
    plan = study.plan
    rows = []
    for s in setups:
        price = prices[s]
        stage_rows = []
        for st in study.stages:
            tp = pick_throughput(st, s.gpu, study.params, measurements, ref, plan)
            eff = plan["scaling"][st.kind]
            speedup = 1 + (s.count - 1) * eff
            job_s, job_what = job_overhead(st, s, study.params, plan)
            rent_s, rent_what = rental_overhead(st, s, study.params, plan)
            need, need_what = memory_need_gb(st, study.params, plan)
            mem = None if s.gpu == CPU else (ref.gpus.get(s.gpu) or {}).get("memory_gb")
            fits = "n/a" if mem is None else ("yes" if need <= mem else "no")
            notes = [
                f"job overhead: {job_what}",
                f"rental overhead: {rent_what}",
                f"memory: {need:.3g} GB needed ({need_what})" + (f" vs {mem} GB" if mem else ""),
            ]
            if s.count > 1:
                notes.append(f"speedup 1 + ({s.count}-1) x {eff:g} (plan.scaling.{st.kind})")
            compute = (
                st.tokens / (tp.tok_s_per_gpu * speedup) if tp.tok_s_per_gpu and st.tokens else None
            )
            if fits == "no":
                notes.insert(0, f"does not fit: needs {need:.3g} GB per GPU, {s.gpu} has {mem} GB")
                compute = None
            est_job = None if compute is None else compute + job_s
            est = None if est_job is None else est_job + rent_s
            cost = None if est is None or price.per_hour is None else est / 3600 * price.per_hour
            stage_rows.append(
                dict(
                    setup=s.label,
                    gpu=s.gpu,
                    gpus=s.count,
                    stage=st.id,
                    kind=st.kind,
                    model=st.model,
                    policy=st.policy,
                    tokens=_r(st.tokens, 0),
                    tokens_source=st.tokens_source,
                    tok_s_per_gpu=None
                    if tp.tok_s_per_gpu is None
                    else float(f"{tp.tok_s_per_gpu:.6g}"),
                    throughput_source=tp.source,
                    speedup=_r(speedup, 3),
                    compute_s=_r(compute),
                    job_overhead_s=_r(job_s),
                    rental_overhead_s=_r(rent_s),
                    est_job_s=_r(est_job),
                    est_s=_r(est),
                    fits_memory=fits,
                    price_per_hour=price.per_hour,
                    price_source=price.source,
                    prices_captured_at=price.captured_at,
                    est_cost_usd=_r(cost, 2),
                    note="; ".join(notes),
                    measured_run_id=tp.measurement.run_id if tp.measurement else None,
                )
            )
        rows += stage_rows
        missing = [r["stage"] for r in stage_rows if r["est_s"] is None]
        unpriced = price.per_hour is None
        total_s = None if missing else sum(r["est_s"] for r in stage_rows)
        rows.append(
            dict(
                setup=s.label,
                gpu=s.gpu,
                gpus=s.count,
                stage=TOTAL,
                kind="",
                model="",
                policy="",
                tokens=_r(None if missing else sum(st.tokens for st in study.stages), 0),
                tokens_source="sum of the stages",
                est_s=_r(total_s),
                est_job_s=_r(None if missing else sum(r["est_job_s"] for r in stage_rows)),
                compute_s=_r(None if missing else sum(r["compute_s"] for r in stage_rows)),
                price_per_hour=price.per_hour,
                price_source=price.source,
                prices_captured_at=price.captured_at,
                est_cost_usd=_r(
                    None if total_s is None or unpriced else total_s / 3600 * price.per_hour, 2
                ),
                note=(
                    "stages run one after another"
                    + (" here" if s.local else ", each on its own instance")
                    + (f"; no estimate for {', '.join(missing)}" if missing else "")
                    + ("; no price" if unpriced else "")
                ),
            )
        )
    df = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in df:
            df[c] = None
    return df[COLUMNS]


@dataclass
class Actual:
    seconds: float | None  # None: finished, but neither a benchmark file nor a wall time
    source: str
    gpu: str | None  # None: its output names no hardware, so no setup row can take the time
    count: int | None
    run_id: str | None


def collect_actuals(study: Study) -> dict[str, Actual]:
    """Per finished stage (its output exists): job seconds (benchmark file, else provenance wall
    time) and hardware; either may be missing, and the stage still counts as run."""
    out = {}
    for st in study.stages:
        if not st.output or not (study.root / st.output).exists():
            continue
        run = finished_run(st, study.root, study.ref)
        if run is None:
            out[st.id] = Actual(
                None, f"{st.output} names no hardware (no provenance)", None, None, None
            )
        elif run.bench_s is not None:
            out[st.id] = Actual(
                run.bench_s, f"benchmark {st.benchmark}", run.gpu, run.count, run.run_id
            )
        elif run.wall_s:
            out[st.id] = Actual(
                float(run.wall_s), f"wall_time_s of {st.output}", run.gpu, run.count, run.run_id
            )
        else:
            out[st.id] = Actual(
                None,
                f"no benchmark file and no wall_time_s in {st.output}",
                run.gpu,
                run.count,
                run.run_id,
            )
    return out


def add_actuals(df: pd.DataFrame, actuals: dict[str, Actual]) -> pd.DataFrame:
    """Fill actual_s / actual_source / error_pct on the row of the setup each stage ran on, and
    ``status`` on every row: ``not run yet``, ``ran on this setup`` or ``ran on <setup>``; a TOTAL
    row counts its setup's finished stages. Any number of stages may have finished (none: the
    forecast with every row ``not run yet``).

    ``error_pct = 100 * (est_job_s - actual_s) / actual_s`` (positive: over-estimate): the job
    time, since no benchmark file sees instance boot or shipping. A stage that ran on hardware the
    plan has no setup for gets a row of its own (actual only).
    """
    df = df.copy()
    for col in ("actual_s", "error_pct"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in ("actual_source", "status", "note"):
        df[col] = df[col].astype("object")
    stage_rows = df["stage"] != TOTAL
    df.loc[stage_rows, "status"] = NOT_RUN
    extra = []
    for sid, a in actuals.items():
        ran = (df["stage"] == sid) & stage_rows
        if a.gpu is None:
            df.loc[ran, "status"] = f"ran, but no actual: {a.source}"
            continue
        label = f"{a.count}x {a.gpu}"
        df.loc[ran, "status"] = f"ran on {label}"
        hit = df.index[ran & (df["gpu"] == a.gpu) & (df["gpus"] == a.count)]
        seconds = None if a.seconds is None else round(a.seconds, 1)
        if not len(hit):
            extra.append(
                dict(
                    setup=label,
                    gpu=a.gpu,
                    gpus=a.count,
                    stage=sid,
                    actual_s=seconds,
                    actual_source=a.source,
                    status="ran on this setup",
                    note=UNPLANNED,
                )
            )
            continue
        i = hit[0]
        df.loc[i, "status"] = "ran on this setup"
        df.loc[i, "actual_source"] = a.source
        if seconds is None:
            df.loc[i, "status"] += f", but no actual: {a.source}"
            continue
        df.loc[i, "actual_s"] = seconds
        est = df.loc[i, "est_job_s"]
        if not pd.isna(est):
            df.loc[i, "error_pct"] = round(100 * (est - a.seconds) / a.seconds, 1)
        if a.run_id and df.loc[i, "measured_run_id"] == a.run_id:
            df.loc[i, "note"] = (
                f"estimate used this run's own measurement, not a forecast; {df.loc[i, 'note']}"
            )
    for label in df["setup"].unique():
        rows = df[(df["setup"] == label) & stage_rows]
        total = df.index[(df["setup"] == label) & ~stage_rows]
        if not len(total):
            continue
        i = total[0]
        n_ran, n_here = rows["stage"].isin(list(actuals)).sum(), rows["actual_s"].notna().sum()
        df.loc[i, "status"] = (
            NOT_RUN
            if not n_ran
            else (f"{n_ran} of {len(rows)} stages ran, {n_here} with an actual time on this setup")
        )
        if len(rows) and n_here == len(rows):
            df.loc[i, "actual_s"] = round(rows["actual_s"].sum(), 1)
            df.loc[i, "actual_source"] = "sum of the stages"
            if rows["est_job_s"].notna().all():
                est = rows["est_job_s"].sum()
                df.loc[i, "error_pct"] = round(
                    100 * (est - df.loc[i, "actual_s"]) / df.loc[i, "actual_s"], 1
                )
    if extra:
        df = pd.concat([df, pd.DataFrame(extra)], ignore_index=True)
    return df


# ------------------------------------------------------------------- the study

#: Where the rules write each stage's output and Snakemake benchmark (rules/*.smk; rules/plan.smk
#: passes the rules' own patterns, these are the defaults of the CLI).
OUTPUTS = {
    "prepare_model": "results/model/base/summary.json",
    "leakage": "results/leakage/{policy}.json",
    "finetune": "results/finetune/{variant}/summary.json",
    "eval": "results/eval/{model}/{policy}/metrics.json",
}
BENCHMARKS = {
    "prepare_model": "results/benchmarks/prepare_model/base.tsv",
    "leakage": "results/benchmarks/leakage_probe/{policy}.tsv",
    "finetune": "results/benchmarks/finetune/{variant}.tsv",
    "eval": "results/benchmarks/eval_model/{model}.{policy}.tsv",
}


def resolve_variants(finetune: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> {stage, policy, params, ...}, by the same rule as the pipeline (ablate.mask.study)."""
    return study.resolve_variants(finetune["variants"], finetune.get("defaults", {}))


def _words(text: str) -> int:
    return len(str(text).split())


class Study:
    """The GPU stages of one config: tokens each processes, output/benchmark files, model size.

    Stages follow the rules: prepare_model (embedded: the tiny model's pretraining), a leakage
    probe per training policy, a finetune per variant, and an eval per (base or variant) x
    (causal, ablated policy). A pretrained model's prepare_model only records (or downloads) the
    model on the submit host and is not planned.
    """

    def __init__(
        self,
        config: dict[str, Any],
        ref: Reference,
        *,
        root: str | os.PathLike = ".",
        variants: dict[str, dict[str, Any]] | None = None,
        outputs: dict[str, str] | None = None,
        benchmarks: dict[str, str] | None = None,
    ):
        self.config, self.plan, self.ref, self.root = config, config["plan"], ref, Path(root)
        self.embedded_model = config["model"]["source"] == "embedded"
        self.embedded_data = config["data"]["source"] == "embedded"
        self.variants = variants or resolve_variants(config["finetune"])
        self.outputs = {**OUTPUTS, **(outputs or {})}
        self.benchmarks = {**BENCHMARKS, **(benchmarks or {})}
        self.params, self.params_source = self._base_params()
        groups = vast_profile(self.plan)["groups"]
        # the vast profile puts a finetune and the evaluations of its checkpoint on one instance
        self.grouped = groups.get("finetune") is not None and groups.get("finetune") == groups.get(
            "eval_model"
        )
        self._cache: dict = {}
        self.stages = self._stages()

    # -- model size
    def _base_params(self) -> tuple[float, str]:
        m = self.config["model"]
        if self.embedded_model:
            from ablate.core.modeling import tiny_ministral3_config

            arch = (m.get("embedded") or {}).get("arch") or {}
            params = count_params(tiny_ministral3_config(**arch))
            return float(params), "embedded tiny Ministral-3 (model.embedded.arch)"
        path = m["path"]
        if (Path(path) / "config.json").exists():
            return _model_params_from_dir(path, {}), f"{path}/config.json"
        try:  # a hub id already in the local HF cache
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(
                path, revision=m.get("revision"), local_files_only=True
            )
            return float(count_params(cfg)), f"{path} config.json (local HF cache)"
        except (OSError, ValueError):
            pass
        if path in self.ref.models:
            spec = self.ref.models[path]
            return float(
                count_params(spec["text_config"])
            ), f"{spec['source']} [{Path(self.ref.path).name}]"
        raise PlanError(
            f"model size of {path!r} unknown offline: no config.json there, none in the HF cache, and "
            f"no entry under 'models:' in {self.ref.path}"
        )

    def params_of_run(self, stage: Stage, data: dict[str, Any]) -> float | None:
        """Size of the model a finished stage ran, from the config.json of the checkpoint it wrote
        or evaluated: the path in its metrics (absolute, where it ran), else the checkpoint this
        results folder holds for that model; a hub model evaluated by id is the config's model."""
        if stage.kind == "train":
            return _model_params_from_dir(
                self.root / Path(stage.output).parent / "final", self._cache
            )
        path = (data.get("model") or {}).get("path")
        if path and (Path(path) / "config.json").exists():
            return _model_params_from_dir(path, self._cache)
        if stage.model != "base":
            ckpt = Path(self.outputs["finetune"].format(variant=stage.model)).parent / "final"
        elif self.embedded_model:
            ckpt = Path(self.outputs["prepare_model"]).parent / "final"
        else:
            return self.params
        return _model_params_from_dir(self.root / ckpt, self._cache)

    # -- tokens
    def _sft_rows(self) -> list[dict[str, Any]] | None:
        if not self.embedded_data:
            return None
        from ablate.mask import embedded

        d = {**embedded.DEFAULTS, **(self.config["data"].get("embedded") or {})}
        return embedded.sft_pairs(self.config["data"]["seed"], d["sft_pairs"])

    def _pair_tokens(self, max_seq_len: int) -> tuple[float, str]:
        rows = self._sft_rows()
        if rows is None:
            return float(max_seq_len), f"upper bound: every pair {max_seq_len} tokens (max_seq_len)"
        from ablate.mask.sft_data import format_prompt

        lens = [min(max_seq_len, _words(format_prompt(r)) + _words(r["output"]) + 2) for r in rows]
        return sum(lens) / len(lens), "mean words+2 of the generated SFT pairs"

    def eval_tokens(self, n_docs: dict[str, int] | None = None) -> tuple[float | None, str]:
        """Tokens of one evaluation: sum over tasks of docs x choices x tokens/request.

        ``n_docs`` (task -> documents actually scored, from a metrics.json) replaces the limits.
        """
        total, parts, unknown = 0.0, [], []
        tpr_default = self.ref.tokens_per_request
        for t in self.config["eval"]["tasks"]:
            name, limit = t["name"], t.get("limit")
            if self.embedded_data:
                from ablate.mask import embedded

                d = {**embedded.DEFAULTS, **(self.config["data"].get("embedded") or {})}
                docs = embedded.task_docs(name, self.config["data"]["seed"], d["task_docs"])
                docs = docs[: (n_docs or {}).get(name) or limit or len(docs)]
                if name == "emb_animals":
                    toks = sum(
                        _words(o) + _words(doc["continuation"]) + 1
                        for doc in docs
                        for o in doc["options"]
                    )
                else:
                    toks = sum(
                        _words(doc["context"]) + _words(c) + 1
                        for doc in docs
                        for c in doc["choices"]
                    )
                total += toks
                parts.append(f"{name} {len(docs)} docs")
                continue
            spec = {**self.ref.tasks.get(name, {}), **(self.plan["tasks"].get(name) or {})}
            n = (n_docs or {}).get(name) or (
                min(limit, spec["docs"]) if limit and "docs" in spec else limit or spec.get("docs")
            )
            tpr = spec.get("tokens_per_request") or tpr_default.get("value")
            if not n or "choices" not in spec or not tpr:
                unknown.append(name)
                continue
            total += n * spec["choices"] * tpr
            parts.append(f"{name} {n}x{spec['choices']}")
        if unknown:
            return None, (
                f"unknown size of task(s) {', '.join(unknown)}: add plan.tasks.<task> "
                "{choices, docs, tokens_per_request}"
            )
        if self.embedded_data:
            return (
                total,
                "generated task docs, words+1 per (context, choice) request: " + ", ".join(parts),
            )
        return total, (
            f"docs x choices x {tpr_default.get('value')} tokens/request "
            f"({tpr_default.get('source', 'measurements file')}): " + ", ".join(parts)
        )

    def _measured_tokens_per_step(self, shape: dict[str, Any]) -> tuple[float, str] | None:
        """Mean non-pad tokens/step of an earlier finetune with the same batch shape and data."""
        for name in sorted(self.variants):
            path = self.root / self.outputs["finetune"].format(variant=name)
            data = _read_json(path) or {}
            p = data.get("params") or {}
            if (
                data.get("steps_done")
                and data.get("tokens_seen")
                and all(p.get(k) == shape[k] for k in ("batch_size", "grad_accum", "max_seq_len"))
            ):
                return data["tokens_seen"] / data[
                    "steps_done"
                ], f"measured mean tokens/step of {path}"
        return None

    # -- stages
    def _files(self, group: str, **wc: str) -> tuple[str, str]:
        return self.outputs[group].format(**wc), self.benchmarks[group].format(**wc)

    def _stages(self) -> list[Stage]:
        cfg, stages = self.config, []
        hub = not self.embedded_model
        if self.embedded_model:
            from ablate.mask import training

            p = training.resolve_params(
                (cfg["model"].get("embedded") or {}).get("pretrain"), training.PRETRAIN_DEFAULTS
            )
            out, bench = self._files("prepare_model")
            shape = {
                k: p[k]
                for k in ("batch_size", "grad_accum", "max_seq_len", "max_steps", "save_steps")
            }
            stages.append(
                Stage(
                    "prepare_model",
                    "train",
                    "base",
                    "causal",
                    p["max_steps"] * p["batch_size"] * p["grad_accum"] * p["max_seq_len"],
                    "max_steps x batch x grad_accum x max_seq_len (packed corpus blocks)",
                    out,
                    bench,
                    writes_checkpoint=True,
                    train_shape=shape,
                    dtype=p["model_dtype"],
                    optim=p["optim"],
                )
            )
        leak = cfg["leakage"]
        per_pair, per_pair_src = self._pair_tokens(leak["max_seq_len"])
        for policy in sorted({v["policy"] for v in self.variants.values()}):
            out, bench = self._files("leakage", policy=policy)
            stages.append(
                Stage(
                    f"leakage/{policy}",
                    "probe",
                    "base",
                    policy,
                    2 * leak["n_pairs"] * per_pair,
                    f"2 forwards (causal + {policy}) x {leak['n_pairs']} pairs x "
                    f"{per_pair:.4g} tokens ({per_pair_src})",
                    out,
                    bench,
                    loads_hub_model=hub,
                    ships_checkpoint=not hub,
                )
            )
        for name, v in sorted(self.variants.items()):
            p = v["params"]
            shape = {
                k: p.get(k)
                for k in ("batch_size", "grad_accum", "max_seq_len", "max_steps", "save_steps")
            }
            measured = self._measured_tokens_per_step(shape)
            if measured:
                per_step, src = measured
            else:
                pair, pair_src = self._pair_tokens(p["max_seq_len"])
                per_step, src = (
                    p["batch_size"] * p["grad_accum"] * pair,
                    f"batch x grad_accum x ({pair_src})",
                )
            stops = p.get("plateau_patience") or p.get("no_learning_steps")
            stop = " (upper bound: a stop rule may end it earlier)" if stops else ""
            out, bench = self._files("finetune", variant=name)
            stages.append(
                Stage(
                    f"finetune/{name}",
                    "train",
                    name,
                    v["policy"],
                    p["max_steps"] * per_step,
                    f"max_steps {p['max_steps']} x {per_step:.4g} tokens/step ({src}){stop}",
                    out,
                    bench,
                    loads_hub_model=hub,
                    ships_checkpoint=not hub,
                    writes_checkpoint=True,
                    train_shape=shape,
                    dtype=p.get("model_dtype", "float32"),
                    optim=p.get("optim"),
                )
            )
        tokens, tokens_src = self.eval_tokens()
        for model in ["base", *sorted(self.variants)]:
            for policy in dict.fromkeys(["causal", cfg["eval"]["ablated_policy"]]):
                out, bench = self._files("eval", model=model, policy=policy)
                stages.append(
                    Stage(
                        f"eval/{model}/{policy}",
                        "eval",
                        model,
                        policy,
                        tokens,
                        tokens_src,
                        out,
                        bench,
                        loads_hub_model=hub and model == "base",
                        ships_checkpoint=not (hub and model == "base"),
                        dtype=cfg["eval"].get("dtype", "float32"),
                        shares_instance=f"finetune/{model}"
                        if self.grouped and model != "base"
                        else None,
                    )
                )
        return stages


# ------------------------------------------------------------------- plan + output


@dataclass
class Plan:
    table: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


def make_plan(
    config: dict[str, Any],
    *,
    root: str | os.PathLike = ".",
    actuals: bool = True,
    frozen: pd.DataFrame | None = None,
    **study_kw: Any,
) -> Plan:
    """The plan of one config: estimate every (setup, stage); with ``actuals`` add finished stages.

    ``frozen``: an estimate written before the run (rule ``plan_estimate``); the actuals are added
    to it instead of to a fresh estimate, which would already have learnt from the run itself.
    """
    plan = config["plan"]
    ref = Reference.load(plan["measurements"])
    study = Study(config, ref, root=root, **study_kw)
    info = {
        "model": config["model"].get("path") or "embedded tiny Ministral-3",
        "params": study.params,
        "params_source": study.params_source,
        "measurements_file": ref.path,
    }
    if frozen is None:
        setups = parse_setups(plan, ref)
        ms = pipeline_measurements(study) + ref.measurements
        prices = resolve_prices(setups, plan)
        table = estimate(study, setups, prices, ref, ms)
    else:
        missing = [c for c in COLUMNS if c not in frozen.columns and c not in ACTUAL_COLUMNS]
        if missing:
            raise PlanError(f"the frozen estimate lacks the column(s) {', '.join(missing)}")
        # only its forecast counts: actuals of another run (a plan.csv passed as --frozen) go
        table = frozen[frozen["note"] != UNPLANNED].reindex(columns=COLUMNS).reset_index(drop=True)
        table[ACTUAL_COLUMNS] = None
    if actuals:
        table = add_actuals(table, collect_actuals(study))
    info["prices"] = sorted({str(x) for x in table["price_source"].dropna()})
    info["captured_at"] = sorted({str(x) for x in table["prices_captured_at"].dropna()})
    return Plan(table, info)


def _hms(s: float | None) -> str:
    if s is None or pd.isna(s):
        return "-"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def summary_lines(p: Plan) -> list[str]:
    """Human-readable plan: model, price provenance, one line per setup, measured vs estimated."""
    t, info = p.table, p.info
    lines = [
        f"model: {info['model']}, {info['params'] / 1e9:.4g} B parameters ({info['params_source']})"
    ]
    dates = ", ".join(info["captured_at"]) or "none"
    lines.append(f"prices captured at: {dates}")
    stages = t[t["stage"] != TOTAL]
    n_meas = stages["throughput_source"].fillna("").str.startswith("measured").sum()
    n_flop = stages["throughput_source"].fillna("").str.startswith("flop-estimate").sum()
    lines.append(
        f"throughput: {n_meas} (setup, stage) rows from measurements, {n_flop} from the FLOP estimate"
    )
    if stages["status"].notna().any():  # actuals were looked for (not an estimate only)
        planned = stages[stages["note"] != UNPLANNED]
        ran = planned[planned["status"] != NOT_RUN]["stage"].nunique()
        n = planned["stage"].nunique()
        lines.append(
            f"stages run: {ran} of {n}"
            + (" (actual_s and error_pct fill in as the stages finish)" if ran < n else "")
        )
    for _, r in t[t["stage"] == TOTAL].iterrows():
        if pd.isna(r["est_s"]):
            cost = "incomplete: " + str(r["note"]).split("; ", 1)[-1]
        else:
            cost = "no price" if pd.isna(r["est_cost_usd"]) else f"${r['est_cost_usd']:.2f}"
        act = ""
        if not pd.isna(r.get("actual_s")):
            act = f", actual job time {_hms(r['actual_s'])}"
            if not pd.isna(r.get("error_pct")):
                act += f" (estimate {r['error_pct']:+.0f} %)"
        lines.append(f"  {r['setup']:>14}: {_hms(r['est_s'])} total, {cost}{act}")
    for src in info["prices"]:
        if src.startswith("no price"):
            lines.append(f"  missing price: {src}")
    return lines


def write_plan(p: Plan, csv: str | os.PathLike, html: str | os.PathLike | None = None) -> None:
    Path(csv).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(csv) + ".tmp")
    p.table.to_csv(tmp, index=False)
    tmp.replace(csv)
    if html:
        totals = p.table[p.table["stage"] == TOTAL][
            [
                "setup",
                "est_s",
                "est_cost_usd",
                "price_per_hour",
                "actual_s",
                "error_pct",
                "status",
                "note",
            ]
        ].copy()
        totals.insert(2, "est_h:m:s", totals["est_s"].map(_hms))
        stages = p.table[p.table["stage"] != TOTAL][
            [
                "setup",
                "stage",
                "tokens",
                "tok_s_per_gpu",
                "throughput_source",
                "compute_s",
                "job_overhead_s",
                "rental_overhead_s",
                "est_s",
                "fits_memory",
                "est_cost_usd",
                "actual_s",
                "error_pct",
                "status",
                "price_source",
            ]
        ]
        head = "".join(f"<li>{line.strip()}</li>" for line in summary_lines(p))
        Path(html).write_text(
            "<html><head><meta charset='utf-8'><title>Runtime and cost plan</title>"
            "<style>body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 5px;vertical-align:top}</style></head><body>"
            f"<h2>Runtime and cost plan</h2><ul>{head}</ul>"
            "<p>est_s = rental overhead (boot, shipping) + job overhead (start-up, load, saves) + "
            "tokens / (tok_s_per_gpu x speedup); error_pct compares the job time (est_job_s) with the "
            "actual one. Model and assumptions: docs/planner.md; every column: results/plan.csv.</p>"
            f"<h3>Per setup (stages in sequence)</h3>{totals.fillna('-').to_html(index=False)}"
            f"<h3>Per stage</h3>{stages.fillna('-').to_html(index=False)}</body></html>\n"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ablate plan",
        description="Predict wall time and cost of every stage on every setup (plan.setups); after a "
        "run, add the actual time and the error of the estimate. See docs/planner.md.",
    )
    ap.add_argument(
        "--config",
        required=True,
        help="pipeline config (config/config.yaml, config/ministral3b.yaml)",
    )
    ap.add_argument("--out", default="results/plan.csv", help="plan table (CSV)")
    ap.add_argument("--html", help="also write the table as HTML (the report's view)")
    ap.add_argument("--root", default=".", help="folder holding results/ and benchmarks/ of runs")
    ap.add_argument(
        "--schema", default=CONFIG_SCHEMA, help="pipeline config schema (fills defaults)"
    )
    ap.add_argument("--plan-schema", default=PLAN_SCHEMA, help="schema of the plan: block")
    ap.add_argument(
        "--frozen",
        help="add actuals to this estimate (written before the run) instead of a fresh one",
    )
    ap.add_argument("--no-actuals", action="store_true", help="estimate only")
    ap.add_argument(
        "--capture-offers",
        metavar="PATH",
        help="write the cheapest live Vast offer per setup as a snapshot (needs VAST_API_KEY) and exit",
    )
    args = ap.parse_args(argv)
    try:
        config = load_config(args.config, args.schema, args.plan_schema)
        if args.capture_offers:
            snap = capture_offers(
                parse_setups(config["plan"], Reference.load(config["plan"]["measurements"])),
                config["plan"],
                args.capture_offers,
            )
            print(
                f"wrote {len(snap['offers'])} offers to {args.capture_offers} ({snap['captured_at']})"
            )
            for m in snap["missing"]:
                print(f"  missing: {m}")
            return 0
        frozen = pd.read_csv(args.frozen) if args.frozen else None
        p = make_plan(config, root=args.root, actuals=not args.no_actuals, frozen=frozen)
    except (PlanError, OSError) as exc:
        print(f"ablate plan: {exc}", file=sys.stderr)
        return 2
    write_plan(p, args.out, args.html)
    print("\n".join(summary_lines(p)))
    print(f"wrote {args.out}" + (f" and {args.html}" if args.html else ""))
    return 0
