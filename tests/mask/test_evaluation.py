"""Evaluation through lm-eval under a mask policy (ablate.mask.evaluation): stock equality,
outputs, errors (the lm-eval model itself, its VLM path: tests/mask/test_policy_lm.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ablate.core.models.modeling import ModelLoadError, load_causal_lm
from ablate.mask import embedded
from ablate.mask.masks import POLICIES

TASKS = list(embedded.TASK_NAMES)
N_DOCS = 8


pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    # one xdist worker: the module fixture `policy_runs` (an evaluation per policy) runs once
    pytest.mark.xdist_group("mask:evaluation"),
]


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks")
    embedded.write_tasks(out, seed=0, n_docs=N_DOCS)
    return out


def _samples_by_task(res):
    return {t: {s["doc_id"]: s["filtered_resps"] for s in res["samples"][t]} for t in TASKS}


def test_causal_equals_stock_lm_eval(tiny_model_dir, tokenizer, task_dir):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from ablate.mask.lm_tasks import load_tasks
    from ablate.mask.policy_lm import MaskPolicyLM

    model = load_causal_lm(tiny_model_dir)
    runs = {}
    for label, lm in [
        ("stock", HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8)),
        ("ours", MaskPolicyLM(model, "causal", tokenizer=tokenizer, max_batch_tokens=256)),
    ]:
        tasks, _, tm = load_tasks(TASKS, [task_dir])
        runs[label] = simple_evaluate(
            model=lm,
            tasks=list(tasks.values()),
            task_manager=tm,
            log_samples=True,
            bootstrap_iters=0,
        )
    stock, ours = _samples_by_task(runs["stock"]), _samples_by_task(runs["ours"])
    n = 0
    for t in TASKS:
        assert stock[t].keys() == ours[t].keys()
        for doc_id, resps in stock[t].items():
            for (ll_s, g_s), (ll_o, g_o) in zip(resps, ours[t][doc_id], strict=True):
                assert abs(ll_s - ll_o) < 1e-4, (t, doc_id, ll_s, ll_o)
                assert g_s == g_o
                n += 1
        for m in ("acc,none", "acc_norm,none"):
            assert runs["stock"]["results"][t][m] == runs["ours"]["results"][t][m]
    assert n > 100


@pytest.fixture(scope="module")
def policy_runs(tiny_model_dir, task_dir, tmp_path_factory):
    from ablate.mask.evaluation import EvalSpec, evaluate

    out = {}
    for policy in POLICIES:
        d = tmp_path_factory.mktemp(f"eval_{policy}")
        metrics = evaluate(
            EvalSpec.parse(TASKS, limit={t: 6 for t in TASKS}, headline={"emb_order": "acc"}),
            model=tiny_model_dir,
            policy=policy,
            out_dir=d,
            task_dirs=[task_dir],
            model_id="base",
        )
        out[policy] = (d, metrics)
    return out


@pytest.mark.parametrize("policy", POLICIES)
def test_outputs_have_the_declared_fields(policy_runs, policy, task_dir):
    d, returned = policy_runs[policy]
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["policy"] == policy and metrics["run_id"] == returned["run_id"]
    assert metrics["model"]["id"] == "base" and metrics["model"]["path"]
    assert "revision" in metrics["model"]
    chance = {"emb_pair": 0.5, "emb_order": 0.5}
    for t in TASKS:
        entry = metrics["tasks"][t]
        for key in ("acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "acc_tokens", "score"):
            assert isinstance(entry[key], float), (t, key)
        assert entry["n"] == 6 and entry["chance"] == chance.get(t, 0.25)
        assert entry["headline_metric"] == ("acc" if t == "emb_order" else "acc_norm")
        assert entry["score"] == entry[entry["headline_metric"]]
    macro = metrics["macro"]
    assert macro["n_tasks"] == 5
    assert macro["score"] == pytest.approx(sum(metrics["tasks"][t]["score"] for t in TASKS) / 5)
    prov = metrics["provenance"]
    assert prov["git"]["commit"] and isinstance(prov["git"]["dirty"], bool)
    assert prov["config_hash"] and prov["wall_time_s"] > 0
    assert prov["packages"]["lm_eval"] and prov["hardware"]["cpu_count"]
    assert set(prov["task_fingerprints"]) == set(TASKS)
    for t in TASKS:  # each task's YAML and data, by the sha256 of the bytes read
        assert {f"task:{t}:{t}.yaml", f"task:{t}:{t}.jsonl"} <= set(prov["inputs"])
    ph = metrics["phases"]
    assert 0 < ph["evaluate.score"] <= ph["evaluate"] and ph["load_model"] > 0
    assert ph["total"] >= ph["load_tasks"] + ph["load_model"] + ph["evaluate"]

    samples = pd.read_parquet(d / "samples.parquet")
    assert list(samples.columns) == [
        "task", "doc_id", "choice", "choice_text", "loglikelihood", "is_greedy",
        "length", "tokens", "predicted", "predicted_norm", "predicted_tokens", "gold", "acc",
        "acc_norm", "acc_tokens",
    ]  # fmt: skip
    # Every number can be recomputed from the per-sample table.
    for t in TASKS:
        s = samples[samples.task == t]
        assert s.doc_id.nunique() == 6
        per_doc = s.groupby("doc_id")
        argmax = per_doc.loglikelihood.apply(lambda x: int(x.values.argmax()))
        norm = (
            (s.loglikelihood / s.length).groupby(s.doc_id).apply(lambda x: int(x.values.argmax()))
        )
        gold = per_doc.gold.first()
        assert (argmax == gold).mean() == pytest.approx(metrics["tasks"][t]["acc"])
        assert (norm == gold).mean() == pytest.approx(metrics["tasks"][t]["acc_norm"])
        per_token = (
            (s.loglikelihood / s.tokens).groupby(s.doc_id).apply(lambda x: int(x.values.argmax()))
        )
        assert (per_token == gold).mean() == pytest.approx(metrics["tasks"][t]["acc_tokens"])
        assert 1 / per_doc.size().mean() == pytest.approx(metrics["tasks"][t]["chance"])


def test_samples_give_the_items_of_the_recovery_table_and_claims(policy_runs, tmp_path):
    """What the paired tests read: per-item correctness of the headline metric, from the real
    samples.parquet, matching the metrics; the recovery table and a claim build from it."""
    import shutil

    from ablate.core.reports.claims import Claim, beats, evaluate_claims
    from ablate.mask import claims, items, recovery

    for d, metrics in policy_runs.values():
        correct = items.correctness(metrics, pd.read_parquet(d / "samples.parquet"))
        assert len(correct) == 6 * len(TASKS) and set(correct.unique()) <= {0.0, 1.0}
        for t in TASKS:
            assert correct.loc[t].mean() == pytest.approx(metrics["tasks"][t]["score"])
    folders = []
    for policy in ("causal", "prefill_bidir"):  # the pipeline's layout: eval/<model>/<policy>/
        folders.append(tmp_path / "eval" / "base" / policy)
        shutil.copytree(policy_runs[policy][0], folders[-1])
    metrics_files = [f / "metrics.json" for f in folders]
    samples_files = [f / "samples.parquet" for f in folders]
    from fake_evals import labels

    entries = recovery.entries_from_results(metrics_files, labels(tmp_path, {}), (), samples_files)
    df = recovery.build_recovery(entries)
    assert (df.test == "exact McNemar").all()
    assert df.p_vs_stage1.notna().sum() == len(TASKS) + 1  # the stage-2 rows
    ev = claims.context(metrics_files, samples_files)
    rule = beats(claims.key("base", "causal"), claims.key("base", "prefill_bidir"))
    row = evaluate_claims([Claim("hurts", "s", rule)], ev).iloc[0]
    assert row.n == 6 * len(TASKS) and row.verdict != "not run"
    assert policy_runs["causal"][1]["run_id"] in row.inputs


def test_policies_change_the_scores(policy_runs):
    ll = {
        p: pd.read_parquet(d / "samples.parquet").loglikelihood.to_numpy()
        for p, (d, _) in policy_runs.items()
    }
    assert abs(ll["causal"] - ll["prefill_bidir"]).max() > 1e-3
    assert abs(ll["causal"] - ll["prefix_bidir"]).max() > 1e-3
    assert abs(ll["prefix_bidir"] - ll["prefill_bidir"]).max() > 1e-3


def test_unknown_task(tiny_model_dir, task_dir, tmp_path):
    from ablate.mask.evaluation import EvalSpec, evaluate
    from ablate.mask.lm_tasks import TaskNotFoundError

    with pytest.raises(TaskNotFoundError, match=r"'emb_repeat'.*did you mean emb_repeat[35]"):
        evaluate(
            EvalSpec.parse(["emb_repeat"]),
            model=tiny_model_dir,
            policy="causal",
            out_dir=tmp_path,
            task_dirs=[task_dir],
        )
    assert not (tmp_path / "metrics.json").exists()


def test_missing_model(task_dir, tmp_path):
    from ablate.mask.evaluation import EvalSpec, evaluate

    with pytest.raises(ModelLoadError, match="does not exist"):
        evaluate(
            EvalSpec.parse(["emb_repeat5"]),
            model=tmp_path / "no_model",
            policy="causal",
            out_dir=tmp_path,
            task_dirs=[task_dir],
        )


def test_model_without_tokenizer(tiny_model_dir, task_dir, tmp_path):
    from ablate.mask.evaluation import EvalSpec, evaluate

    model_only = tmp_path / "model_only"
    load_causal_lm(tiny_model_dir).save_pretrained(model_only)
    with pytest.raises(ModelLoadError, match="tokenizer"):
        evaluate(
            EvalSpec.parse(["emb_repeat5"]),
            model=model_only,
            policy="causal",
            out_dir=tmp_path / "out",
            task_dirs=[task_dir],
        )


def test_cli(tiny_model_dir, task_dir, tmp_path):
    from ablate.cli import main

    rc = main(
        [
            "eval", "--model", str(tiny_model_dir), "--tasks", "emb_repeat5,emb_pair",
            "--policy", "prefix_bidir", "--out", str(tmp_path), "--task-dir", str(task_dir),
            "--limit", "3", "--headline", "emb_pair=acc",
        ]
    )  # fmt: skip
    assert rc == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["tasks"]["emb_pair"]["headline_metric"] == "acc"
    assert metrics["tasks"]["emb_repeat5"]["n"] == 3


def test_lm_eval_run_skips_its_environment_report(monkeypatch):
    """lm-eval's run ends with torch's environment report (pip, lscpu and GPU queries in
    subprocesses); the record drops it, so the run skips it, and lm-eval's own is back after."""
    import lm_eval.evaluator as lm_evaluator

    from ablate.mask import evaluation

    report = lm_evaluator.add_env_info
    seen = {}

    def fake_simple_evaluate(**kw):
        out = {}
        lm_evaluator.add_env_info(out)  # as lm-eval's simple_evaluate does at its end
        seen.update(out=out, seed=kw["random_seed"])
        return out

    monkeypatch.setattr(lm_evaluator, "simple_evaluate", fake_simple_evaluate)
    evaluation._run_lm_eval(None, {"t": object()}, ["t"], None, None, 0, 7)
    assert seen == {"out": {}, "seed": 7}  # no pretty_env_info, lm-eval's version, git hashes
    assert lm_evaluator.add_env_info is report
