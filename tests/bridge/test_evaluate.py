"""What each model is fed and the gold-leak guard on it (ablate.bridge.evaluate), on the micro pair."""

from __future__ import annotations

import pytest
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
