"""BottleneckedGatedTranslator: source hidden states -> K soft tokens in the target's embedding space.

As in the seed (docs/bridge.md, "Translator"): gates at 0 make a fresh translator pass its queries
through unchanged; soft tokens are rescaled to the norm of the target's real token embeddings.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from torch import nn

# the shape rules live in params (torch-free: the Snakefile checks every grid entry at parse time)
from ablate.bridge.params import BridgeParams, TranslatorConfigError, validate_arch  # noqa: F401

ARCH_KEYS = ("K", "depth", "bottleneck", "heads", "dropout", "rope_projection")
SCALE_CLAMP = (0.25, 4.0)


class _GatedBlock(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.norm_self = nn.LayerNorm(width)
        self.self_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm_cross = nn.LayerNorm(width)
        self.cross_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm_ffn = nn.LayerNorm(width)
        self.ffn = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * width, width)
        )
        self.drop = nn.Dropout(dropout)
        self.gates = nn.Parameter(torch.zeros(3))  # self, cross, ffn: tanh(0) = 0 at init

    def forward(self, q, memory, memory_pad):
        g = torch.tanh(self.gates)
        h = self.norm_self(q)
        q = q + g[0] * self.drop(self.self_attn(h, h, h, need_weights=False)[0])
        h = self.norm_cross(q)
        attn = self.cross_attn(h, memory, memory, key_padding_mask=memory_pad, need_weights=False)
        q = q + g[1] * self.drop(attn[0])
        return q + g[2] * self.drop(self.ffn(self.norm_ffn(q)))


class BottleneckedGatedTranslator(nn.Module):
    def __init__(
        self,
        *,
        d_src: int,
        d_tgt: int,
        target_rms: float,
        K: int,
        depth: int,
        bottleneck: int,
        heads: int,
        dropout: float = 0.1,
        rope_projection: bool = False,
        detach_rms: bool = False,
        where: str = "bridge",
    ):
        super().__init__()
        arch = dict(
            K=K,
            depth=depth,
            bottleneck=bottleneck,
            heads=heads,
            dropout=dropout,
            rope_projection=rope_projection,
        )
        validate_arch(arch, where)
        self.config = {**arch, "d_src": d_src, "d_tgt": d_tgt, "target_rms": float(target_rms)}
        self.rope_proj = nn.Linear(d_src, d_src, bias=False) if rope_projection else None
        if self.rope_proj is not None:
            with torch.no_grad():
                self.rope_proj.weight.copy_(torch.eye(d_src))
        self.src_norm = nn.LayerNorm(d_src)
        self.src_in = nn.Linear(d_src, bottleneck)
        self.queries = nn.Parameter(torch.randn(K, bottleneck) * bottleneck**-0.5)
        self.blocks = nn.ModuleList(_GatedBlock(bottleneck, heads, dropout) for _ in range(depth))
        self.out_norm = nn.LayerNorm(bottleneck)
        self.out = nn.Linear(bottleneck, d_tgt)
        self.register_buffer("target_rms", torch.tensor(float(target_rms)))
        # a training choice, not the translator's function: not in its saved config
        self.detach_rms = detach_rms

    def forward(self, src_states: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        """[B, S, d_src] states + [B, S] mask (1 = token) -> [B, K, d_tgt] soft tokens."""
        h = src_states.float()
        if self.rope_proj is not None:
            h = self.rope_proj(h)
        memory = self.src_in(self.src_norm(h))
        q = self.queries.unsqueeze(0).expand(h.shape[0], -1, -1)
        pad = src_mask == 0
        for block in self.blocks:
            q = block(q, memory, pad)
        return match_rms(self.out(self.out_norm(q)), self.target_rms, self.detach_rms)

    def gate_parameters(self) -> list[nn.Parameter]:
        return [b.gates for b in self.blocks]


def match_rms(y: torch.Tensor, target_rms: torch.Tensor, detach: bool) -> torch.Tensor:
    """Each vector of ``y`` rescaled to RMS ``target_rms`` (``detach``: no gradient through it)."""
    rms = y.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-8)
    rms = rms.detach() if detach else rms
    return y * (target_rms / rms).clamp(*SCALE_CLAMP)


def median_row_rms(embedding: torch.Tensor) -> float:
    """Median over rows of each row's RMS (the target's typical token-embedding size)."""
    return float(embedding.float().pow(2).mean(-1).sqrt().median())


def build(arch: BridgeParams, source, target, where: str = "bridge"):
    """A translator for a (source, target) model pair, sized from their configs."""
    d_src = source.config.get_text_config().hidden_size
    d_tgt = target.config.get_text_config().hidden_size
    rms = median_row_rms(target.get_input_embeddings().weight)
    return BottleneckedGatedTranslator(
        d_src=d_src,
        d_tgt=d_tgt,
        target_rms=rms,
        detach_rms=arch.rms_detach,
        where=where,
        **{k: getattr(arch, k) for k in ARCH_KEYS},
    )


def save(translator: BottleneckedGatedTranslator, out_dir, extra: dict | None = None):
    """``translator.safetensors`` + ``translator_config.json`` into a fresh dir, manifest last."""
    from safetensors.torch import save_file

    from ablate.core.outputs import checkpoint_integrity, io

    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().cpu().contiguous() for k, v in translator.state_dict().items()}
    save_file(state, str(tmp / "translator.safetensors"))
    io.write_json(tmp / "translator_config.json", translator.config)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    checkpoint_integrity.write_manifest(out, extra=extra)
    return out


def load(directory) -> BottleneckedGatedTranslator:
    """A saved translator (manifest verified first), in eval mode."""
    from safetensors.torch import load_file

    from ablate.core.outputs import checkpoint_integrity

    d = Path(directory)
    checkpoint_integrity.verify(d)
    cfg = json.loads((d / "translator_config.json").read_text())
    t = BottleneckedGatedTranslator(**cfg)
    t.load_state_dict(load_file(str(d / "translator.safetensors")))
    return t.eval()
