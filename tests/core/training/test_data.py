"""The training data (ablate.core.training.data): the padding collator's rows and labels."""

from __future__ import annotations

from ablate.core.training.data import PolicyCollator


def test_collator_labels_only_on_response_tokens():
    batch = PolicyCollator(pad_token_id=11)(
        [
            {"input_ids": [1, 5, 6, 7, 8], "prompt_length": 3},
            {"input_ids": [1, 9, 10], "prompt_length": 2},
        ]
    )
    assert batch["input_ids"].tolist() == [[1, 5, 6, 7, 8], [1, 9, 10, 11, 11]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, -100, 7, 8], [-100, -100, 10, -100, -100]]
    assert batch["prompt_lengths"].tolist() == [3, 2]
