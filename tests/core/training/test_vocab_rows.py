"""ablate.core.training.vocab_rows: where a run's tied table may be cut to the rows its data uses,
and the cut table's lookup, refusal, and the whole table during a save (cut again after). That
training on the cut rows gives the whole table's weights bit for bit is the pretraining run's
test (tests/mask/test_training.py)."""

from __future__ import annotations

import pytest
import torch

from ablate.core.training import vocab_rows
from ablate.core.training.params import TrainingConfigError
from ablate.core.training.pretraining import random_model
from ablate.mask import tiny
from ablate.mask.training.params import resolve_params


def test_a_table_is_cut_only_where_the_other_rows_would_not_move():
    model = random_model(tiny.tiny_ministral3_config(num_hidden_layers=1), seed=0)
    base = {"loss_vocab": "corpus", "optim": "adamw_torch_fused", "weight_decay": 0.0}

    def params(**kw):
        return resolve_params({**base, **kw}, "finetune")

    ok = params()
    assert vocab_rows.why_not(model, ok) is None
    assert "every row" in vocab_rows.why_not(model, params(loss_vocab="full"))
    assert "moves every row" in vocab_rows.why_not(model, params(weight_decay=0.1))
    assert "moves every row" in vocab_rows.why_not(model, params(optim="adafactor"))
    masters = params(master_weights=True, model_dtype="bfloat16")
    assert "master" in vocab_rows.why_not(model, masters)
    untied = random_model(
        tiny.tiny_ministral3_config(num_hidden_layers=1, tie_word_embeddings=False), seed=0
    )
    assert "not one tied table" in vocab_rows.why_not(untied, ok)
    odd = random_model(tiny.tiny_ministral3_config(num_hidden_layers=1, hidden_size=72), 0)
    assert "not whole vectors" in vocab_rows.why_not(odd, ok)
    table = model.get_input_embeddings().weight.detach().clone()
    rows = vocab_rows.cut(model, [5, 900, 17])
    pad = model.config.pad_token_id
    assert rows.ids.tolist() == sorted({5, 17, 900, pad})  # the padding row too
    ids = torch.tensor([[900, 5, 17]])
    assert torch.equal(model.get_input_embeddings()(ids), table[ids])
    with pytest.raises(TrainingConfigError, match=r"\[6\] are outside"):
        model.get_input_embeddings()(torch.tensor([[5, 6]]))
    with torch.no_grad():
        rows.weight.add_(1.0)
    with rows.whole():
        after = model.get_input_embeddings().weight
        assert after is model.get_output_embeddings().weight  # tied again
        assert torch.equal(after[rows.ids], table[rows.ids] + 1.0)
        others = torch.ones(len(table), dtype=torch.bool)
        others[rows.ids] = False
        assert torch.equal(after[others], table[others])
    # cut again after: the table the run's steps trained (a checkpoint saved now holds it)
    assert model.get_input_embeddings().weight is rows.weight
    assert model.get_output_embeddings().weight is rows.weight
