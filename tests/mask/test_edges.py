"""Edges that used to pass silently: loading with the package's own attention backend,
damaged pipeline checkpoints without their manifest, flex_attention on CPU, and the one wording
of each mask policy. docs/reliability.md maps each to its test; the mask-level edges (prompt
lengths, kwargs reused across backends) are in tests/mask/test_masks.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ablate.core.config import config_schema
from ablate.core.models.modeling import ModelLoadError, load_causal_lm
from ablate.core.outputs import checkpoint_integrity
from ablate.core.outputs.checkpoint_integrity import CheckpointError
from ablate.mask import PREFIX_SDPA, policies

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ the split backend on load


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


# ------------------------------------------------------------------ checkpoints


def _copy_save(src: Path):
    def save(tmp: Path) -> str:
        for f in src.iterdir():
            shutil.copy(f, tmp / f.name)
        return checkpoint_integrity.FORMAT_SAVE_PRETRAINED

    return save


@pytest.fixture()
def written(tiny_model_dir, tmp_path) -> Path:
    """A final checkpoint written the way the pipeline writes one."""
    info = checkpoint_integrity.write_final(
        tmp_path / "ft", _copy_save(tiny_model_dir), extra={"step": 1}
    )
    return Path(info["path"])


def test_pipeline_checkpoint_without_manifest_never_loads(written):
    load_causal_lm(written)  # whole: loads
    (written / checkpoint_integrity.MANIFEST_NAME).unlink()
    with pytest.raises(CheckpointError, match="has no checkpoint_manifest.json"):
        load_causal_lm(written)


def test_checkpoint_of_an_older_run_is_known_by_its_summary(tiny_model_dir, tmp_path):
    """No writer marker (written before it existed), but our summary.json beside it names it."""
    out = tmp_path / "ft"
    final = Path(shutil.copytree(tiny_model_dir, out / "final"))
    summary = {"kind": "finetune", "checkpoint": {"path": str(final), "format": "x"}}
    (out / checkpoint_integrity.SUMMARY_NAME).write_text(json.dumps(summary))
    assert checkpoint_integrity.written_here(final)
    with pytest.raises(CheckpointError, match="has no checkpoint_manifest.json"):
        load_causal_lm(final)


def test_file_added_after_the_manifest_is_reported(written):
    (written / "adapter_config.json").write_text("{}")
    with pytest.raises(
        CheckpointError, match=r"adapter_config\.json are not in its manifest \(added after"
    ):
        checkpoint_integrity.verify(written)
    with pytest.raises(CheckpointError, match="not in its manifest"):
        load_causal_lm(written)


def test_snakemake_timestamp_is_not_an_added_file(written):
    (written / ".snakemake_timestamp").touch()  # Snakemake's mtime file in directory() outputs
    checkpoint_integrity.verify(written)


def test_foreign_model_dir_still_loads(tiny_model_dir, tmp_path):
    foreign = Path(shutil.copytree(tiny_model_dir, tmp_path / "final"))
    assert not checkpoint_integrity.written_here(foreign)
    assert checkpoint_integrity.check_before_load(foreign) is None
    load_causal_lm(foreign)


def test_write_final_replaces_only_when_complete(tiny_model_dir, tmp_path):
    first = checkpoint_integrity.write_final(
        tmp_path, _copy_save(tiny_model_dir), extra={"step": 1}
    )
    before = checkpoint_integrity.verify(first["path"])

    def broken(tmp: Path) -> str:
        (tmp / "model.safetensors").write_bytes(b"\0" * 10)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        checkpoint_integrity.write_final(tmp_path, broken)
    assert checkpoint_integrity.verify(first["path"]) == before
    assert before["step"] == 1 and before["format"] == checkpoint_integrity.FORMAT_SAVE_PRETRAINED


# ------------------------------------------------------------------ flex_attention on CPU


def test_flex_attention_refused_on_cpu(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="flex_attention is refused on CPU"):
        load_causal_lm(tiny_model_dir, attn_implementation="flex_attention", device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="pretraining would run on the GPU")
def test_pretrain_refuses_flex_attention_on_cpu(tmp_path):
    from ablate.mask.training.gate import resolve_params
    from ablate.mask.training.run import pretrain

    with pytest.raises(ModelLoadError, match="flex_attention is refused on CPU"):
        pretrain(
            corpus=tmp_path / "never_read.txt",
            tokenizer_dir=tmp_path / "never_read",
            arch=None,
            params=resolve_params({"attn_implementation": "flex_attention"}, "pretrain"),
            out_dir=tmp_path / "out",
        )


# ------------------------------------------------------------------ what each policy means


def test_policy_wording_is_one_fact():
    """Each policy's one-line description is policies.POLICY_DESCRIPTIONS; the schema, the user guide
    and config/README quote it, and the misleading old wording ("no causal mask while the prompt is
    encoded", which reads as prefix_bidir) is gone from every place that names the policies."""
    assert set(policies.POLICY_DESCRIPTIONS) == set(policies.POLICIES)
    described = config_schema()["$defs"]["policy"]["description"]
    guide = (ROOT / "docs/guide.md").read_text()
    config_readme = (ROOT / "config/README.md").read_text()
    for policy, text in policies.POLICY_DESCRIPTIONS.items():
        assert f"{policy}: {text}" in described, policy
        assert f"| `{policy}` | {text} |" in guide, policy
    assert f"`prefill_bidir`: {policies.POLICY_DESCRIPTIONS['prefill_bidir']}" in config_readme
    assert "multi-token" in policies.POLICY_DESCRIPTIONS["prefill_bidir"]
    for doc in ["README.md", "docs/guide.md", "config/README.md", "workflow/report/workflow.rst"]:
        text = (ROOT / doc).read_text()
        assert "while the prompt is encoded" not in text, doc
        assert "removes the causal mask during prefill" not in text, doc
    assert policies.policy_help().count(": ") >= len(policies.POLICIES)
