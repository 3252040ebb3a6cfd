"""Edges that used to pass silently: the mask study's pretraining refusing flex_attention on CPU,
and the one wording of each mask policy. docs/reliability.md maps each to its test; the mask-level
edges (prompt lengths, kwargs reused across backends) are in tests/mask/test_masks.py, the
loader's (its own attention backend, flex_attention on CPU) in tests/core/models/test_modeling.py,
the damaged checkpoints' in tests/core/outputs/test_checkpoint_integrity.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ablate.core.config import config_schema
from ablate.core.models.modeling import ModelLoadError
from ablate.mask import policies

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ flex_attention on CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="pretraining would run on the GPU")
def test_pretrain_refuses_flex_attention_on_cpu(tmp_path):
    from ablate.mask.training.entries import pretrain
    from ablate.mask.training.gate import resolve_params

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
