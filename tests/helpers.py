"""Helpers shared by several test modules (a test module imports helpers from here, never from
another test module): shipped configs, dry runs and their job lists, the planner's fixture runs,
fabricated bridge and claims inputs, a tiny Llama and Mistral3, the training tests' fast params and
learnable SFT rows, the typed params' check against their schemas. Fixtures shared across modules
live in conftest.py; checkout copies and the embedded run in checkout.py."""

from __future__ import annotations

import contextlib
import copy
import os
import random
import re
import signal
import subprocess
import types
import typing
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

#: JSON nested 100k deep: well-formed, but Python's parser recurses per level (RecursionError),
#: what a user or host can put in any JSON file a run reads back
DEEP_JSON = '{"a":' * 100_000 + "1" + "}" * 100_000

# ---------------------------------------------------------------- shipped configs


def shipped_config(name: str) -> dict:
    """config/<name> as YAML reads it (no defaults filled)."""
    return yaml.safe_load((ROOT / "config" / name).read_text())


#: the page that shows a user's own lm-eval task, its files in fenced blocks (```yaml file=...)
OWN_TASK_DOC = ROOT / "docs" / "own-task.md"


def own_task_files() -> dict[str, str]:
    """Path -> text of every fenced block of docs/own-task.md that names its file."""
    return dict(re.findall(r"```\w+ file=(\S+)\n(.*?)```", OWN_TASK_DOC.read_text(), re.S))


def write_own_task(wd: Path) -> None:
    """docs/own-task.md's files written into ``wd`` as a user copies them."""
    for name, text in own_task_files().items():
        (wd / name).parent.mkdir(parents=True, exist_ok=True)
        (wd / name).write_text(text)


def seeded(**seeds) -> dict:
    """The shipped default config with ``seeds`` set on the named mask variants."""
    cfg = shipped_config("config.yaml")
    for name, s in seeds.items():
        cfg["mask"]["finetune"]["variants"][name]["seeds"] = s
    return cfg


#: the mask study at its real shape on other model families: overlays read after
#: config/ministral3b.yaml -> (hub id, model_type, parameters as the planner counts them from the
#: id's 'models:' entry in config/gpu_measurements.yaml)
FAMILY_OVERLAYS = {
    "llama3.2-3b.yaml": ("meta-llama/Llama-3.2-3B-Instruct", "llama", 3.213e9),
    "qwen2.5-3b.yaml": ("Qwen/Qwen2.5-3B-Instruct", "qwen2", 3.086e9),
    "gemma3-1b.yaml": ("google/gemma-3-1b-it", "gemma3_text", 1.000e9),
}


#: The mask study's shipped config sets (file names under config/, read in order, a later one
#: merged over the earlier ones): the embedded default and its overlays, the real study and its
#: overlays, the smoke run. The first two are the base configs (the fast tier dry-runs them).
MASK_CONFIG_SETS = [
    ["config.yaml"],
    ["ministral3b.yaml"],
    ["config.yaml", "seeds3.yaml"],
    ["config.yaml", "models-embedded.yaml"],
    ["ministral3b.yaml", "ministral3b-original.yaml"],
    ["ministral3b.yaml", "ministral8b.yaml"],
    ["ministral3b.yaml", "families3b.yaml"],
    ["ministral3b-smoke.yaml"],
    *(["ministral3b.yaml", name] for name in FAMILY_OVERLAYS),
]


#: The config files of the suite's multi-model run (conftest `models_run`), in order: the default,
#: the overlay, the suite's smaller size of it (absolute: the run's checkout has no tests/).
MODELS_RUN_CONFIGS = (
    "config/config.yaml",
    "config/models-embedded.yaml",
    str(ROOT / "tests" / "fixtures" / "models-small.yaml"),
)


def validated(cfg: dict) -> dict:
    """A validated copy of cfg (defaults filled, as the Snakefile does)."""
    from ablate.core.config import validate_config

    cfg = copy.deepcopy(cfg)
    validate_config(cfg)
    return cfg


def edit(path: str, value, *, delete: bool = False) -> dict:
    """The default config with the key at dotted ``path`` set to value (or deleted)."""
    cfg = shipped_config("config.yaml")
    *parents, last = path.split(".")
    node = cfg
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if delete:
        del node[last]
    else:
        node[last] = value
    return cfg


def bridge_config(name: str = "config.yaml") -> dict:
    """The bridge section of a shipped config, validated (defaults filled) like the Snakefile does."""
    return validated(shipped_config(name))["bridge"]


# ---------------------------------------------------------------- Snakemake, dry runs


def dry_run(
    wd: Path, *args: str, timeout: float = 120, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`python -m snakemake ARGS` in wd (a workflow copy without src/ runs the installed library),
    with ``env`` over this process's environment."""
    from checkout import snakemake

    return snakemake(wd, *args, timeout=timeout, env=env)


def dry_run_with(wd: Path, cfg: dict, *base: str) -> subprocess.CompletedProcess:
    """`snakemake -n` with ``cfg`` as the config file, merged over the config files ``base``. The
    file is written beside config/, not in it: a later test's message that names the config file
    of a results folder (config/*.yaml) must not find this one."""
    path = wd / "edited.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dry_run(wd, "-n", "--configfile", *base, str(path))


def job_counts(stdout: str) -> dict[str, int]:
    """{rule: count} of the job table a dry run prints."""
    counts, table = {}, False
    for line in stdout.splitlines():
        if line.startswith("job ") and "count" in line:
            table = True
            continue
        if table:
            parts = line.split()
            if parts and parts[0] == "total":
                break
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
    return counts


#: aggregate rules that follow any change of what they collect (not stages)
AGGREGATES = {"all", "plan", "plan_estimate", "status"}


def dry_run_fields(stdout: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, {field: value}) of every job a dry run lists (fields: input, output, log, ...)."""
    jobs, rule, fields = [], None, {}
    for line in stdout.splitlines() + [""]:
        m = re.match(r"(?:local)?rule (\w+):$", line)
        if m or not line.startswith("    "):
            if rule:
                jobs.append((rule, fields))
            rule, fields = (m.group(1) if m else None), {}
            continue
        key, _, value = line.strip().partition(": ")
        fields[key] = value
    return jobs


def files_of(value: str) -> list[str]:
    """The files of a dry run's `input:` or `output:` field, in order."""
    return [f.strip() for f in value.split(",")] if value else []


def planned_jobs(out: str) -> set[tuple[str, str | None]]:
    """(rule, first output) of every job a dry run lists, aggregates left out."""
    return {
        (rule, next(iter(files_of(f.get("output", ""))), None))
        for rule, f in dry_run_fields(out)
        if rule not in AGGREGATES
    }


def dry_run_jobs(stdout: str) -> list[tuple[str, frozenset[str], str | None]]:
    """(rule, outputs, log) of every job a dry run lists."""
    return [
        (rule, frozenset(files_of(f.get("output", ""))), f.get("log"))
        for rule, f in dry_run_fields(stdout)
    ]


def planned_outputs(wd: Path, *args: str) -> set[str]:
    """The output files of every job `snakemake -n ARGS` plans in wd."""
    from checkout import snakemake

    r = snakemake(wd, "-n", *args, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    outs = set()
    for line in r.stdout.splitlines():
        if line.strip().startswith("output: "):
            outs |= {f.strip() for f in line.split(":", 1)[1].split(",")}
    return outs


def disagreements(rows: list, planned: set[str]) -> list[tuple[str, str, bool]]:
    """(job, STATUS's status, whether Snakemake plans it) of each job where they disagree: a job
    is done in STATUS exactly when Snakemake does not plan it."""
    out = []
    for r in rows:
        runs = bool(set(r.job.outputs.values()) & planned)
        if (r.status == "done") == runs:
            out.append((f"{r.job.study}:{r.job.name}", r.status, runs))
    return out


def load_workflow(wd: Path, configfile: str | None = None):
    """The parsed workflow (Snakemake's API) with its DAG built, as a run would see it.

    In this process: the Snakefile's parse-time settings (rules/common.smk exports the workflow
    folder for provenance) are undone afterwards, so later tests see the environment they had."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    environ, cwd = dict(os.environ), os.getcwd()
    configs = ConfigSettings(configfiles=[wd / configfile]) if configfile else ConfigSettings()
    try:
        with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
            wf_api = api.workflow(
                resource_settings=ResourceSettings(),
                config_settings=configs,
                snakefile=wd / "Snakefile",
                workdir=wd,
            )
            wf_api.dag()
            return wf_api._workflow
    finally:
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)


# ---------------------------------------------------------------- the planner's fixture runs

PLANNER_FIXTURES = ROOT / "tests" / "fixtures" / "planner"
#: a complete cpu run of config/config.yaml (synthetic numbers in the real file formats)
EMBEDDED_RUN = PLANNER_FIXTURES / "embedded_cpu"
#: finetune 3B and eval base/causal of config/ministral3b.yaml on one H200
MINISTRAL_RUN = PLANNER_FIXTURES / "ministral_h200"
SETUPS = [
    {"gpu": "cpu"},
    {"gpu": "H200"},
    {"gpu": "H100 SXM"},
    {"gpu": "H100 SXM", "count": 8},
    {"gpu": "RTX 4090"},
]


def planner_config(name: str, **plan) -> dict:
    """config/<name> as the planner reads it, planned for SETUPS (and ``plan``'s keys)."""
    from ablate.core import planner

    config = planner.load_config(ROOT / "config" / name)
    config["plan"].update({"setups": SETUPS, **plan})
    return config


def row(t, setup: str, job: str):
    """The one row of plan table t for that setup and job."""
    hit = t[(t["setup"] == setup) & (t["job"] == job)]
    assert len(hit) == 1, (setup, job)
    return hit.iloc[0]


def load_unpacked(name: str, tmp_path: Path, defaults: dict | None = None, **plan) -> dict:
    """A shipped GPU config with packing off (finetune.defaults.packing: false), or with other
    ``defaults`` for its finetunes."""
    from ablate.core import planner

    cfg = yaml.safe_load((ROOT / "config" / name).read_text())
    cfg["mask"]["finetune"]["defaults"].update(defaults or {"packing": False})
    out = tmp_path / f"edited-{name}"
    out.write_text(yaml.safe_dump(cfg))
    config = planner.load_config(out)
    config["plan"].update({"setups": SETUPS, **plan})
    return config


def check_arithmetic(t) -> None:
    """Every job row of plan table t obeys the model: est_s = rental + job + tokens / (rate x
    speedup)."""
    import pandas as pd
    import pytest

    from ablate.core import planner

    for _, r in t[(t["job"] != planner.TOTAL) & t["est_s"].notna()].iterrows():
        compute = r["tokens"] / (r["tok_s_per_gpu"] * r["speedup"])
        assert r["compute_s"] == pytest.approx(compute, rel=1e-4, abs=0.1)
        restarts = 0.0 if pd.isna(r["interruption_s"]) else r["interruption_s"]
        assert r["est_s"] == pytest.approx(
            r["compute_s"] + r["job_overhead_s"] + r["rental_overhead_s"] + restarts, abs=0.2
        )
        if not pd.isna(r["price_per_hour"]):
            assert r["est_cost_usd"] == pytest.approx(
                r["est_s"] / 3600 * r["price_per_hour"], abs=0.01
            )


# ---------------------------------------------------------------- fabricated study inputs

#: the mask study's claims settings (config's mask.claims)
CLAIMS_CFG = dict(
    prefix_variant="3B",
    causal_variant="3A",
    long_variant="5B",
    side_effect_margin=0.05,
    learned_margin=0.10,
    learned_margin_macro=0.20,
    min_drop=0.10,
    min_tasks_hurt=3,
    long_margin=0.02,
    alpha=0.05,
    min_n=20,
)

#: a resolved bridge grid's entries (2c reuses 1a's run)
BRIDGE_ENTRIES = {
    "1a": dict(run_id="r1a", same_as=None, dataset="gsm8k", K=8, direction="source->target"),
    "1b": dict(run_id="r1b", same_as=None, dataset="gsm8k", K=8, direction="source->target"),
    "2a": dict(run_id="r2a", same_as=None, dataset="gsm8k", K=4, direction="source->target"),
    "2b": dict(run_id="r2b", same_as=None, dataset="gsm8k", K=6, direction="source->target"),
    "2c": dict(run_id="r1a", same_as="1a", dataset="gsm8k", K=8, direction="source->target"),
}


def run_summary(run_id: str, peak: float, final: float, K: int) -> dict:
    """A bridge run's summary record."""
    return dict(
        run_id=run_id,
        K=K,
        peak=peak,
        peak_step=40,
        final=final,
        degradation=peak - final,
        mean_prompt_tokens=24.0,
        compression_ratio=24.0 / K,
        steps_done=80,
        stop_reason="max_steps",
        wall_s=10.0,
        curve=[{"step": 0, "accuracy": 0.0}, {"step": 40, "accuracy": peak}],
    )


# ---------------------------------------------------------------- models


def tiny_llama(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, vocab: int):
    """A random-init Llama of that shape (seed 0, eval mode, pad id 0)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def tiny_mistral3(text_config):
    """A random-init tiny Mistral3ForConditionalGeneration (the study model's class: a pixtral
    vision tower around ``text_config``, a ministral3 config), seeded."""
    import torch
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    vision = dict(
        model_type="pixtral",
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        head_dim=8,
        image_size=32,
        patch_size=16,
    )
    cfg = Mistral3Config(text_config=text_config, vision_config=vision, spatial_merge_size=1)
    torch.manual_seed(0)
    return Mistral3ForConditionalGeneration(cfg)


# ---------------------------------------------------------------- training runs (tests of the loop)

# Small and fast: a few steps of the real tiny Ministral-3 (vocab 131072) on CPU.
FAST = dict(
    max_steps=6,
    batch_size=4,
    grad_accum=1,
    learning_rate=1e-2,
    lr_scheduler="constant",
    optim="adamw_torch",
    warmup_ratio=0.0,
    max_seq_len=96,
    eval_size=4,
    eval_steps=3,
    eval_batch_size=4,
    save_steps=3,
    logging_steps=1,
    no_learning_steps=0,
    plateau_patience=0,
)
NO_LEAK = {
    "policy": None,
    "leaks": False,
    "loss_causal": 2.0,
    "loss_policy": 2.0,
    "ratio": 1.0,
    "threshold": 0.5,
    "n_examples": 4,
}


def no_leak(policy):
    return {**NO_LEAK, "policy": policy}


def causal_finetune(params: dict, model_path, data, out_dir) -> dict:
    """The mask study's causal finetune of ``params`` with the leakage probe's pass: its summary."""
    from ablate.mask.training.entries import FinetuneSpec, finetune

    return finetune(
        FinetuneSpec.parse("causal", params),
        model_path=model_path,
        data=data,
        out_dir=out_dir,
        probe_result=no_leak("causal"),
    )


def synthetic_rows(n: int = 40, seed: int = 0) -> list[dict]:
    """Alpaca rows whose response is a deterministic function of the prompt (learnable in a few steps)."""
    rng = random.Random(seed)
    words = ["apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "comet"]
    rows = []
    for i in range(n):
        w = rng.choice(words)
        if i % 2:
            rows.append(
                {
                    "instruction": f"Repeat the word {w} three times.",
                    "input": "",
                    "output": f"{w} {w} {w}",
                }
            )
        else:
            rows.append(
                {
                    "instruction": "Name the colour of the object.",
                    "input": f"a {w}",
                    "output": f"The {w} is {'red' if len(w) == 5 else 'blue'}.",
                }
            )
    return rows


def weights(path):
    """A checkpoint's tensors, loaded (and verified) as every stage loads them."""
    from ablate.core.models.modeling import load_causal_lm

    return {k: v.clone() for k, v in load_causal_lm(path).state_dict().items()}


# ---------------------------------------------------------------- typed params
def admits(hint, value) -> bool:
    """Whether a schema's value (a default, an enum value) is one a typed params field's annotation
    holds (TrainParams, MaskParams, BridgeParams against their schemas)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(admits(h, value) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:  # JSON's number: an int too
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def jobs_said(out: str) -> Counter:
    """(rule, what) -> how many jobs said so in a run's output: the one line every job says
    (ablate.core.jobs.JOB_LINE, `[job] <rule> <wildcards>: <text>`), whose text begins `ran`,
    `restored` (ablate.core.jobs.RESTORED_LINE) or `remade` (REMADE_LINE: STATUS, the plan)."""
    from ablate.core.jobs import JOB_LINE, REMADE_LINE, RESTORED_LINE

    head = re.escape(JOB_LINE.split("{label}")[0])
    said = "|".join(["ran", RESTORED_LINE.split()[0], REMADE_LINE.split()[0]])
    lines = re.findall(rf"^{head}(\w+)(?: \S+)?: ({said})", out, flags=re.M)
    return Counter(lines)


def shared(tmp_path_factory, name: str, make) -> Path:
    """The folder ``name`` that ``make(folder)`` fills, once per session: under pytest-xdist the
    first worker to ask makes it, under a file lock in the session's shared temporary folder, and
    the others wait for it."""
    from filelock import FileLock

    if "PYTEST_XDIST_WORKER" not in os.environ:  # no xdist (xdist sets it in each worker)
        folder = tmp_path_factory.mktemp(name)
        make(folder)
        return folder
    base = tmp_path_factory.getbasetemp().parent  # the session's, above each worker's
    folder, done = base / name, base / f"{name}.done"
    with FileLock(str(base / f"{name}.lock")):
        if not done.exists():
            if folder.exists():  # a worker's earlier attempt failed half-way
                import shutil

                shutil.rmtree(folder)
            make(folder)
            done.touch()
    return folder


@contextlib.contextmanager
def sigint_at_default() -> Iterator[None]:
    """The processes started inside get SIGINT at its default, as from a terminal, even where
    this test runs with it ignored (a suite started in the background by a non-interactive shell,
    or under nohup): exec keeps an ignored signal, so such a process would never end on a Ctrl-C,
    and makes a handled one the default."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
