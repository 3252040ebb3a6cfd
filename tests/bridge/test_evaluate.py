"""What each model is fed and how its answers are scored (ablate.bridge.evaluate): inputs cut and
padded, scored rows and their accuracy (fast, a character tokenizer), and the gold-leak guard on
every input of the micro pair."""

from __future__ import annotations

import pytest
import torch
from bridge_fixtures import MICRO_PARAMS

from ablate.bridge import evaluate, infer, world
from ablate.bridge import params as bridge_params
from ablate.bridge.pair import load_pair


def test_gold_leak_is_refused(bridge_cards, bridge_world, monkeypatch):
    p = bridge_params.check(bridge_params.resolve(MICRO_PARAMS))
    pair = load_pair(bridge_cards["source"], bridge_cards["target"], "gsm8k", p)
    item = world.load_dataset(bridge_world["gsm8k_test"], "gsm8k")[0]
    gold = item["answer"].split("#### ")[-1]
    # the seed's 1b fault: the evaluation prompt carried the answer
    real_prompt = world.prompt
    monkeypatch.setattr(
        world, "prompt", lambda kind, it: real_prompt(kind, it) + world.answer_text(kind, it)
    )
    with pytest.raises(evaluate.GoldLeakError, match=item["id"]):
        pair.evaluate_latent(None, [item])  # refused before the translator is ever called
    with pytest.raises(evaluate.GoldLeakError, match=item["id"]):
        bench = infer.Bench(pair, translator=None)
        bench.run("target_alone", item)
    monkeypatch.setattr(world, "prompt", real_prompt)
    leaked = {**item, "question": item["question"] + f" (#### {gold})"}
    with pytest.raises(evaluate.GoldLeakError, match="gold answer"):
        evaluate.check_no_gold("gsm8k", leaked, pair.fed_latent(leaked))
    evaluate.check_no_gold("gsm8k", item, pair.fed_latent(item))  # the clean item passes
    qa = world.load_dataset(bridge_world["qa_test"], "qa")[0]
    evaluate.check_no_gold("qa", qa, {"prompt": world.prompt("qa", qa)})  # context may name it
    with pytest.raises(evaluate.GoldLeakError):
        evaluate.check_no_gold("qa", qa, {"prompt": world.prompt("qa", qa) + " " + qa["answer"]})


def chars(text: str, add_special_tokens: bool) -> dict[str, list[int]]:
    """A tokenizer of one token per character, BOS 0 first."""
    return {"input_ids": [0] * add_special_tokens + [ord(c) for c in text]}


def test_a_long_prompt_keeps_its_bos_and_its_end_the_budget_its_start():
    a, b, c, d, e, f = map(ord, "abcdef")
    assert evaluate.text_ids(chars, "abcdef", 4) == [0, d, e, f]  # the cue at the end survives
    assert evaluate.text_ids(chars, "ab", 4) == [0, a, b]
    assert evaluate.head_ids(chars, "abcdef", 2) == [0, a, b]


@pytest.mark.parametrize("side", ["right", "left"])
def test_rows_are_padded_on_their_side(side):
    ids, mask = evaluate.pad([[1, 2, 3], [4]], 9, side)
    short = [4, 9, 9] if side == "right" else [9, 9, 4]
    assert ids.tolist() == [[1, 2, 3], short]
    assert mask.tolist() == [[1, 1, 1], [int(t != 9) for t in short]]
    assert ids.dtype == mask.dtype == torch.long
    assert evaluate.pad_before(1, 3, side) == (2 if side == "left" else 0)


def test_rows_are_scored_against_the_gold_and_averaged():
    items = [{"id": "a", "answer": "2 + 2 = 4\n#### 4"}, {"id": "b", "answer": "#### 10"}]
    rows = evaluate.score_rows("gsm8k", items, ["so #### 4", "#### 1"])
    assert [(r["id"], r["gold"], r["extracted"], r["correct"]) for r in rows] == [
        ("a", "4", "4", True),
        ("b", "10", "1", False),
    ]
    assert evaluate.accuracy(rows)["accuracy"] == 0.5
    assert evaluate.accuracy([]) == {"accuracy": 0.0, "em": 0.0, "f1": 0.0}
