"""Edges that used to pass silently: the mask study's pretraining refusing flex_attention on CPU.
docs/reliability.md maps each to its test; the one wording of each mask policy is in
tests/mask/test_policies.py, the mask-level edges (prompt lengths, kwargs reused across backends)
in tests/mask/test_masks.py, the loader's (its own attention backend, flex_attention on CPU) in
tests/core/models/test_modeling.py, the damaged checkpoints' in
tests/core/outputs/test_checkpoint_integrity.py.
"""

from __future__ import annotations

import pytest
import torch

from ablate.core.models.modeling import ModelLoadError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ flex_attention on CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="pretraining would run on the GPU")
def test_pretrain_refuses_flex_attention_on_cpu(tmp_path):
    from ablate.mask.training.entries import pretrain
    from ablate.mask.training.params import resolve_params

    with pytest.raises(ModelLoadError, match="flex_attention is refused on CPU"):
        pretrain(
            corpus=tmp_path / "never_read.txt",
            tokenizer_dir=tmp_path / "never_read",
            arch=None,
            params=resolve_params({"attn_implementation": "flex_attention"}, "pretrain"),
            out_dir=tmp_path / "out",
        )
