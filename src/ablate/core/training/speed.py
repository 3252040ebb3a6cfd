"""What makes a training step faster: regional compilation and per-token cross-entropy in the
layout the GPU's kernels are fast in (the same math); on CUDA only, the fused optimizer kernel
(the same update, other rounding) and TF32 tensor-core matmuls for weights kept in fp32 (a
precision change: inputs rounded to a 10-bit mantissa). The CPU's numbers stay as they were.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from ablate.upstream import pytorch


def _decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise TypeError(
            f"compile_layers: {type(model).__name__} has no decoder layers to compile "
            "(a decoder model with get_decoder().layers)"
        )
    return layers


def compile_layers(model: torch.nn.Module) -> int:
    """Compile every decoder layer of ``model`` in place; returns how many were compiled."""
    layers = _decoder_layers(model)
    for layer in layers:
        layer.compile()
    return len(layers)


@contextlib.contextmanager
def layers_compiled(model: torch.nn.Module, on: bool = True):
    """Within: ``model``'s decoder layers run compiled; after: eager again (for a model that also
    decodes, compiled layers would recompile per KV cache entry)."""
    if not on:
        yield
        return
    with pytorch.modules_compiled(_decoder_layers(model)):
        yield


def token_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of logits ``[B, T, V]`` against labels ``[B, T]``; on CUDA as ``[B*T, V]``
    rows (the class-second layout is slow there: bench/results/bridge_speed_h100.md), on the CPU
    class-second: the rounding the embedded runs were pinned with."""
    if logits.device.type == "cuda":
        return rows_cross_entropy(logits, labels, ignore_index, reduction)
    return F.cross_entropy(
        logits.transpose(1, 2), labels, ignore_index=ignore_index, reduction=reduction
    )


def rows_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int, reduction: str = "mean"
) -> torch.Tensor:
    """:func:`token_cross_entropy`'s CUDA layout: the positions as ``[B*T, V]`` rows."""
    return F.cross_entropy(
        logits.flatten(0, 1), labels.flatten(), ignore_index=ignore_index, reduction=reduction
    )


def fp32_optimizer_kwargs(params) -> dict[str, bool]:
    """``fused=True`` for a torch Adam/AdamW whose parameters are on CUDA (the same update up to
    rounding)."""
    return {"fused": True} if all(p.is_cuda for p in params) else {}


def tf32_matmuls(device) -> None:
    """On CUDA let fp32 matmuls run on the tensor cores in TF32, process-wide: a trained fp32
    module beside frozen bf16 models runs at a fraction of the GPU's rate otherwise
    (bench/results/bridge_speed_h100.md)."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
