"""Runtime and cost planner: every stage x every setup, predicted before a run, compared after it.

For each stage of the study (derived from the config, like the pipeline derives its jobs) and each
setup (GPU model x count, ``plan.setups``) the planner predicts

    est_s      = rental_overhead_s + job_overhead_s + compute_s
    compute_s  = tokens / (tok_s_per_gpu * speedup(count))
    speedup(n) = 1 + (n - 1) * plan.scaling[kind]
    est_cost   = est_s / 3600 * price_per_hour (the whole instance)

and shows where every number came from (docs/planner.md):

- ``tokens``: eval = tasks x docs x choices x tokens/request; train = max_steps x batch x
  grad_accum x max_seq_len (or the measured mean tokens/step of an earlier run); the leakage probe
  = 2 forwards x probe_size x max_seq_len.
- ``tok_s_per_gpu``: measured on that GPU (this pipeline's summaries, metrics, Snakemake
  ``benchmark:`` files, then data/gpu_measurements.yaml), or measured on another GPU and scaled
  by peak BF16 FLOP/s, or, when nothing was measured for the model, the FLOP estimate
  ``mfu * peak / (6 * params)`` (train) or ``/(2 * params)`` (eval, probe).
- prices: live Vast offers through the vastai SDK when ``VAST_API_KEY`` is set, else the offers
  snapshot (its capture date in every row), else a price set on the setup; a setup without any
  gets an empty cost and a ``price_source`` saying why, never a made-up number.

After a run, :func:`add_actuals` fills ``actual_s`` (the Snakemake benchmark file of the stage, or
the wall time in its output's provenance block) and ``error_pct`` on the row of the setup the
stage ran on. CLI: ``maskablate plan --config ... --out results/plan.csv``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import yaml

KINDS = ("train", "eval", "probe")
#: Matmul FLOPs per token per parameter: forward 2, forward + backward 6 (Kaplan et al. 2020).
FLOPS_PER_PARAM_TOKEN = {"train": 6, "eval": 2, "probe": 2}
CPU = "cpu"
PLAN_SCHEMA = "workflow/schemas/plan.schema.yaml"

#: Column order of plan.csv (the contract with the report, the docs and the tests).
COLUMNS = [
    "setup", "gpu", "gpus", "stage", "kind", "model", "policy",
    "tokens", "tokens_source", "tok_s_per_gpu", "throughput_source", "speedup",
    "compute_s", "job_overhead_s", "rental_overhead_s", "est_job_s", "est_s",
    "fits_memory", "price_per_hour", "price_source", "prices_captured_at", "est_cost_usd",
    "actual_s", "actual_source", "error_pct", "note",
]
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
    tokens: float
    tokens_source: str
    output: str | None = None  # stage output JSON whose provenance has wall time + hardware
    benchmark: str | None = None  # Snakemake benchmark file of the stage
    loads_hub_model: bool = False  # downloads the base weights from the hub
    ships_checkpoint: bool = False  # its input checkpoint is copied to a rented instance
    writes_checkpoint: bool = False  # saves (and ships back) a full checkpoint
    train_shape: dict[str, Any] | None = None  # batch_size, grad_accum, max_seq_len (train)


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
    peak_memory_gb: float | None = None
    tokens_per_step: float | None = None
    train_shape: dict[str, Any] | None = None


@dataclass
class Reference:
    """data/gpu_measurements.yaml: GPU specs, model shapes, task sizes, measured throughput."""

    gpus: dict[str, dict[str, Any]]
    models: dict[str, dict[str, Any]]
    tasks: dict[str, dict[str, Any]]
    tokens_per_request: dict[str, Any]
    measurements: list[Measurement]
    path: str

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Reference":
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
                    kind=m["kind"], policy=m.get("policy"), gpu=m["gpu"], params=float(m["params"]),
                    tokens_per_s=float(m["tokens_per_s"]), source=f"{m['source']} [{p.name}]",
                    origin="table", peak_memory_gb=m.get("peak_memory_gb"),
                    tokens_per_step=m.get("tokens_per_step"),
                )
            )
        return cls(
            gpus=data["gpus"], models=data.get("models") or {}, tasks=data.get("tasks") or {},
            tokens_per_request=data.get("tokens_per_request") or {}, measurements=ms, path=str(p),
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


def load_config(path: str | os.PathLike, schemas: Iterable[str | os.PathLike] = ()) -> dict:
    """Read a pipeline config and fill defaults from the JSON schemas (plan fragment included)."""
    from snakemake.utils import validate

    p = Path(path)
    if not p.exists():
        raise PlanError(f"config file {p} does not exist")
    config = yaml.safe_load(p.read_text()) or {}
    for schema in schemas:
        if Path(schema).exists():
            validate(config, str(schema), set_default=True)
    if "plan" not in config:
        raise PlanError(f"config {p} has no 'plan' block after applying the schemas {list(schemas)}")
    return config


def parse_setups(plan: dict[str, Any]) -> list[Setup]:
    setups = []
    for i, s in enumerate(plan.get("setups") or []):
        if "gpu" not in s:
            raise PlanError(f"plan.setups[{i}] lacks 'gpu' (a Vast gpu_name such as 'H100 SXM', or 'cpu')")
        count = int(s.get("count", 1))
        if count < 1:
            raise PlanError(f"plan.setups[{i}].count must be >= 1, got {count}")
        setups.append(Setup(str(s["gpu"]), count, bool(s.get("local", False)), s.get("price_per_hour")))
    if not setups:
        raise PlanError("plan.setups is empty: list at least one {gpu, count}")
    return setups


# ------------------------------------------------------------------- model size


def count_params(text_config: Any) -> int:
    """Parameters of a causal LM built on the meta device (no memory, tied weights counted once)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

    if isinstance(text_config, dict):
        kw = dict(text_config)
        text_config = AutoConfig.for_model(kw.pop("model_type"), **kw)
    assert isinstance(text_config, PretrainedConfig)
    if hasattr(text_config, "get_text_config"):
        text_config = text_config.get_text_config()
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(text_config)
    return sum(p.numel() for p in model.parameters())


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
    across GPUs it is scaled by peak BF16 FLOP/s, never between CPU and GPU. Preference: same GPU,
    same policy, this pipeline's own outputs over the measurements table.
    """
    target_peak, peak_src = ref.peak_flops(gpu, plan)
    best, best_key = None, None
    for m in ms:
        if m.kind != stage.kind or abs(m.params - params) > 0.05 * params:
            continue
        if (m.gpu == CPU) != (gpu == CPU):
            continue
        if m.gpu != gpu and (target_peak is None or ref.peak_flops(m.gpu, plan)[0] is None):
            continue
        key = (m.gpu == gpu, m.policy == stage.policy, m.origin == "pipeline")
        if best_key is None or key > best_key:
            best, best_key = m, key
    if best is not None:
        policy_note = "" if best.policy == stage.policy else f", policy {best.policy} (none for {stage.policy})"
        if best.gpu == gpu:
            return Throughput(best.tokens_per_s, f"measured on {gpu}{policy_note}: {best.source}", best)
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


def snapshot_price(setup: Setup, snap: dict[str, Any] | None) -> Price:
    if snap is None:
        return Price(None, "no price: no VAST_API_KEY for live offers and no offers snapshot file", None)
    where = f"snapshot {snap['path']} ({snap['captured_at']}; {snap.get('source', 'source not stated')})"
    offers = [o for o in snap["offers"] if o["gpu_name"] == setup.gpu]
    exact = [o for o in offers if int(o["num_gpus"]) == setup.count]
    if exact:
        o = min(exact, key=lambda o: o["dph_total"])
        note = f"; {o['note']}" if o.get("note") else ""
        return Price(float(o["dph_total"]), f"{where}: {setup.label} offer{note}", snap["captured_at"])
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


def live_prices(setups: list[Setup], vast_settings: dict[str, Any]) -> dict[Setup, Price]:
    """Cheapest on-demand Vast offer per setup, searched with the executor plugin's own query.

    The query is built by snakemake-executor-plugin-vastai (``build_offer_query``) from the same
    settings (``plan.vast``: reliability, datacenter, search_query, ...), so the price is that of
    the instance the pipeline would rent. ``VAST_URL`` selects the API server (tests use a fake).
    """
    from snakemake_executor_plugin_vastai import ExecutorSettings, build_offer_query
    from vastai import VastAI

    settings = ExecutorSettings(**vast_settings)
    client = VastAI(api_key=os.environ["VAST_API_KEY"], server_url=os.environ.get("VAST_URL"), retry=1)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    out: dict[Setup, Price] = {}
    for s in setups:
        if s.gpu == CPU:
            continue
        query = build_offer_query(settings, {"gpu": s.count, "gpu_model": s.gpu}, 0)
        try:
            offers = client.search_offers(query=query, type="on-demand", order=settings.order,
                                          limit=20, storage=settings.disk)
        except Exception as exc:  # network, auth, API errors: say so in price_source
            out[s] = Price(None, f"no price: live Vast search failed ({type(exc).__name__}: {exc})", now)
            continue
        offers = [o for o in offers or [] if o.get("dph_total") is not None]
        if not offers:
            out[s] = Price(None, f"no price: no live Vast offer matches '{query}'", now)
            continue
        o = min(offers, key=lambda o: o["dph_total"])
        out[s] = Price(float(o["dph_total"]),
                       f"vast live {now}: cheapest of {len(offers)} offers for '{query}' (offer {o.get('id')})",
                       now)
    return out


def resolve_prices(setups: list[Setup], plan: dict[str, Any]) -> dict[Setup, Price]:
    """Per setup: the user's own price, else live offers (if a key is set), else the snapshot."""
    mode = plan["prices"]
    snap = load_snapshot(plan["offers_snapshot"]) if mode in ("auto", "snapshot") else None
    live: dict[Setup, Price] = {}
    if mode == "vast" or (mode == "auto" and os.environ.get("VAST_API_KEY")):
        if not os.environ.get("VAST_API_KEY"):
            raise PlanError("plan.prices is 'vast' but VAST_API_KEY is not set")
        live = live_prices([s for s in setups if s.price_per_hour is None], plan["vast"])
    out = {}
    for s in setups:
        if s.price_per_hour is not None:
            out[s] = Price(float(s.price_per_hour), "config: plan.setups price_per_hour", None)
        elif s.gpu == CPU:
            out[s] = Price(None, "no price: a cpu setup has no rental price (set price_per_hour)", None)
        elif s in live and live[s].per_hour is not None:
            out[s] = live[s]
        elif s in live and mode == "auto":
            fallback = snapshot_price(s, snap)
            fallback.source = f"{live[s].source}; fell back to {fallback.source}"
            out[s] = fallback
        elif s in live:
            out[s] = live[s]
        else:
            out[s] = snapshot_price(s, snap)
    return out


def capture_offers(setups: list[Setup], plan: dict[str, Any], path: str | os.PathLike) -> dict:
    """Write a fresh offers snapshot (the cheapest live offer of every setup) for offline planning."""
    if not os.environ.get("VAST_API_KEY"):
        raise PlanError("--capture-offers needs VAST_API_KEY (live Vast offers)")
    prices = live_prices(setups, plan["vast"])
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    snap = {
        "captured_at": now,
        "method": "maskablate plan --capture-offers: cheapest on-demand offer per setup",
        "source": os.environ.get("VAST_URL") or "https://console.vast.ai",
        "offers": [
            {"gpu_name": s.gpu, "num_gpus": s.count, "dph_total": p.per_hour, "note": p.source}
            for s, p in prices.items() if p.per_hour is not None
        ],
        "missing": [f"{s.label}: {p.source}" for s, p in prices.items() if p.per_hour is None],
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(snap, indent=1) + "\n")
    return snap


# --------------------------------------------------------- measurements of past runs


def _model_params_from_dir(path: str | os.PathLike | None, cache: dict) -> float | None:
    if not path:
        return None
    cfg = Path(path) / "config.json"
    if not cfg.exists():
        return None
    key = cfg.read_text()
    if key not in cache:
        from transformers import AutoConfig

        cache[key] = float(count_params(AutoConfig.from_pretrained(str(path))))
    return cache[key]


def pipeline_measurements(
    stages: list[Stage], ref: Reference, plan: dict, study: "Study"
) -> list[Measurement]:
    """Throughput this pipeline measured in earlier runs: summaries, metrics, benchmark files.

    The model size of each run is read from the checkpoint it wrote or evaluated (config.json), so a
    results/ folder left by another config (the embedded tiny model) cannot pose as the 3B model.
    Wall times include model loading: the modelled job overhead is subtracted (at most half).
    """
    out: list[Measurement] = []
    cache: dict = {}
    for st in stages:
        if not st.output or not Path(st.output).exists():
            continue
        data = _read_json(Path(st.output)) or {}
        prov = data.get("provenance") or {}
        hw = hardware_setup(prov, ref)
        if hw is None:
            continue
        gpu, n = hw
        run_id = prov.get("run_id") or data.get("run_id")
        if st.kind == "train":
            tp = data.get("throughput") or {}
            params = _model_params_from_dir(Path(st.output).parent / "final", cache) or study.model_dir_params(
                Path(st.output).parent, cache)
            tok_s = tp.get("train_tokens_per_s")
            if params is None or not tok_s:
                continue
            steps = data.get("steps_done") or 0
            per_step = data.get("tokens_seen") / steps if steps and data.get("tokens_seen") else None
            out.append(Measurement(
                kind="train", policy=data.get("policy") or st.policy, gpu=gpu, params=params,
                tokens_per_s=float(tok_s) / n, origin="pipeline", run_id=run_id,
                tokens_per_step=per_step, train_shape={k: (data.get("params") or {}).get(k)
                                                       for k in ("batch_size", "grad_accum", "max_seq_len")},
                source=f"{st.output} (train_tokens_per_s {float(tok_s):.4g} on {n}x {gpu}, run {run_id})",
            ))
            continue
        params = study.params_for_output(data, st, cache)
        wall = prov.get("wall_time_s")
        bench = benchmark_seconds(st.benchmark) if st.benchmark else None
        secs, what = (wall, "provenance wall_time_s") if wall else (bench, f"benchmark {st.benchmark}")
        if not secs or params is None:
            continue
        tokens, _ = study.tokens_of_output(st, data)
        overhead = job_overhead(st, Setup(gpu, n, local=True), params, plan)[0]
        compute = max(secs - overhead, 0.5 * secs)
        out.append(Measurement(
            kind=st.kind, policy=st.policy, gpu=gpu, params=params, tokens_per_s=tokens / compute / n,
            origin="pipeline", run_id=run_id,
            source=f"{st.output} ({what} {secs:.4g} s - modelled load {secs - compute:.3g} s for "
                   f"{tokens:.4g} tokens on {n}x {gpu}, run {run_id})",
        ))
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
        parts.append((f"{saves} save(s)", weights_mb / o["disk_mb_s"] + (saves - 1) * state_mb / o["disk_mb_s"]))
    total = sum(v for _, v in parts)
    return total, " + ".join(f"{k} {v:.0f}" for k, v in parts)


def rental_overhead(stage: Stage, setup: Setup, params: float, plan: dict) -> tuple[float, str]:
    """Seconds a rented instance is billed outside the job: boot, shipping, checkpoint transfers."""
    if setup.local:
        return 0.0, "local"
    o = plan["overheads"]
    weights_mb = params * plan["bytes_per_param"] / 1e6
    parts = [("boot", o["boot_s"]), ("setup", o["setup_s"])]
    if stage.ships_checkpoint:
        parts.append(("ckpt in", weights_mb / o["transfer_mb_s"]))
    if stage.writes_checkpoint:
        parts.append(("ckpt out", weights_mb / o["transfer_mb_s"]))
    return sum(v for _, v in parts), " + ".join(f"{k} {v:.0f}" for k, v in parts)


def memory_need_gb(stage: Stage, params: float, tp: Throughput, plan: dict) -> tuple[float, str]:
    m = tp.measurement
    if m is not None and m.peak_memory_gb and abs(m.params - params) <= 0.05 * params:
        return float(m.peak_memory_gb), f"measured peak {m.peak_memory_gb:g} GB"
    per = plan["memory_bytes_per_param"][stage.kind]
    return params * per / 1e9, f"{per:g} B/param (plan.memory_bytes_per_param.{stage.kind})"


# ------------------------------------------------------------------------- table


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), nd)


def estimate(study: "Study", setups: list[Setup], prices: dict[Setup, Price], ref: Reference,
             measurements: list[Measurement]) -> pd.DataFrame:
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
            need, need_what = memory_need_gb(st, study.params, tp, plan)
            mem = None if s.gpu == CPU else (ref.gpus.get(s.gpu) or {}).get("memory_gb")
            fits = "n/a" if mem is None else ("yes" if need <= mem else "no")
            notes = [f"job overhead: {job_what}", f"rental overhead: {rent_what}",
                     f"memory: {need:.3g} GB needed ({need_what})" + (f" vs {mem} GB" if mem else "")]
            if s.count > 1:
                notes.append(f"speedup 1 + ({s.count}-1) x {eff:g} (plan.scaling.{st.kind})")
            compute = st.tokens / (tp.tok_s_per_gpu * speedup) if tp.tok_s_per_gpu else None
            if fits == "no":
                notes.insert(0, f"does not fit: needs {need:.3g} GB per GPU, {s.gpu} has {mem} GB")
                compute = None
            est_job = None if compute is None else compute + job_s
            est = None if est_job is None else est_job + rent_s
            cost = None if est is None or price.per_hour is None else est / 3600 * price.per_hour
            stage_rows.append(dict(
                setup=s.label, gpu=s.gpu, gpus=s.count, stage=st.id, kind=st.kind, model=st.model,
                policy=st.policy, tokens=_r(st.tokens, 0), tokens_source=st.tokens_source,
                tok_s_per_gpu=_r(tp.tok_s_per_gpu), throughput_source=tp.source, speedup=_r(speedup, 3),
                compute_s=_r(compute), job_overhead_s=_r(job_s), rental_overhead_s=_r(rent_s),
                est_job_s=_r(est_job), est_s=_r(est), fits_memory=fits,
                price_per_hour=price.per_hour, price_source=price.source,
                prices_captured_at=price.captured_at, est_cost_usd=_r(cost, 2),
                note="; ".join(notes),
                _measured_run_id=tp.measurement.run_id if tp.measurement else None,
            ))
        rows += stage_rows
        missing = [r["stage"] for r in stage_rows if r["est_s"] is None]
        unpriced = price.per_hour is None
        total_s = None if missing else sum(r["est_s"] for r in stage_rows)
        rows.append(dict(
            setup=s.label, gpu=s.gpu, gpus=s.count, stage=TOTAL, kind="", model="", policy="",
            tokens=_r(sum(st.tokens for st in study.stages), 0), tokens_source="sum of the stages",
            est_s=_r(total_s), est_job_s=_r(None if missing else sum(r["est_job_s"] for r in stage_rows)),
            compute_s=_r(None if missing else sum(r["compute_s"] for r in stage_rows)),
            price_per_hour=price.per_hour, price_source=price.source,
            prices_captured_at=price.captured_at,
            est_cost_usd=_r(None if total_s is None or unpriced else total_s / 3600 * price.per_hour, 2),
            note=("stages run one after another, each on its own instance"
                  + (f"; no estimate for {', '.join(missing)}" if missing else "")
                  + ("; no price" if unpriced else "")),
        ))
    df = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in df:
            df[c] = None
    return df[COLUMNS + ["_measured_run_id"]]


@dataclass
class Actual:
    seconds: float
    source: str
    setup: Setup
    run_id: str | None


def collect_actuals(study: "Study", ref: Reference) -> dict[str, Actual]:
    """Per stage that ran: job seconds (benchmark file, else provenance wall time) and its hardware."""
    out = {}
    for st in study.stages:
        if not st.output or not Path(st.output).exists():
            continue
        data = _read_json(Path(st.output)) or {}
        prov = data.get("provenance") or {}
        hw = hardware_setup(prov, ref)
        if hw is None:
            continue
        bench = benchmark_seconds(st.benchmark) if st.benchmark else None
        if bench is not None:
            secs, src = bench, f"benchmark {st.benchmark}"
        elif prov.get("wall_time_s"):
            secs, src = float(prov["wall_time_s"]), f"provenance wall_time_s of {st.output}"
        else:
            continue
        # Snakemake runs it where it is: a cpu run or a GPU of this machine is "local".
        out[st.id] = Actual(secs, src, Setup(hw[0], hw[1], local=True), prov.get("run_id"))
    return out


def add_actuals(df: pd.DataFrame, actuals: dict[str, Actual]) -> pd.DataFrame:
    """Fill actual_s / actual_source / error_pct on the row of the setup each stage ran on.

    ``error_pct = 100 * (est_job_s - actual_s) / actual_s`` (positive: over-estimate). The job
    time excludes instance boot and shipping, which no benchmark file measures.
    """
    df = df.copy()
    for col in ("actual_s", "error_pct"):
        df[col] = df[col].astype("float64")
    df["actual_source"] = df["actual_source"].astype("object")
    gpu_of = {sid: a.setup for sid, a in actuals.items()}
    for sid, a in actuals.items():
        hit = (df["stage"] == sid) & (df["gpu"] == a.setup.gpu) & (df["gpus"] == a.setup.count)
        if not hit.any():
            continue
        i = df.index[hit][0]
        df.loc[i, "actual_s"] = round(a.seconds, 1)
        df.loc[i, "actual_source"] = a.source
        est = df.loc[i, "est_job_s"]
        if est is not None and not pd.isna(est):
            df.loc[i, "error_pct"] = round(100 * (est - a.seconds) / a.seconds, 1)
        if a.run_id and df.loc[i, "_measured_run_id"] == a.run_id:
            df.loc[i, "note"] = "estimate used this run's own measurement (not a forecast); " + str(df.loc[i, "note"])
    for label in df["setup"].unique():
        stage_rows = (df["setup"] == label) & (df["stage"] != TOTAL)
        done = df[stage_rows & df["actual_s"].notna()]
        if len(done) and len(done) == stage_rows.sum():
            i = df.index[(df["setup"] == label) & (df["stage"] == TOTAL)][0]
            df.loc[i, "actual_s"] = round(done["actual_s"].sum(), 1)
            df.loc[i, "actual_source"] = "sum of the stages"
            if done["est_job_s"].notna().all():
                est = done["est_job_s"].sum()
                df.loc[i, "error_pct"] = round(100 * (est - df.loc[i, "actual_s"]) / df.loc[i, "actual_s"], 1)
    del gpu_of
    return df


# ------------------------------------------------------------------- the study


#: Where the pipeline writes each stage's output and Snakemake benchmark (docs/design.md).
OUTPUTS = {
    "eval": "eval/{model}/{policy}/metrics.json",
    "finetune": "finetune/{variant}/summary.json",
    "leakage": "leakage/{variant}.json",
    "prepare_model": "model/base/summary.json",
}
BENCHMARKS = {
    "eval": "eval/{model}/{policy}.tsv",
    "finetune": "finetune/{variant}.tsv",
    "leakage": "leakage/{variant}.tsv",
    "prepare_model": "prepare_model.tsv",
}


class Study:
    """The stages of one config, with the tokens each processes and the model size behind them."""

    def __init__(self, config: dict[str, Any], ref: Reference, *, results: str | None = None,
                 benchmarks: str | None = None, benchmark_patterns: dict[str, str] | None = None):
        self.config, self.plan, self.ref = config, config["plan"], ref
        self.results = Path(results or self.plan["results"])
        bdir = Path(benchmarks or self.plan["benchmarks"])
        self.benchmark_patterns = {k: str(bdir / v) for k, v in BENCHMARKS.items()}
        self.benchmark_patterns.update(benchmark_patterns or {})
        self.params, self.params_source = self._base_params()
        self.stages = self._stages()

    # -- model size
    def _base_params(self) -> tuple[float, str]:
        m = self.config["model"]
        if m.get("source", "embedded") == "embedded":
            from maskablate.modeling import tiny_ministral3_config

            arch = {**self._embedded_defaults("arch"), **((m.get("embedded") or {}).get("arch") or {})}
            return float(count_params(tiny_ministral3_config(**arch))), "embedded tiny Ministral-3 (config arch)"
        path = m["path"]
        if (Path(path) / "config.json").exists():
            return _model_params_from_dir(path, {}), f"{path}/config.json"
        try:  # a hub id already in the local HF cache
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(path, revision=m.get("revision"), local_files_only=True)
            return float(count_params(cfg)), f"{path} config.json (local HF cache)"
        except (OSError, ValueError):
            pass
        if path in self.ref.models:
            spec = self.ref.models[path]
            return float(count_params(spec["text_config"])), f"{spec['source']} [{Path(self.ref.path).name}]"
        raise PlanError(
            f"model size of {path!r} unknown offline: no config.json there, none in the HF cache, and "
            f"no entry under 'models:' in {self.ref.path}"
        )

    def model_dir_params(self, directory: Path, cache: dict) -> float | None:
        return _model_params_from_dir(directory, cache)

    def params_for_output(self, data: dict, stage: Stage, cache: dict) -> float | None:
        """Model size behind an eval/probe output: its model dir, else the config's base model."""
        path = (data.get("model") or {}).get("path")
        found = _model_params_from_dir(path, cache) if path else None
        if found:
            return found
        if stage.model == "base" and self.config["model"].get("source") != "embedded":
            return self.params  # a hub id: the config names the model
        return None

    @staticmethod
    def _embedded_defaults(section: str) -> dict[str, Any]:
        try:
            from maskablate import embedded
        except ImportError:
            return {}
        return dict((getattr(embedded, "DEFAULTS", {}) or {}).get(section) or {})

    # -- stages
    def _out(self, group: str, **wc: str) -> tuple[str, str]:
        return str(self.results / OUTPUTS[group].format(**wc)), self.benchmark_patterns[group].format(**wc)
