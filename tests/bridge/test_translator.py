"""The BottleneckedGatedTranslator (ablate.bridge.translator): shapes, rescaling, gates, padding,
its architecture checks, save and load, its size at the seed's shape."""

from __future__ import annotations

import pytest
import torch

from ablate.bridge import params, translator

ARCH = dict(K=3, depth=2, bottleneck=16, heads=4, dropout=0.0, rope_projection=True)


def make(**kw):
    torch.manual_seed(0)
    return translator.BottleneckedGatedTranslator(
        d_src=12, d_tgt=20, target_rms=0.5, **{**ARCH, **kw}
    )


def test_shapes_and_rms_rescale():
    t = make()
    src = torch.randn(2, 7, 12)
    mask = torch.ones(2, 7, dtype=torch.long)
    out = t(src, mask)
    assert out.shape == (2, 3, 20)
    rms = out.pow(2).mean(-1).sqrt()
    assert torch.allclose(rms, torch.full_like(rms, 0.5), atol=1e-4)


def test_rescale_is_clamped():
    t = make()
    with torch.no_grad():  # outputs far larger than the target's rms: scale clamps at 0.25
        t.out.weight.mul_(1e4)
        t.out.bias.mul_(1e4)
    out = t(torch.randn(1, 4, 12), torch.ones(1, 4, dtype=torch.long))
    assert (out.pow(2).mean(-1).sqrt() > 0.5 * 100).all()


def test_gates_start_closed_so_source_is_ignored_then_opens():
    t = make()
    mask = torch.ones(2, 5, dtype=torch.long)
    a, b = torch.randn(2, 5, 12), torch.randn(2, 5, 12)
    assert all((blk.gates == 0).all() for blk in t.blocks)
    assert torch.allclose(t(a, mask), t(b, mask))  # identity blocks: queries pass unchanged
    with torch.no_grad():
        for blk in t.blocks:
            blk.gates.fill_(1.0)
    assert not torch.allclose(t(a, mask), t(b, mask))


def test_source_padding_is_masked():
    t = make()
    with torch.no_grad():
        for blk in t.blocks:
            blk.gates.fill_(1.0)
    src = torch.randn(1, 6, 12)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    changed = src.clone()
    changed[:, 4:] = 100.0  # only padded positions differ
    assert torch.allclose(t(src, mask), t(changed, mask), atol=1e-5)


def test_rope_projection_starts_at_identity():
    t = make()
    assert torch.equal(t.rope_proj.weight, torch.eye(12))
    assert make(rope_projection=False).rope_proj is None


def test_bottleneck_not_divisible_by_heads_names_the_key():
    with pytest.raises(
        translator.TranslatorConfigError, match=r"bridge\.grid\.2a\.bottleneck = 18"
    ):
        make(bottleneck=18, heads=4, where="bridge.grid.2a")
    with pytest.raises(params.BridgeConfigError, match=r"bridge\.grid\.2a\.bottleneck"):
        params.resolve({"bottleneck": 768, "heads": 10}, "bridge.grid.2a")


def test_k_must_be_positive():
    with pytest.raises(
        translator.TranslatorConfigError, match=r"bridge\.K must be an integer >= 1"
    ):
        make(K=0)
    with pytest.raises(params.BridgeConfigError, match=r"bridge\.grid\.x\.K"):
        params.resolve({"K": 0}, "bridge.grid.x")


def test_save_and_load_roundtrip(tmp_path):
    t = make().eval()
    translator.save(t, tmp_path / "tr")
    back = translator.load(tmp_path / "tr")
    src, mask = torch.randn(1, 4, 12), torch.ones(1, 4, dtype=torch.long)
    assert torch.equal(t(src, mask), back(src, mask))
    (tmp_path / "tr" / "translator.safetensors").write_bytes(b"broken")
    from ablate.core.outputs.checkpoint_integrity import CheckpointError

    with pytest.raises(CheckpointError):
        translator.load(tmp_path / "tr")


@pytest.mark.parametrize("rope, millions", [(True, "159.6 M"), (False, "142.8 M")])
def test_size_at_the_seed_shape_is_the_documented_one(rope, millions):
    """docs/bridge.md's table of differences states this size (the seed's was about 189 M)."""
    from pathlib import Path

    with torch.device("meta"):
        t = translator.BottleneckedGatedTranslator(
            d_src=4096, d_tgt=4096, target_rms=1.0, K=64, depth=8, bottleneck=1024, heads=16,
            rope_projection=rope,
        )  # fmt: skip
    n = sum(p.numel() for p in t.parameters())
    assert f"{n / 1e6:.1f} M" == millions
    docs = (Path(__file__).resolve().parents[2] / "docs" / "bridge.md").read_text()
    assert millions in docs.split("### Differences from the seed")[1].split("###")[0]
