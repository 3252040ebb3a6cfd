"""The argument parsers of the mask study's torch commands: ``ablate probe``, ``eval``, ``train``.

Apart from the commands' modules, whose import takes tens of seconds: ``--help`` answers at once."""

from __future__ import annotations

import argparse

from ablate.core import config
from ablate.mask import policies

#: The leakage probe's loss-ratio threshold (why 0.5: :mod:`ablate.mask.leakage`'s docstring).
DEFAULT_THRESHOLD = 0.5
#: The leakage probe's attention backend unless ``--attn-implementation`` says otherwise.
PROBE_ATTN_IMPLEMENTATION = "sdpa"
#: ``ablate eval --protocol`` choices, the schema's (a test holds them to policy_lm.PROTOCOLS).
EVAL_PROTOCOLS: tuple[str, ...] = tuple(
    config.subschema("properties/mask/properties/eval/properties/protocol")["enum"]
)
#: ``ablate eval --softmax-dtype`` choices, likewise (policy_lm.SOFTMAX_DTYPES).
EVAL_SOFTMAX_DTYPES: tuple[str, ...] = tuple(
    config.subschema("properties/mask/properties/eval/properties/softmax_dtype")["enum"]
)


def _policy(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy", required=True, choices=policies.POLICIES, help=policies.policy_help()
    )


def probe_parser() -> argparse.ArgumentParser:
    """``ablate probe`` (defaults: the config schema's ``mask.leakage`` section)."""
    d = config.schema_defaults("properties/mask/properties/leakage")
    p = argparse.ArgumentParser(
        prog="ablate probe",
        description="Label-leakage probe: response-token loss under causal vs a mask policy.",
    )
    p.add_argument("--model", required=True, help="model directory (or hub id)")
    p.add_argument("--data", required=True, help="Alpaca-style .jsonl (instruction, input, output)")
    _policy(p)
    p.add_argument("--out", required=True, help="output JSON")
    p.add_argument(
        "--n",
        type=config.whole_number(1),
        default=d["n_pairs"],
        help="first N rows of --data (default %(default)s)",
    )
    p.add_argument(
        "--threshold",
        type=config.finite_float,
        default=d["threshold"],
        help=f"flag when loss_policy/loss_causal is below this (default {DEFAULT_THRESHOLD})",
    )
    p.add_argument("--revision", help="hub revision of a hub id --model (default: the newest)")
    p.add_argument("--tokenizer", help="tokenizer directory (default: --model)")
    for k in ("max_seq_len", "batch_size"):
        flag = "--" + k.replace("_", "-")
        p.add_argument(flag, type=config.whole_number(1), default=d[k], help="default %(default)s")
    p.add_argument(
        "--dtype",
        default=d["dtype"],
        choices=("float32", "bfloat16", "float16"),
        help="default %(default)s",
    )
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument(
        "--attn-implementation", default=PROBE_ATTN_IMPLEMENTATION, help="default %(default)s"
    )
    return p


def eval_parser() -> argparse.ArgumentParser:
    """``ablate eval``; unset options take the config schema's defaults (``mask.eval``)."""
    ap = argparse.ArgumentParser(
        prog="ablate eval",
        description="Score lm-eval multiple-choice tasks under a mask policy; "
        "write metrics.json and samples.parquet.",
    )
    ap.add_argument("--model", required=True, help="model dir or hub id")
    ap.add_argument("--tasks", required=True, help="comma-separated lm-eval task names")
    _policy(ap)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--task-dir", action="append", default=[], help="folder of local task YAMLs")
    ap.add_argument("--limit", type=config.whole_number(1), default=None, help="docs per task")
    ap.add_argument("--headline", action="append", default=[], metavar="TASK=METRIC")
    ap.add_argument("--model-id", default=None, help="label recorded as model.id")
    ap.add_argument("--revision", default=None)
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--max-batch-tokens", type=config.whole_number(1), default=None)
    ap.add_argument("--no-share-contexts", action="store_true")
    ap.add_argument(
        "--protocol",
        choices=EVAL_PROTOCOLS,
        default=None,
        help="lm_eval (BOS, lm-eval's rows) or original (the original study's: no BOS, the "
        "whole continuation in the forward)",
    )
    ap.add_argument(
        "--softmax-dtype",
        choices=EVAL_SOFTMAX_DTYPES,
        default=None,
        help="float32 (the logits upcast; default) or model (the log-softmax and each sum in the "
        "weights' dtype, as the original study's eval_mcq.py)",
    )
    return ap


def train_parser() -> argparse.ArgumentParser:
    """``ablate train finetune|pretrain``."""
    parser = argparse.ArgumentParser(
        prog="ablate train",
        description="Pretrain or finetune under a mask policy (docs/training.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ft = sub.add_parser("finetune", help="SFT under a mask policy (response-only loss)")
    ft.add_argument("--model", required=True, help="model directory or hub id")
    ft.add_argument("--data", required=True, help="Alpaca .jsonl or datasets id")
    _policy(ft)
    ft.add_argument(
        "--probe-result", help="JSON written by `ablate probe` (else the probe runs here)"
    )
    ft.add_argument(
        "--allow-leakage", action="store_true", help="train under a leaking policy on purpose"
    )
    pt = sub.add_parser("pretrain", help="causal pretraining of a fresh tiny Ministral-3")
    pt.add_argument("--corpus", required=True, help=".jsonl with a 'text' field, or text lines")
    pt.add_argument("--tokenizer", required=True, help="tokenizer directory")
    pt.add_argument("--arch", help="tiny architecture overrides: JSON/YAML file or inline JSON")
    for p in (ft, pt):
        p.add_argument(
            "--out", required=True, help="output directory (final/, summary.json, checkpoints/)"
        )
        p.add_argument(
            "--params",
            help="hyperparameters: JSON/YAML file or inline JSON (unset: the config schema's defaults)",
        )
        p.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="override one parameter"
        )
        p.add_argument("--threads", type=config.whole_number(1), help="torch CPU threads")
    return parser


#: command -> its parser, for the commands whose module is slow to import.
PARSERS = {"probe": probe_parser, "eval": eval_parser, "train": train_parser}
