"""The original study's evaluation (config mask.eval.protocol: original, the tasks
<name>_original, the metric acc_tokens) against the original code's definitions
(qudent/ministral-prefill-mask-ablation: eval_mcq.py), transcribed below as references, and each
difference from lm-eval's scoring measured on the tiny model. The SFT format of the original
(finetune_sft.py) is tested in tests/mask/test_sft_data.py, acc_tokens and the chance worked by
hand in tests/mask/test_eval_results.py."""

from __future__ import annotations

import json
from contextlib import nullcontext

import pytest
from references import eval_mcq_logprob, score_naive

from ablate.mask import original_tasks
from ablate.mask.scoring import score_requests

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Hand-written docs in each hub dataset's schema (the fields eval_mcq.py reads).
DOCS = {
    "hellaswag_original": [
        {
            "activity_label": "Removing ice from car",
            "ctx_a": "Then, the man writes over the snow  covering the window of a car.",
            "ctx_b": "then",
            "endings": [
                ", the man adds wax to the windshield.",
                ", a person boards a ski lift.",
                ", the man puts on a coat.",
                ",  the man keeps removing the snow.",
            ],
            "label": "3",
        }
    ],
    "piqa_original": [
        {
            "goal": "When boiling  butter, when it's ready, you can",
            "sol1": "Pour it onto a plate",
            "sol2": "Pour it into a jar",
            "label": 1,
        }
    ],
    "arc_easy_original": [
        {
            "question": "Which is the most likely effect of a faster rotation?",
            "choices": {
                "text": ["Days get longer.", "Days get shorter.", "Years get longer."],
                "label": ["A", "B", "C"],
            },
            "answerKey": "B",
        },
        {  # an answer key that is no label: the original skips the question
            "question": "Broken item?",
            "choices": {"text": ["yes", "no"], "label": ["A", "B"]},
            "answerKey": "E",
        },
        {
            "question": "What do plants need  to grow?",
            "choices": {"text": ["light", "noise"], "label": ["1", "2"]},
            "answerKey": "1",
        },
    ],
    "winogrande_original": [
        {
            "sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.",
            "option1": "Sarah",
            "option2": "Maria",
            "answer": "1",
        },
        {"sentence": "no blank here", "option1": "a", "option2": "b", "answer": "2"},
    ],
}
DOCS["arc_challenge_original"] = DOCS["arc_easy_original"][:1]

# What eval_mcq.py builds from those docs (prompt, choices, label), derived by hand from its
# loaders: whitespace collapsed, no "Question: ", hellaswag's ctx_b as written, winogrande split
# at the blank; the docs it skips are absent.
EXPECTED = {
    "hellaswag_original": [
        (
            "Removing ice from car: Then, the man writes over the snow covering the window of a "
            "car. then",
            [
                " , the man adds wax to the windshield.",
                " , a person boards a ski lift.",
                " , the man puts on a coat.",
                " , the man keeps removing the snow.",
            ],
            3,
        )
    ],
    "piqa_original": [
        (
            "When boiling butter, when it's ready, you can\nAnswer:",
            [" Pour it onto a plate", " Pour it into a jar"],
            1,
        )
    ],
    "arc_easy_original": [
        (
            "Which is the most likely effect of a faster rotation?\nAnswer:",
            [" Days get longer.", " Days get shorter.", " Years get longer."],
            1,
        ),
        ("What do plants need to grow?\nAnswer:", [" light", " noise"], 0),
    ],
    "arc_challenge_original": [
        (
            "Which is the most likely effect of a faster rotation?\nAnswer:",
            [" Days get longer.", " Days get shorter.", " Years get longer."],
            1,
        )
    ],
    "winogrande_original": [
        (
            "Sarah was a much better surgeon than Maria so ",
            ["Sarah always got the harder cases.", "Maria always got the harder cases."],
            0,
        )
    ],
}


def sequence_logprob(model, tokenizer, prompt, continuation, length_normalize):
    """eval_mcq.py's scorer, transcribed (one forward of prompt + the whole continuation; the
    forward and the sum: bench/references.py's eval_mcq_logprob)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
    full_ids = tokenizer(prompt + continuation, add_special_tokens=False).input_ids
    total = eval_mcq_logprob(model, prompt_ids, full_ids)
    if length_normalize and len(full_ids) > len(prompt_ids):
        total /= max(len(full_ids) - 1 - max(len(prompt_ids) - 1, 0), 1)  # the scored tokens
    return total


class prefill_patch:
    """attention_ablation.py's patch as the original ran it (sdpa, one unpadded row): every
    attention module's ``is_causal`` False for a forward of more than one token."""

    def __init__(self, model):
        self.modules = [
            m
            for m in model.modules()
            if "attention" in type(m).__name__.lower()
            and isinstance(getattr(m, "is_causal", 0), bool)
        ]

    def __enter__(self):
        for m in self.modules:
            m.is_causal = False

    def __exit__(self, *exc):
        for m in self.modules:
            m.is_causal = True


def load_original_task(name, tmp_path):
    """The packaged task ``name`` on the hand-written docs (a local json file in place of the hub
    dataset; everything else as shipped)."""
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS[name]))
    cfg = load_yaml(original_tasks.TASK_DIR / f"{name}.yaml", resolve_func=True)
    cfg.update(
        dataset_path="json",
        dataset_name=None,
        dataset_kwargs={"data_files": {"validation": str(data)}},
    )
    return TaskManager(include_defaults=False).load([cfg])["tasks"][name]


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from ablate.core.models.modeling import load_causal_lm

    return load_causal_lm(tiny_model_dir, attn_implementation="sdpa").eval()


@pytest.fixture(scope="module")
def runs(model, tokenizer, tmp_path_factory):
    """lm-eval's run of the five original tasks under the original protocol and each policy,
    through maskpolicy-hf."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from ablate.mask.policy_lm import MaskPolicyLM

    tmp = tmp_path_factory.mktemp("original_tasks")
    tasks = {n: load_original_task(n, tmp) for n in original_tasks.NAMES}
    tm = TaskManager(include_defaults=False)  # else simple_evaluate scans lm-eval's tasks each run
    out = {}
    for policy in ("causal", "prefill_bidir"):
        lm = MaskPolicyLM(model, policy, tokenizer=tokenizer, protocol="original")
        res = simple_evaluate(
            model=lm,
            tasks=list(tasks.values()),
            task_manager=tm,
            log_samples=True,
            bootstrap_iters=0,
        )
        out[policy] = (res, lm, tasks)
    return out


@pytest.mark.parametrize("name", original_tasks.NAMES)
def test_original_tasks_build_eval_mcq_strings(runs, name):
    res, _, tasks = runs["causal"]
    samples = sorted(res["samples"][name], key=lambda s: s["doc_id"])
    assert len(samples) == len(EXPECTED[name])  # the skipped docs are gone
    for s, (prompt, choices, label) in zip(samples, EXPECTED[name]):
        assert [tuple(a) for a in s["arguments"]] == [(prompt, c) for c in choices]
        assert tasks[name].doc_to_target(s["doc"]) == label


@pytest.mark.parametrize("policy", ["causal", "prefill_bidir"])
def test_original_protocol_scores_as_eval_mcq(runs, model, tokenizer, policy):
    """Per choice, log-likelihood / continuation tokens equals eval_mcq.py's --length-normalize
    score (under prefill_bidir with its patch), and acc_tokens is its accuracy."""
    from ablate.mask.eval_results import task_result

    res, lm, tasks = runs[policy]
    n = 0
    for name in original_tasks.NAMES:
        for s in res["samples"][name]:
            prompt, _ = s["arguments"][0]
            refs = []
            for args, (ll, _) in zip(s["arguments"], s["filtered_resps"]):
                # winogrande: the original's tokenization of its prompt's trailing space drops the
                # option word from the scored span (test below); lm-eval scores it, as intended
                ctx, cont = args[0].rstrip(), args[0][len(args[0].rstrip()) :] + args[1]
                with prefill_patch(model) if policy == "prefill_bidir" else nullcontext():
                    ref = sequence_logprob(model, tokenizer, ctx, cont, True)
                assert ll / lm.continuation_tokens[tuple(args)] == pytest.approx(ref, abs=2e-5)
                refs.append(ref)
                n += 1
            entry, _ = task_result(
                name, tasks[name], res["results"][name], [s], None, lm.continuation_tokens
            )
            gold = tasks[name].doc_to_target(s["doc"])
            assert entry["acc_tokens"] == float(max(range(len(refs)), key=refs.__getitem__) == gold)
    assert n == 4 + 2 + 5 + 3 + 2


def string_pairs():
    """Every (context, continuation) string pair of the hand-written docs as lm-eval passes them
    to the model (a context's trailing space moved to its continuation)."""
    return [
        (prompt.rstrip(), prompt[len(prompt.rstrip()) :] + choice)
        for docs in EXPECTED.values()
        for prompt, choices, _ in docs
        for choice in choices
    ]


@pytest.fixture(scope="module")
def model_bf16(tiny_model_dir):
    from ablate.core.models.modeling import load_causal_lm

    return load_causal_lm(tiny_model_dir, dtype="bfloat16", attn_implementation="sdpa").eval()


@pytest.mark.parametrize("policy", ["causal", "prefill_bidir"])
def test_softmax_in_the_model_dtype_scores_as_eval_mcq_in_bf16(model_bf16, tokenizer, policy):
    """In bf16 weights, mask.eval.softmax_dtype: model (with the original protocol and
    share_contexts off: one row per request, as eval_mcq.py) gives each request eval_mcq.py's
    summed log-likelihood (its log_softmax of the bf16 logits, its bf16 sum) to the last bit;
    the default's fp32 log-softmax gives other numbers (measured on the tiny model: up to 0.04
    nats per token, docs/differences.md). With share_contexts on, a few sums differ by bf16
    steps (bench/results/bf16_share_contexts_epyc.md)."""
    from ablate.mask.policy_lm import MaskPolicyLM

    pairs = string_pairs()
    reqs = []
    for ctx, cont in pairs:
        ctx_ids = tokenizer(ctx, add_special_tokens=False).input_ids
        whole = tokenizer(ctx + cont, add_special_tokens=False).input_ids
        reqs.append((None, ctx_ids, whole[len(ctx_ids) :]))
    with prefill_patch(model_bf16) if policy == "prefill_bidir" else nullcontext():
        refs = [sequence_logprob(model_bf16, tokenizer, c, x, False) for c, x in pairs]
    got = {}
    for softmax_dtype in ("model", "float32"):
        lm = MaskPolicyLM(
            model_bf16,
            policy,
            tokenizer=tokenizer,
            protocol="original",
            softmax_dtype=softmax_dtype,
            share_contexts=False,
        )
        got[softmax_dtype] = [ll for ll, _ in lm._loglikelihood_tokens(reqs, disable_tqdm=True)]
    assert got["model"] == refs
    per_token = [abs(a - b) / len(r[2]) for a, b, r in zip(got["float32"], refs, reqs)]
    assert max(per_token) > 1e-3, per_token


def requests(tokenizer, bos: bool):
    """The hand-written docs' requests as lm-eval encodes them (a context's trailing space moved
    to its continuation), with or without BOS."""
    out = []
    for docs in EXPECTED.values():
        for prompt, choices, _ in docs:
            for choice in choices:
                ctx = prompt.rstrip()
                ctx_ids = tokenizer(ctx, add_special_tokens=False).input_ids
                whole = tokenizer(prompt + choice, add_special_tokens=False).input_ids
                out.append(([tokenizer.bos_token_id] * bos + ctx_ids, whole[len(ctx_ids) :]))
    return out


def mean_gap(a, b) -> float:
    return sum(abs(x[0] - y[0]) for x, y in zip(a, b, strict=True)) / len(a)


def test_only_the_lm_eval_protocol_prepends_bos(model, tokenizer):
    from ablate.mask.policy_lm import MaskPolicyLM

    ids = {
        p: MaskPolicyLM(model, "causal", tokenizer=tokenizer, protocol=p).tok_encode("Days get")
        for p in ("lm_eval", "original")
    }
    assert ids["lm_eval"] == [tokenizer.bos_token_id, *ids["original"]]
    assert tokenizer.bos_token_id not in ids["original"]


def test_bos_moves_each_score(model, tokenizer):
    """BOS vs none, causal, the same continuation tokens: 0.031 nats per request on the tiny
    model (docs/differences.md); a change that removes or grows it fails."""
    with_bos = score_requests(model, requests(tokenizer, True), "causal")
    without = score_requests(model, requests(tokenizer, False), "causal")
    assert 0.01 < mean_gap(with_bos, without) < 0.1


def test_whole_continuation_rows_differ_only_under_prefill_bidir(model, tokenizer):
    """The original's rows hold the continuation's last token: under prefill_bidir every
    prediction sees it (0.047 nats per request on the tiny model), under causal and
    prefix_bidir nothing does (equal scores)."""
    reqs = requests(tokenizer, False)
    for policy in ("causal", "prefix_bidir"):
        assert (
            mean_gap(
                score_requests(model, reqs, policy, whole_continuation=True),
                score_requests(model, reqs, policy),
            )
            < 1e-5
        )
    gap = mean_gap(
        score_requests(model, reqs, "prefill_bidir", whole_continuation=True),
        score_requests(model, reqs, "prefill_bidir"),
    )
    assert 0.015 < gap < 0.15


def test_a_one_token_answer_leaks_only_in_the_original_rows(model, tokenizer):
    """lm-eval's row of a one-token continuation is all context: prefill_bidir scores it as
    prefix_bidir does. The original's row holds the answer token, which every position sees."""
    one = [r for r in requests(tokenizer, False) if len(r[1]) == 1]
    assert one  # arc's " light" / " noise"
    for whole, leaks in ((False, False), (True, True)):
        gap = mean_gap(
            score_requests(model, one, "prefill_bidir", whole_continuation=whole),
            score_requests(model, one, "prefix_bidir", whole_continuation=whole),
        )
        assert (gap > 1e-4) is leaks, (whole, gap)


@pytest.mark.parametrize("policy", ["causal", "prefix_bidir"])
def test_shared_contexts_on_whole_rows_equal_one_forward_each(model, tokenizer, policy):
    reqs = requests(tokenizer, False)
    ref = score_naive(model, reqs, policy, max_length=2048, whole_continuation=True)
    got = score_requests(model, reqs, policy, share_contexts=True, whole_continuation=True)
    assert mean_gap(got, ref) < 1e-5


def test_winogrande_fault_of_the_original(tokenizer):
    """eval_mcq.py tokenizes its winogrande prompt with the trailing space: Tekken encodes that
    space as a token of its own, which prompt + option merges into the option word, so the
    original scored from the token after the option word on (the option never scored). The
    task here scores the option word (lm-eval moves the space into the continuation)."""
    prompt, choices, _ = EXPECTED["winogrande_original"][0]
    prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
    full = tokenizer(prompt + choices[0], add_special_tokens=False).input_ids
    original_scored = full[len(prompt_ids) :]  # eval_mcq.py's targets[start:]
    ours = requests(tokenizer, False)[-2][1]  # the same choice, as lm-eval encodes it
    option = tokenizer(" Sarah", add_special_tokens=False).input_ids
    assert ours[: len(option)] == option
    assert ours[len(option) :] == original_scored


def test_winogrande_blank_first_the_original_never_scores_the_first_token(model, tokenizer):
    """A sentence whose blank is its first character: the original's prompt is empty, so it
    scores option + rest without BOS from the second token on (the first is never predicted,
    its --length-normalize divides by one token fewer); lm-eval makes the empty context its BOS
    and scores every token (docs/differences.md: the gap measured here on the tiny model)."""
    from lm_eval.api.instance import Instance

    from ablate.mask.original_tasks import prompts
    from ablate.mask.policy_lm import MaskPolicyLM

    doc = {
        "sentence": "_ always got the harder cases, as Sarah was a much better surgeon.",
        "option1": "Maria",
        "option2": "Sarah",
        "answer": "1",
    }
    ctx = prompts.winogrande_text(doc)
    assert ctx == ""
    lm = MaskPolicyLM(model, "causal", tokenizer=tokenizer, protocol="original")
    gaps = []
    for cont in prompts.winogrande_choices(doc):
        ids = tokenizer(cont, add_special_tokens=False).input_ids
        [(ll, _)] = lm.loglikelihood([Instance("loglikelihood", doc, (ctx, cont), 0)], True)
        [(every, _)] = score_requests(model, [([tokenizer.bos_token_id], ids)], "causal")
        assert ll == pytest.approx(every, rel=1e-6)
        assert lm.continuation_tokens[(ctx, cont)] == len(ids)
        original = sequence_logprob(model, tokenizer, ctx, cont, False)
        [(rest, _)] = score_requests(model, [(ids[:1], ids[1:])], "causal")
        assert original == pytest.approx(rest, rel=1e-6)
        gaps.append(original - ll)
    assert min(gaps) > 1.0, gaps  # the first token's log-likelihood and BOS's context


def record(run_id, policy, protocol, score):
    task = {"headline_metric": "acc_tokens", "score": score, "acc_tokens_stderr": 0.01, "n": 50}
    return {
        "run_id": run_id,
        "policy": policy,
        "tasks": {"piqa_original": {**task, "chance": 0.5}},
        "macro": {"score": score, "chance": 0.5, "n_tasks": 1},
        "provenance": {"run_id": run_id, "config": {"protocol": protocol}},
    }


def test_recovery_table_and_claims_name_the_protocol_and_sft_format(tmp_path):
    """Each recovery row names its evaluation's protocol (from its record) and its finetune's
    SFT format (from the finetune's summary); the claims' note and the score plot's title say
    both, so two protocols' numbers are never compared unknowingly."""
    from ablate.mask import recovery
    from ablate.mask.claims import protocol_note

    files = {}
    for run_id, model, policy, score in (
        ("r1", "base", "causal", 0.8),
        ("r2", "base", "prefill_bidir", 0.6),
        ("r3", "3B", "prefill_bidir", 0.7),
    ):
        path = tmp_path / "eval" / model / policy / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(record(run_id, policy, "original", score)))
        files[run_id] = str(path)
    summary = tmp_path / "finetune" / "3B" / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(
        json.dumps(
            {"provenance": {"run_id": "t3b", "config": {"params": {"sft_format": "original"}}}}
        )
    )
    labels = {
        files["r1"]: {"stage": 1, "variant": "base", "train_policy": None},
        files["r2"]: {"stage": 2, "variant": "base", "train_policy": None},
        files["r3"]: {"stage": 4, "variant": "3B", "train_policy": "prefix_bidir"},
    }
    entries = recovery.entries_from_results(list(files.values()), labels, [summary])
    df = recovery.build_recovery(entries)
    assert set(df["protocol"]) == {"original"}
    assert df.loc[df["variant"] == "base", "sft_format"].isna().all()  # not finetuned
    assert (df.loc[df["variant"] == "3B", "sft_format"] == "original").all()
    assert protocol_note(files.values(), ["original"]) == (
        "Scoring protocol: original (headline metrics: acc_tokens); SFT format of the finetunes: "
        "original. docs/differences.md says how each differs from the original study's."
    )
    # a record from before the protocol was recorded, beside one of lm-eval's: both named
    assert recovery.protocol_line([None, "lm_eval"], ["acc", "acc_norm"], []) == (
        "Scoring protocol: lm_eval, unrecorded (headline metrics: acc, acc_norm). "
        "docs/differences.md says how each differs from the original study's."
    )


def test_the_switches_are_in_the_jobs_slices_and_stale_lines(tmp_path, monkeypatch):
    """Switching to the original protocol and SFT format makes the evaluations and finetunes
    stale (their run-cache keys change with their slices), each line naming the key it edits."""
    import copy

    from ablate.core import planner
    from ablate.core.reruns.stale import stale_lines
    from ablate.mask import layout

    root = original_tasks.TASK_DIR.parents[3]
    cfg = planner.load_config(root / "config" / "config.yaml")
    cfg["results"] = str(tmp_path / "res")
    for job in layout.jobs(cfg):
        if job.name in ("eval/base/causal", "finetune/3B"):
            record = tmp_path / job.record
            record.parent.mkdir(parents=True)
            record.write_text(json.dumps({"provenance": {"config": job.config}}))
    new = copy.deepcopy(cfg)
    new["mask"]["eval"]["protocol"] = "original"
    new["mask"]["eval"]["softmax_dtype"] = "model"
    new["mask"]["finetune"]["defaults"]["sft_format"] = "original"
    jobs = {j.name: j for j in layout.jobs(new)}
    assert jobs["eval/base/causal"].config["protocol"] == "original"
    assert jobs["eval/base/causal"].config["softmax_dtype"] == "model"
    assert jobs["finetune/3B"].config["params"]["sft_format"] == "original"
    monkeypatch.chdir(tmp_path)  # the records are read from the working directory
    lines = stale_lines(jobs.values(), new)
    assert (
        'stale: eval_model base/causal: mask.eval.protocol "lm_eval" -> "original", '
        'mask.eval.softmax_dtype <absent> -> "model"'
    ) in lines
    assert (
        'stale: finetune 3B: mask.finetune.variants.3B.sft_format "alpaca" -> "original" '
        "(now set by mask.finetune.defaults.sft_format)"
    ) in lines


def test_the_overlay_evaluates_the_original_protocol_on_pinned_datasets(tmp_path):
    """config/ministral3b-original.yaml over config/ministral3b.yaml: every evaluation's slice
    holds the original protocol, its tasks with acc_tokens and their hub datasets pinned as
    lm-eval's are; every finetune trains in the original SFT format; its own results folder."""
    from ablate.core import planner
    from ablate.mask import layout

    config = original_tasks.TASK_DIR.parents[3] / "config"
    cfg = planner.load_config([config / "ministral3b.yaml", config / "ministral3b-original.yaml"])
    assert cfg["results"] == "results/ministral3b-original"
    cfg["results"] = str(tmp_path)  # no lock there: the pins name the branch, offline
    jobs = layout.jobs(cfg)
    evals = [j for j in jobs if j.rule == "eval_model"]
    assert len(evals) == 8
    for job in evals:
        assert job.config["protocol"] == "original"
        assert job.config["softmax_dtype"] == "model"
        assert {t["name"]: t["metric"] for t in job.config["tasks"]} == {
            n: "acc_tokens" for n in original_tasks.NAMES
        }
        assert job.config["datasets"]["arc_challenge_original"] == {
            "path": "allenai/ai2_arc",
            "name": "ARC-Challenge",
            "revision": "main",
        }
    finetunes = [j for j in jobs if j.rule == "finetune"]
    assert {j.config["params"]["sft_format"] for j in finetunes} == {"original"}


def test_the_softmax_dtype_at_its_default_leaves_the_evaluations_slices_as_they_were():
    """mask.eval.softmax_dtype came after evaluations were recorded: at its default it is not in
    their slice (their records and run-cache keys stay), set to model it is."""
    from ablate.core import planner
    from ablate.mask import layout

    root = original_tasks.TASK_DIR.parents[3]
    cfg = planner.load_config(root / "config" / "config.yaml")
    assert cfg["mask"]["eval"]["softmax_dtype"] == "float32"  # the schema's default, filled in
    sliced, _ = layout.eval_slice(cfg)
    assert "softmax_dtype" not in sliced
    cfg["mask"]["eval"]["softmax_dtype"] = "model"
    assert layout.eval_slice(cfg)[0] == {**sliced, "softmax_dtype": "model"}
