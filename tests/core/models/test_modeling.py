"""The one model loader (:mod:`ablate.core.models.modeling`): a study's attention backend
registered in a process that never imported the study, flex_attention refused on CPU, a GPU named
by its index, a path that is not a model refused in one line, a study's config check before any
weight is read, the tokenizer's refusal, a saved model compared with its reload, and which of a
model's tensors a weights file leaves unset (tied ones stored once)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ablate.core.models import modeling
from ablate.core.models.modeling import ModelLoadError, load_causal_lm
from ablate.core.outputs.checkpoint_integrity import CheckpointError
from ablate.mask import PREFIX_SDPA

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_loading_registers_the_split_backend_in_a_fresh_process(tiny_model_dir):
    """A process that never imported the mask modules loads with attn_implementation
    sdpa_prefix_split (transformers used to answer "not supported")."""
    code = f"""
import sys
from ablate.core.models.modeling import load_causal_lm
assert not any(m.startswith("ablate.mask") for m in sys.modules)
model = load_causal_lm({str(tiny_model_dir)!r}, attn_implementation={PREFIX_SDPA!r})
print(model.config._attn_implementation)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == PREFIX_SDPA


def test_flex_attention_refused_on_cpu(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="flex_attention is refused on CPU"):
        load_causal_lm(tiny_model_dir, attn_implementation="flex_attention", device="cpu")


def test_gpu_loads_name_the_device_by_index():
    """load_causal_lm's device_map names a CUDA device by index, so the model sits on one device,
    the one the training loop trains on (a map to "cuda" made HF's Trainer, before the loop, treat
    the model as model-parallel and leave it unmoved)."""
    from ablate.core.models.modeling import _device_index, _is_accelerator

    assert _device_index("cuda:1") == 1 and _device_index(torch.device("cuda", 0)) == 0
    assert not _is_accelerator("cpu") and not _is_accelerator(None) and _is_accelerator("cuda")


def test_a_path_that_is_not_a_model_is_refused_in_one_line(tmp_path):
    with pytest.raises(ModelLoadError, match=r"model path .*gone does not exist$"):
        load_causal_lm(tmp_path / "gone")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"empty has no config\.json: not a model directory$"):
        load_causal_lm(tmp_path / "empty")


def test_the_config_check_sees_the_config_before_any_weight_is_read(tiny_model_dir, monkeypatch):
    seen = []

    def refuse(config, attn):
        seen.append((config["model_type"], attn))
        raise ValueError("family not proven")

    def never(*a, **k):
        raise AssertionError("weights read before the config check")

    monkeypatch.setattr(modeling.checkpoint_integrity, "start_check_before_load", never)
    with pytest.raises(ValueError, match="family not proven"):
        load_causal_lm(tiny_model_dir, config_check=refuse)
    assert seen == [("ministral3", "sdpa")]


def test_a_folder_without_a_tokenizer_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=r"^cannot load a tokenizer from .*"):
        modeling.load_tokenizer(tmp_path)


def test_verify_loadable_names_a_tensor_that_differs_after_reload(tiny_model_dir):
    model = load_causal_lm(tiny_model_dir)
    modeling.verify_loadable(model, tiny_model_dir)  # the same weights: passes
    name, weight = next(iter(model.state_dict().items()))
    with torch.no_grad():
        weight.add_(1.0)
    with pytest.raises(CheckpointError, match=f"tensor {name} differs from the trained model"):
        modeling.verify_loadable(model, tiny_model_dir)


def test_a_weights_file_sets_tied_tensors_by_one_name(tmp_path):
    """Tied weights (one memory under two names) are stored once by safetensors: set when the
    file holds either name; a tensor of its own must be in the file."""
    import safetensors.torch

    model = torch.nn.ModuleDict({"emb": torch.nn.Embedding(4, 3), "head": torch.nn.Linear(3, 4)})
    model["head"].weight = model["emb"].weight  # tied
    safetensors.torch.save_model(model, str(tmp_path / "w.safetensors"))
    with safetensors.safe_open(str(tmp_path / "w.safetensors"), framework="pt") as f:
        held = list(f.keys())  # noqa: SIM118
    assert len(held) == 2  # one of the tied pair, and the head's bias
    state = model.state_dict()
    assert modeling.unheld_tensors(state, held) == []
    assert modeling.unheld_tensors(state, ["emb.weight"]) == ["head.bias"]
    assert modeling.unheld_tensors(state, ["head.bias"]) == ["emb.weight", "head.weight"]
