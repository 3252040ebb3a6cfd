"""Per-job overhead: phase timings, checkpoint hashing overlapped with the load, the
manifest as a checkpoint's fingerprint, and disk requests that cover what a finetune writes.
All cheap (a few seconds): small files and the tiny model, no training."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from helpers import FAMILY_OVERLAYS
from oracles import disk_need_mb

from ablate.core import planner
from ablate.core.outputs import checkpoint_integrity, phases, provenance
from ablate.core.outputs.checkpoint_integrity import CheckpointError
from ablate.core.planner.inputs import Reference
from ablate.core.planner.params import count_params, params_of_hub_model
from ablate.mask import variants as mask_variants
from ablate.mask.tiny import tiny_ministral3_config
from ablate.mask.training.gate import resolve_params

REPO = Path(__file__).resolve().parents[2]


def test_phases_add_up_and_nest():
    ph = phases.Phases()
    with ph("load"):
        time.sleep(0.05)
    with ph("train"):
        time.sleep(0.05)
    ph.add("train.steps", 0.02)  # a part of "train": not counted twice
    time.sleep(0.02)
    d = ph.as_dict()
    assert list(d) == ["startup", "load", "train", "train.steps", "other", "total"]
    assert d["load"] >= 0.05 and d["train"] >= 0.05 and d["train.steps"] == 0.02
    assert d["other"] >= 0.015  # the sleep outside any phase
    inside = d["load"] + d["train"] + d["other"]
    assert d["total"] == pytest.approx(inside + d["startup"], abs=0.01)
    assert d["startup"] > 0  # this process started before the test


def _checkpoint(tmp_path: Path) -> Path:
    def save(tmp: Path) -> str:
        for i in range(3):  # several files: hashed in parallel
            (tmp / f"shard-{i}.bin").write_bytes(os.urandom(1 << 16))
        (tmp / "config.json").write_text("{}")
        return checkpoint_integrity.FORMAT_SAVE_PRETRAINED

    return Path(checkpoint_integrity.write_final(tmp_path / "ft", save)["path"])


def test_pending_verify_raises_at_result_what_verify_raises(tmp_path):
    final = _checkpoint(tmp_path)
    assert checkpoint_integrity.PendingVerify(final).result() == checkpoint_integrity.verify(final)
    shard = final / "shard-1.bin"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF  # same size: only the hash can tell
    shard.write_bytes(bytes(data))
    pending = checkpoint_integrity.start_check_before_load(
        final
    )  # the layout is fine: no error yet
    with pytest.raises(CheckpointError, match=r"shard-1\.bin does not match its recorded sha256"):
        pending.result()
    shard.write_bytes(b"short")  # a size change fails at once, before any load starts
    with pytest.raises(CheckpointError, match=r"shard-1\.bin has 5 bytes"):
        checkpoint_integrity.start_check_before_load(final)


def test_fingerprint_of_a_checkpoint_comes_from_its_manifest(tmp_path, monkeypatch):
    final = _checkpoint(tmp_path)
    read_twice = provenance.fingerprint_path(final)
    # the same list of (name, sha256) as hashing the files, without reading them again
    plain = tmp_path / "plain"
    plain.mkdir()
    for rel in checkpoint_integrity.verify(final)["files"]:
        (plain / rel).write_bytes((final / rel).read_bytes())
    assert provenance.fingerprint_path(plain) == read_twice
    monkeypatch.setattr(checkpoint_integrity, "sha256_file", lambda p: pytest.fail(f"rehashed {p}"))
    assert provenance.fingerprint_path(final) == read_twice
    (final / "extra.bin").write_bytes(b"x")  # a file the manifest does not list: refused
    with pytest.raises(CheckpointError, match="not in its manifest"):
        provenance.fingerprint_path(final)


@pytest.mark.parametrize(
    "name, size",
    [
        ("ministral3b.yaml", 3.429e9),
        ("ministral3b-smoke.yaml", 3.429e9),
        ("ministral3b.yaml ministral8b.yaml", 8.020e9),  # an overlay, read after its base
        *((f"ministral3b.yaml {name}", size) for name, (_, _, size) in FAMILY_OVERLAYS.items()),
    ],
)
def test_gpu_configs_request_the_disk_a_finetune_writes(name, size):
    config = planner.load_config([REPO / "config" / f for f in name.split()])
    m = config["mask"]["model"]
    if m["source"] == "embedded":
        n = count_params(tiny_ministral3_config(**m["embedded"]["arch"]))
    else:  # the hub model's text shape, offline (config/gpu_measurements.yaml)
        ref = Reference.load(REPO / config["plan"]["measurements"])
        n = params_of_hub_model(m["path"], m.get("revision"), ref.models, ref.path)[0]
    assert n == pytest.approx(size, rel=1e-3)
    have = config["mask"]["resources"]["finetune"]["disk_mb"]
    for v, spec in mask_variants.variants_of(config).items():
        need = disk_need_mb(n, resolve_params(spec["params"], "finetune").as_dict())
        assert have >= need, f"{name}: finetune {v} writes up to {need:.0f} MB, disk_mb {have}"


def test_disk_need_counts_checkpoints_only_when_saved():
    p = resolve_params({"save_steps": 0}, "finetune").as_dict()
    n = 1e9
    assert disk_need_mb(n, p) == pytest.approx(n * 2 * 2 * 1.1 / 1e6)  # two bf16 finals
    p = resolve_params(
        {"save_steps": 100, "save_total_limit": 2, "optim": "adamw_torch"}, "finetune"
    ).as_dict()
    # 3 checkpoints x (bf16 weights 2 + fp32 masters 4 + AdamW's 2 fp32 states 8) + the finals
    assert disk_need_mb(n, p) == pytest.approx(n * (4 + 3 * 14) * 1.1 / 1e6)
    assert disk_need_mb(n, p, gpu=False) == pytest.approx(n * (8 + 3 * (4 + 8)) * 1.1 / 1e6)


def test_gpu_loads_name_the_device_by_index():
    """load_causal_lm's device_map names a CUDA device by index, so the model sits on one device,
    the one the training loop trains on (a map to "cuda" made HF's Trainer, before the loop, treat
    the model as model-parallel and leave it unmoved)."""
    from ablate.core.models.modeling import _device_index, _is_accelerator

    assert _device_index("cuda:1") == 1 and _device_index(torch.device("cuda", 0)) == 0
    assert not _is_accelerator("cpu") and not _is_accelerator(None) and _is_accelerator("cuda")


def test_planner_reads_the_eval_rate_from_the_records_phases(tmp_path, monkeypatch):
    """A record with ``phases`` gives its own-work seconds (the scorer's), not wall time minus a
    modelled start-up and load: tokens / phases["evaluate.score"]."""
    import json
    import shutil

    monkeypatch.chdir(REPO)  # the config's relative defaults (measurements, offers snapshot)
    root = Path(shutil.copytree(REPO / "tests/fixtures/planner/ministral_h200", tmp_path / "run"))
    metrics = root / "results/ministral3b/eval/base/causal/metrics.json"
    data = json.loads(metrics.read_text())
    data["phases"] = {"startup": 9.0, "load_model": 12.0, "evaluate": 40.0, "evaluate.score": 25.0}
    metrics.write_text(json.dumps(data))
    config = planner.load_config(REPO / "config" / "ministral3b.yaml")
    config["plan"].update({"setups": [{"gpu": "H200"}]})
    t = planner.make_plan(config, root=root, actuals=False).table
    ev = t[(t["setup"] == "1x H200") & (t["job"] == "eval/base/causal")].iloc[0]
    assert ev["tok_s_per_gpu"] == pytest.approx(ev["tokens"] / 25.0, rel=1e-4)
    assert "phases.evaluate.score 25 s" in ev["throughput_source"]
