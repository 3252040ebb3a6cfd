"""What makes a training step faster: regional compilation and per-token cross-entropy in the
layout the GPU's kernels are fast in (the same math); on CUDA only, the fused optimizer kernel
(the same update, other rounding) and TF32 tensor-core matmuls for weights kept in fp32 (a
precision change: inputs rounded to a 10-bit mantissa). The CPU's numbers stay as they were.

``compile_layers`` compiles each decoder layer in place (``nn.Module.compile``): parameter names,
the state_dict, checkpoints and the fast head stay as they are, and one graph serves every layer
(its gain: bench/results/mfu_h100.md).
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
    """Compile every decoder layer of ``model`` in place; returns how many were compiled.

    Shapes start static: a new sequence length (unpacked rows padded to the batch's longest)
    recompiles once, after which torch marks the length dynamic. Packed rows have one shape.
    """
    layers = _decoder_layers(model)
    for layer in layers:
        layer.compile()
    return len(layers)


@contextlib.contextmanager
def layers_compiled(model: torch.nn.Module, on: bool = True):
    """Within: ``model``'s decoder layers run compiled (:func:`compile_layers`, compiled once and
    kept for the next time); after: eager again. For a model that also decodes: the decode step
    is compiled whole (:mod:`ablate.core.models.generation`), and compiled layers called with a KV
    cache would recompile per layer (torch guards on each layer's cache entry) until torch's
    recompile limit sends the rest back to eager. The backward of a forward run within stays
    compiled."""
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
    """Cross-entropy of per-position logits ``[B, T, V]`` against labels ``[B, T]``.

    On CUDA the positions are flattened to ``[B*T, V]`` rows (:func:`rows_cross_entropy`). The
    class-second layout ``cross_entropy(logits.transpose(1, 2), labels)`` is the same function,
    but on a GPU it runs PyTorch's spatial NLL kernel and a log-softmax over a strided dimension:
    with a 128k vocabulary, 10 x 128 answer tokens, it took 241 of a 417 ms bridge training step
    on an H100 (bench/results/bridge_speed_h100.md). On the CPU that layout is kept: its float
    rounding is what the embedded runs were pinned with, and there it is not slower."""
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
    """``fused=True`` for a torch Adam/AdamW whose parameters are on CUDA: one kernel for the
    whole update instead of a few per tensor group (the same update up to rounding; 11 -> 5 ms of
    a bridge step on an H100). On the CPU nothing changes."""
    return {"fused": True} if all(p.is_cuda for p in params) else {}


def tf32_matmuls(device) -> None:
    """On CUDA let fp32 matmuls run on the tensor cores in TF32 (fp32 accumulation, inputs
    rounded to a 10-bit mantissa): a trained fp32 module beside frozen bf16 models (the bridge's
    translator) otherwise runs at a fraction of the GPU's rate (about 23 ms of a 230 ms bridge
    step on an H100, bench/results/bridge_speed_h100.md). Process-wide; no effect on CPU."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
