"""Loading models and tokenizers: the one model loader, attention backends checked per device.

Mistral's Ministral-3 checkpoints are vision-language models, which AutoModelForCausalLM refuses;
every stage here is text-only, so :func:`load_causal_lm` returns the equivalent ``*ForCausalLM``
(the vision tower dropped).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ablate import studies
from ablate.core.outputs import checkpoint_integrity

VLM_MODEL_TYPES = {"mistral3"}


class ModelLoadError(RuntimeError):
    pass


def register_attention(attn_implementation: str) -> None:
    """Make a study's attention backend (``ablate.studies.attention_backends``) known to
    transformers (no-op for transformers' own backends)."""
    backends = studies.attention_backends()
    if attn_implementation in backends:
        importlib.import_module(backends[attn_implementation])


def check_attention_device(attn_implementation: str, device: str | torch.device) -> None:
    """Refuse an attention implementation on a device where torch runs it wrong (CPU
    flex_attention; tests/core/test_upstream_torch.py fails once torch fixes it: then this
    guard can go)."""
    if attn_implementation == "flex_attention" and torch.device(device).type == "cpu":
        raise ModelLoadError(
            "attn_implementation: flex_attention is refused on CPU: torch's CPU flex_attention "
            "has no backward pass (training fails) and has given wrong logits at some sequence "
            "lengths (length 8 off by 2.4 or NaN vs eager). Use sdpa or sdpa_prefix_split on "
            "CPU; flex_attention on a GPU."
        )


def load_tokenizer(path: str | os.PathLike, revision: str | None = None):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), revision=revision)
    except Exception as exc:  # transformers raises several types here
        if Path(path).is_dir():  # a damaged pipeline checkpoint: name the missing/altered file
            checkpoint_integrity.check_before_load(path)
        raise ModelLoadError(f"cannot load a tokenizer from {path}: {exc}") from exc
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _text_lm_from_vlm(path: str, revision, dtype, attn_implementation):
    """Ministral-3 VLM checkpoint -> ``*ForCausalLM`` holding its text weights and lm_head."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    vlm = AutoModelForImageTextToText.from_pretrained(
        path, revision=revision, dtype=dtype, attn_implementation=attn_implementation
    )
    text_config = vlm.config.get_text_config()
    text_config.tie_word_embeddings = getattr(vlm.config, "tie_word_embeddings", False)
    lm = AutoModelForCausalLM.from_config(
        text_config, dtype=dtype, attn_implementation=attn_implementation
    )
    lm.model.load_state_dict(vlm.model.language_model.state_dict())
    lm.lm_head.load_state_dict(vlm.lm_head.state_dict())
    lm.generation_config = vlm.generation_config
    del vlm
    return lm


def load_causal_lm(
    path: str | os.PathLike,
    *,
    revision: str | None = None,
    dtype: torch.dtype | str = "float32",
    attn_implementation: str = "sdpa",
    device: str | torch.device | None = None,
    verify: bool = True,
    config_check: Callable[[Any, str], None] | None = None,
):
    """Load a causal LM (or the text half of a Mistral3 VLM) from a local dir or hub id.
    ``verify``: a local checkpoint's hash manifest is checked, so a damaged one fails here.
    ``config_check(config, attn_implementation)`` sees the config (a local folder's as a dict)
    before any weight file is read, and raises to refuse the model."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    target = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    check_attention_device(attn_implementation, target)
    register_attention(attn_implementation)
    local = Path(path)
    pending = None
    if local.exists():
        if not (local / "config.json").exists():
            raise ModelLoadError(f"{local} has no config.json: not a model directory")
        raw = json.loads((local / "config.json").read_text())
        if config_check is not None:
            config_check(raw, attn_implementation)  # before the hashes read the weights
        if verify:
            # layout checked now, the hashes while the weights load (one pass, overlapped)
            pending = checkpoint_integrity.start_check_before_load(local)
    elif os.sep in str(path) and not _looks_like_hub_id(str(path)):
        raise ModelLoadError(f"model path {path} does not exist")
    # straight to the GPU in the target dtype: no host copy of the weights, no .to() afterwards
    direct = {"device_map": {"": _device_index(device)}} if _is_accelerator(device) else {}
    try:
        config = AutoConfig.from_pretrained(str(path), revision=revision)
        if config_check is not None and not local.exists():
            config_check(config, attn_implementation)
        if config.model_type in VLM_MODEL_TYPES:
            model = _text_lm_from_vlm(str(path), revision, dtype, attn_implementation)
            direct = {}  # built on the host from the VLM's weights: moved below
        else:
            model = AutoModelForCausalLM.from_pretrained(
                str(path),
                revision=revision,
                dtype=dtype,
                attn_implementation=attn_implementation,
                **direct,
            )
    except Exception as exc:
        if pending is not None:
            pending.result()  # a damaged checkpoint: its CheckpointError says best what is wrong
        if isinstance(exc, OSError):
            raise ModelLoadError(
                f"cannot load model {path!r}: {exc}. Offline? Set the model to a local path, or "
                "pre-download it with `huggingface-cli download` on a machine with network."
            ) from exc
        raise
    if pending is not None:
        pending.result()  # never hand out weights whose files fail their recorded hashes
    if device is not None and not direct:
        model.to(device)
    return model


def _is_accelerator(device: str | torch.device | None) -> bool:
    return device is not None and torch.device(device).type not in ("cpu", "meta")


def _device_index(device: str | torch.device) -> int | str:
    """A CUDA device as its index: ``"cuda"`` and ``cuda:0`` would read as two devices to
    transformers (a model-parallel model)."""
    d = torch.device(device)
    if d.type == "cuda":
        return torch.cuda.current_device() if d.index is None else d.index
    return str(d)


def _looks_like_hub_id(s: str) -> bool:
    parts = s.split("/")
    return len(parts) == 2 and all(parts) and not s.startswith((".", "/"))


def verify_loadable(model, path: str | os.PathLike) -> None:
    """Reload ``path`` with the eval stage's loader and compare every tensor with ``model``."""
    reloaded = load_causal_lm(path, dtype=model.dtype, verify=False)
    want, got = model.state_dict(), reloaded.state_dict()
    if set(want) != set(got):
        raise checkpoint_integrity.CheckpointError(
            f"checkpoint {path} reloads with different keys: missing "
            f"{sorted(set(want) - set(got))[:5]}, unexpected {sorted(set(got) - set(want))[:5]}"
        )
    for k, v in want.items():
        if not torch.equal(v.detach().cpu(), got[k].detach().cpu()):
            raise checkpoint_integrity.CheckpointError(
                f"checkpoint {path}: tensor {k} differs from the trained model after reload"
            )


def _tensor_names(state_dict: dict[str, torch.Tensor]) -> list[list[str]]:
    """The names of each of ``state_dict``'s tensors: several for tied weights."""
    memory: dict[Any, list[str]] = {}
    for name, t in state_dict.items():
        ptr = t.untyped_storage().data_ptr() if t.numel() else 0
        memory.setdefault((t.device, ptr) if ptr else name, []).append(name)
    return list(memory.values())


def unheld_tensors(state_dict: dict[str, torch.Tensor], held: Iterable[str]) -> list[str]:
    """The names of ``state_dict``'s tensors that a weights file holding ``held`` leaves unset
    (tied weights are set by any of their names)."""
    held = set(held)
    unheld = {n for names in _tensor_names(state_dict) if held.isdisjoint(names) for n in names}
    return [name for name in state_dict if name in unheld]


def held_twice(state_dict: dict[str, torch.Tensor], held: Iterable[str]) -> list[list[str]]:
    """The names of each tied tensor of ``state_dict`` that a weights file holding ``held`` holds
    under more than one (two values for one tensor)."""
    held = set(held)
    return [
        both
        for names in _tensor_names(state_dict)
        if len(both := [n for n in names if n in held]) > 1
    ]
