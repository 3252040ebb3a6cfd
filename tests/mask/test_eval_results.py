"""An evaluation's per-task results (ablate.mask.eval_results.task_result), worked by hand: the
chance a uniform guess's expected accuracy, acc_tokens against acc_norm."""

from __future__ import annotations


class HandTask:
    """Two docs' choices and golds, as an lm-eval task gives them to the results code."""

    multiple_input = False

    def doc_to_choice(self, doc):
        return doc["choices"]

    def doc_to_target(self, doc):
        return doc["gold"]


def test_acc_tokens_divides_by_tokens_acc_norm_by_characters():
    """Worked by hand. Doc 0: log-likelihoods -6 and -8 over 6 and 16 characters (-1.0, -0.5 per
    character: acc_norm picks choice 1) and over 3 and 2 tokens (-2.0, -4.0 per token: acc_tokens
    picks choice 0, the gold). Doc 1: -3 and -2.5 over 1 and 5 tokens (-3.0, -0.5): choice 1, the
    gold. acc_tokens = 1.0 where acc_norm = 0.5."""
    from ablate.mask.eval_results import task_result

    docs = [
        {"choices": ["xxxxxx", "y" * 16], "gold": 0, "lls": [-6.0, -8.0], "tokens": [3, 2]},
        {"choices": ["abc", "def"], "gold": 1, "lls": [-3.0, -2.5], "tokens": [1, 5]},
    ]
    samples, counts = [], {}
    for i, d in enumerate(docs):
        args = [(f"ctx {i}", c) for c in d["choices"]]
        counts.update(zip(args, d["tokens"]))
        samples.append(
            {
                "doc_id": i,
                "doc": d,
                "doc_hash": str(i),
                "arguments": args,
                "filtered_resps": [(ll, False) for ll in d["lls"]],
                "acc": 1.0,
                "acc_norm": float(i == 1),
            }
        )
    results = {"acc,none": 1.0, "acc_norm,none": 0.5}
    entry, rows = task_result("t", HandTask(), results, samples, "acc_tokens", counts)
    assert (entry["score"], entry["acc_tokens"], entry["acc_tokens_stderr"]) == (1.0, 1.0, 0.0)
    assert [r["predicted_norm"] for r in rows[::2]] == [1, 1]
    assert [r["predicted_tokens"] for r in rows[::2]] == [0, 1]
    assert [r["tokens"] for r in rows] == [3, 2, 1, 5]


def test_chance_is_a_uniform_guess_expected_accuracy_not_the_originals():
    """Each task's chance is mean(1 / choices), a uniform guess's expected accuracy; the
    original's eval_mcq.py reports 1 / mean(choices), lower wherever the docs' choice counts
    differ (Jensen): 0.2611 against 0.2500 on docs of 4, 3 and 5 choices. The learned claim
    reads this chance."""
    from ablate.mask.eval_results import task_result

    counts = [4, 3, 5]
    samples = []
    for i, n in enumerate(counts):
        doc = {"choices": [f"c{j}" for j in range(n)], "gold": 0}
        args = [(f"q{i}", c) for c in doc["choices"]]
        resps = [(-float(j), False) for j in range(n)]
        samples.append(
            {"doc_id": i, "doc": doc, "doc_hash": str(i), "arguments": args,
             "filtered_resps": resps, "acc": 1.0, "acc_norm": 1.0}
        )  # fmt: skip
    tokens = {a: 1 for s in samples for a in s["arguments"]}
    entry, _ = task_result("t", HandTask(), {"acc,none": 1.0}, samples, "acc", tokens)
    original = 1.0 / max(sum(counts) / len(counts), 1.0)  # evaluate_task's chance, transcribed
    assert (round(entry["chance"], 4), original) == (0.2611, 0.25)
