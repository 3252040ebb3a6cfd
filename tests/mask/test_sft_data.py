"""The SFT pairs (ablate.mask.sft_data.tokenize_pair) in both formats: mask.data.sft_format:
original against the original code's finetune_sft.py (qudent/ministral-prefill-mask-ablation),
transcribed below as the reference; alpaca, the default, its BOS and preamble on top."""

from __future__ import annotations

import pytest


def format_alpaca_record(row):
    """finetune_sft.py's template, transcribed."""
    instruction = str(row.get("instruction", "")).strip()
    context = str(row.get("input", "")).strip()
    output = str(row.get("output", "")).strip()
    if context:
        prompt = f"### Instruction:\n{instruction}\n\n### Input:\n{context}\n\n### Response:\n"
    else:
        prompt = f"### Instruction:\n{instruction}\n\n### Response:\n"
    return prompt, output


def encode_record(row, tokenizer, max_seq_len):
    """finetune_sft.py's tokenization, transcribed: input ids and prompt length."""
    prompt, response = format_alpaca_record(row)
    prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
    response_ids = tokenizer(response + tokenizer.eos_token, add_special_tokens=False).input_ids
    input_ids = (prompt_ids + response_ids)[:max_seq_len]
    return input_ids, min(len(prompt_ids), len(input_ids))


SFT_ROWS = [
    {"instruction": " Give three tips for staying healthy.\n", "input": "", "output": "Eat well. "},
    {"instruction": "Translate to French.", "input": "  Good morning ", "output": "Bonjour."},
]


@pytest.mark.parametrize("row", SFT_ROWS, ids=["no_input", "input"])
def test_original_sft_format_is_finetune_sft(tokenizer, row):
    from ablate.mask.sft_data import tokenize_pair

    pair = tokenize_pair(tokenizer, row, 1024, "original")
    assert (pair.input_ids, pair.prompt_length) == encode_record(row, tokenizer, 1024)


def test_alpaca_format_adds_bos_and_the_preamble(tokenizer):
    """The default's prompt: BOS + the Stanford template's preamble before the same headings, the
    fields as written: 19 and 30 prompt tokens more with Tekken."""
    from ablate.mask.sft_data import tokenize_pair

    extra = [
        tokenize_pair(tokenizer, row, 1024, "alpaca").prompt_length
        - tokenize_pair(tokenizer, row, 1024, "original").prompt_length
        for row in SFT_ROWS
    ]
    assert extra == [19, 30]


def test_a_prompt_longer_than_max_seq_len(tokenizer):
    """The original cuts prompt + response at max_seq_len and drops a pair left without a response
    token; here the prompt is cut so that one response token stays."""
    from ablate.mask.sft_data import tokenize_pair

    row = {"instruction": "word " * 40, "input": "", "output": "Yes."}
    ids, prompt_len = encode_record(row, tokenizer, 8)
    assert prompt_len == len(ids) == 8  # no response token: finetune_sft.py filters it out
    pair = tokenize_pair(tokenizer, row, 8, "original")
    assert (len(pair.input_ids), pair.prompt_length) == (8, 7)
