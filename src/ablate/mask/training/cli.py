"""``ablate train finetune|pretrain``: the CLI over :mod:`ablate.mask.training.entries`."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ablate.core.config import ConfigError, check_set_keys
from ablate.core.outputs.checkpoint_integrity import CheckpointError
from ablate.core.training.params import TrainingConfigError, TrainingError
from ablate.core.user_yaml import load_config_file, load_json, load_yaml
from ablate.mask import sft_data
from ablate.mask.commands import train_parser
from ablate.mask.training.entries import FinetuneSpec, finetune, pretrain
from ablate.mask.training.gate import LeakageGateError
from ablate.mask.training.params import resolve_params


def _load_mapping(text: str | None, what: str) -> dict:
    """A JSON/YAML file path or an inline JSON object (a key written twice in either is an
    error, not the second kept)."""
    if not text:
        return {}
    path = Path(text)
    inline = text.lstrip().startswith("{") or not path.exists()
    try:
        if inline:
            data = load_json(text, repr(text))
        elif path.suffix in (".yaml", ".yml"):
            data = load_config_file(path)
        else:
            data = load_json(path.read_bytes(), str(path))
    except ConfigError as exc:  # a key written twice, YAML it cannot read
        raise TrainingConfigError(f"{what}: {exc}") from None
    except ValueError as exc:  # not JSON, or not UTF-8 text
        said = (
            f"{text!r} is neither a file nor a JSON object"
            if inline
            else f"{path} is not a JSON file"
        )
        raise TrainingConfigError(f"{what}: {said} ({exc})") from None
    if not isinstance(data, dict):
        raise TrainingConfigError(f"{what}: expected a mapping, got {type(data).__name__}")
    return data


def _apply_sets(params: dict, sets: list[str]) -> dict:
    """``params`` with each ``--set KEY=VALUE`` (a YAML value) over it."""
    try:
        check_set_keys(sets or [])
        for item in sets or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise TrainingConfigError(f"--set {item!r}: expected KEY=VALUE")
            params[key.strip()] = load_yaml(value, f"--set {item}", value=True)
    except ConfigError as exc:
        raise TrainingConfigError(str(exc)) from None
    return params


def main(argv: list[str] | None = None) -> int:
    args = train_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        params = _apply_sets(_load_mapping(args.params, "--params"), args.set)
        if args.command == "finetune":
            probe_result = _load_mapping(args.probe_result, "--probe-result") or None
            finetune(
                FinetuneSpec.parse(args.policy, params, args.allow_leakage),
                model_path=args.model,
                data=args.data,
                out_dir=args.out,
                probe_result=probe_result,
            )
        else:
            pretrain(
                corpus=args.corpus,
                tokenizer_dir=args.tokenizer,
                arch=_load_mapping(args.arch, "--arch"),
                params=resolve_params(params, "pretrain"),
                out_dir=args.out,
            )
    except LeakageGateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (TrainingError, CheckpointError, sft_data.SFTDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
