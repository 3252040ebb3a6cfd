"""Loading models and tokenizers, and building the embedded tiny Ministral-3 model.

The study model, mistralai/Ministral-3-3B-Instruct-2512, is a vision-language checkpoint
(``Mistral3ForConditionalGeneration`` around a ``ministral3`` text model): AutoModelForCausalLM
refuses its config. Every stage of this pipeline is text-only, so :func:`load_causal_lm` loads such
a checkpoint and returns the equivalent ``*ForCausalLM`` (text weights and lm_head; the vision
tower is dropped). Plain causal-LM checkpoints load directly.

The embedded default uses the real Tekken tokenizer shipped by the mistral-common package, so no
hub access is ever needed.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

TEKKEN_FILE = "tekken_240911.json"  # the Tekken version of the Ministral-3 / Mistral-Nemo family
SPECIAL_TOKENS = dict(bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
VLM_MODEL_TYPES = {"mistral3"}
#: attn_implementation of the split-sdpa backend (``sdpa`` plus a fast prefix-LM path).
PREFIX_SDPA = "sdpa_prefix_split"
#: attn_implementations this package adds to transformers -> the module whose import registers
#: each. The loader imports it, so a fresh process loads with them without knowing where they live.
CUSTOM_ATTENTION = {PREFIX_SDPA: "ablate.mask.split_sdpa"}


class ModelLoadError(RuntimeError):
    pass


def register_attention(attn_implementation: str) -> None:
    """Make one of :data:`CUSTOM_ATTENTION` known to transformers (no-op for its own backends)."""
    if attn_implementation in CUSTOM_ATTENTION:
        importlib.import_module(CUSTOM_ATTENTION[attn_implementation])


def check_attention_device(attn_implementation: str, device: str | torch.device) -> None:
    """Refuse an attention implementation on a device where torch runs it wrong.

    The one place of the CPU ``flex_attention`` workaround: torch's CPU flex_attention has no
    backward, and gave wrong logits at some sequence lengths (issue 18). The torch behaviour
    behind the guard is pinned by tests/test_upstream_torch.py, which fails once torch changes
    it: then this guard can go.
    """
    if attn_implementation == "flex_attention" and torch.device(device).type == "cpu":
        raise ModelLoadError(
            "attn_implementation: flex_attention is refused on CPU: torch's CPU flex_attention "
            "has no backward pass (training fails) and has given wrong logits at some sequence "
            "lengths (length 8 off by 2.4 or NaN vs eager). Use sdpa or sdpa_prefix_split on "
            "CPU; flex_attention on a GPU."
        )


def mistral_common_data_file(name: str = TEKKEN_FILE) -> Path:
    import mistral_common

    path = Path(mistral_common.__file__).parent / "data" / name
    if not path.exists():
        raise ModelLoadError(f"mistral-common ships no tokenizer file {name!r} ({path})")
    return path


def prepare_tekken_tokenizer(out_dir: str | os.PathLike, tekken_file: str = TEKKEN_FILE):
    """Write a loadable HF tokenizer folder from a Tekken file of the mistral-common package.

    AutoTokenizer converts ``tekken.json`` offline but sets no special tokens and adds no BOS;
    the real checkpoints prepend ``<s>``, so the saved tokenizer does too.
    """
    from tokenizers import processors
    from transformers import AutoTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(mistral_common_data_file(tekken_file), out / "tekken.json")
    tok = AutoTokenizer.from_pretrained(out)
    tok.add_special_tokens(SPECIAL_TOKENS)
    bos = SPECIAL_TOKENS["bos_token"]
    tok.backend_tokenizer.post_processor = processors.Sequence(
        [
            tok.backend_tokenizer.post_processor,
            processors.TemplateProcessing(
                single=f"{bos} $A",
                pair=f"{bos} $A $B",
                special_tokens=[(bos, tok.convert_tokens_to_ids(bos))],
            ),
        ]
    )
    tok.padding_side = "right"
    tok.save_pretrained(out)
    (out / "tekken.json").unlink()  # tokenizer.json now holds everything; one source of truth
    return load_tokenizer(out)


def load_tokenizer(path: str | os.PathLike, revision: str | None = None):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), revision=revision)
    except Exception as exc:  # transformers raises several types here
        if Path(path).is_dir():  # a damaged pipeline checkpoint: name the missing/altered file
            from ablate.core import checkpoint

            checkpoint.check_before_load(path)
        raise ModelLoadError(f"cannot load a tokenizer from {path}: {exc}") from exc
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def tiny_ministral3_config(vocab_size: int = 131072, **overrides: Any):
    """A Ministral-3 text config of the real architecture, scaled down: the sizes of the config
    schema's ``model.embedded.arch`` defaults, then ``overrides``. ``vocab_size`` defaults to
    Tekken's (the pipeline passes its tokenizer's)."""
    from transformers import Ministral3Config

    from ablate.core.config import schema_defaults

    params: dict[str, Any] = dict(
        **schema_defaults("$defs/embedded_model/properties/arch"),
        vocab_size=vocab_size,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=11,
        rope_parameters={
            "rope_type": "yarn",
            "rope_theta": 1_000_000.0,
            "factor": 1.0,
            "original_max_position_embeddings": 2048,
            "max_position_embeddings": 2048,
            "beta_fast": 32.0,
            "beta_slow": 1.0,
            "mscale": 1.0,
            "mscale_all_dim": 1.0,
            "llama_4_scaling_beta": 0.1,
        },
    )
    params.update(overrides)
    return Ministral3Config(**params)


def build_tiny_model(config, seed: int = 0, device: str | torch.device = "cpu"):
    """A randomly initialised model, built on ``device`` (a GPU builds and initialises 3.4 B
    parameters in seconds; the host took minutes in fp32). The same seed gives the same weights
    on the same kind of device only: CPU and CUDA random streams differ."""
    from transformers import Ministral3ForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        return Ministral3ForCausalLM(config)


def _read_config(path: Path) -> dict[str, Any]:
    cfg = path / "config.json"
    if not cfg.exists():
        raise ModelLoadError(f"{path} has no config.json: not a model directory")
    return json.loads(cfg.read_text())


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
):
    """Load a causal LM (or the text half of a Mistral3 VLM) from a local dir or hub id.

    Local checkpoints written by this pipeline carry a hash manifest; ``verify`` checks it first
    (``checkpoint.check_before_load``) so a truncated, altered or uncompleted checkpoint fails
    here, not as garbage scores later. ``attn_implementation`` may be one of this package's
    (:data:`CUSTOM_ATTENTION`); one known wrong on the target device (``device``, else CUDA when
    available) is refused before loading.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    target = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    check_attention_device(attn_implementation, target)
    register_attention(attn_implementation)
    local = Path(path)
    pending = None
    if local.exists():
        _read_config(local)
        if verify:
            from ablate.core import checkpoint

            # layout checked now, the hashes while the weights load (one pass, overlapped)
            pending = checkpoint.start_check_before_load(local)
    elif os.sep in str(path) and not _looks_like_hub_id(str(path)):
        raise ModelLoadError(f"model path {path} does not exist")
    # straight to the GPU in the target dtype: no host copy of the weights, no .to() afterwards
    direct = {"device_map": {"": _device_index(device)}} if _is_accelerator(device) else {}
    try:
        config = AutoConfig.from_pretrained(str(path), revision=revision)
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
    """A CUDA device as its index: the model's ``hf_device_map`` then names the device the
    Trainer trains on (``"cuda"`` != ``cuda:0`` would make it treat the model as model-parallel
    and leave it unmoved, ``Trainer.is_model_parallel``)."""
    d = torch.device(device)
    if d.type == "cuda":
        return torch.cuda.current_device() if d.index is None else d.index
    return str(d)


def _looks_like_hub_id(s: str) -> bool:
    parts = s.split("/")
    return len(parts) == 2 and all(parts) and not s.startswith((".", "/"))
