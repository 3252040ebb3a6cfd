"""What bridge work costs (ablate.bridge.cost): an example's tokens as the pair's loss counts them,
its FLOPs with and without the frozen-state caches and the KL term, the evaluations and
generated-token bounds of a run and of the inference benchmark (fast, arithmetic on tiny shapes)."""

from __future__ import annotations

from ablate.bridge import cost
from ablate.bridge import params as bridge_params


def typed(**kw) -> bridge_params.BridgeParams:
    return bridge_params.check(bridge_params.resolve(kw))


def test_lengths_are_cut_like_the_pipeline_and_an_example_counts_source_latent_answer():
    p = typed(K=4, max_source_len=96, max_prompt_len=128)
    spec = {"source_tokens": 500, "prompt_tokens": 20, "answer_tokens": 7}
    n = cost.Lengths.of(spec, p)
    assert n == cost.Lengths(source=96, prompt=20, answer=7)  # the source cut at 96
    assert cost.latent_len(p.K, n) == 1 + 4 + 3  # BOS, K soft tokens, the cue
    assert cost.example_tokens(p.K, n) == 96 + 8 + 7  # the teacher's prompt is not counted
    assert cost.frozen_tokens("source", n) == 96 and cost.frozen_tokens("teacher", n) == 27


def test_example_flops_drop_what_the_caches_and_the_kl_switch_leave_out():
    n = cost.Lengths(source=10, prompt=6, answer=4)
    p = typed(K=2, kl_weight=0.5)
    source, target, teacher, translator = 2 * 10, 4 * (6 + 4), 2 * (6 + 4), 6 * 2
    flops = [
        cost.example_flops(p, n, 1.0, 1.0, 1.0, cached_source=cs, cached_teacher=ct)
        for cs, ct in ((False, False), (True, False), (False, True))
    ]
    assert flops == [
        source + target + teacher + translator,
        target + teacher + translator,
        source + target + translator,
    ]
    no_kl = typed(K=2, kl_weight=0.0)
    assert not cost.kl_on(no_kl)
    assert cost.example_flops(no_kl, n, 1.0, 1.0, 1.0, False, False) == source + target + translator


def test_evaluations_count_step_0_each_interval_the_end_and_the_restored_best():
    assert cost.n_evaluations(typed(steps=8, eval_every=4, restore_best=False)) == 3  # 0, 4, 8
    assert cost.n_evaluations(typed(steps=10, eval_every=4, restore_best=False)) == 4  # ..., 10
    p = typed(steps=10, eval_every=4, restore_best=True, eval_size=5, max_new_tokens=3)
    assert cost.n_evaluations(p) == 5
    assert cost.eval_generated_tokens(p) == 5 * 5 * 3


def test_the_benchmark_generates_six_answers_per_sample_and_times_one_warm_up_more():
    p = typed(max_new_tokens=3)
    assert cost.infer_generated_tokens(p, 10) == 10 * 6 * 3  # cascade generates twice
    assert cost.infer_timed_tokens(p, 2) == (2 + 1) * 6 * 3
    assert cost.infer_timed_tokens(p, 0) == 0  # no latency pass, no warm-up
