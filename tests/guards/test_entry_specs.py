"""Each job's entry point takes one typed spec, its fields named as the keys of the job's config
slice, and at most 6 other parameters (the job's files and runtime objects)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from ablate.core.config import subschema
from ablate.core.training import driver, loop

MAX_OTHERS = 6


def entry_points():
    from ablate.bridge import infer, states
    from ablate.bridge.training import entries as bridge_entries
    from ablate.mask import evaluation, leakage
    from ablate.mask.training import entries

    return [
        driver.train_run,
        loop.setup,  # a study's run (the mask policy's too) is loop.Spec with the study's recipe
        entries.finetune,
        evaluation.evaluate,
        leakage.run_probe,
        bridge_entries.train_entry,
        infer.benchmark,
        states.compute,
    ]


@pytest.mark.parametrize("entry", entry_points(), ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_entry_point_takes_one_spec_and_few_others(entry):
    params = list(inspect.signature(entry).parameters.values())
    spec, others = params[0], [p for p in params[1:] if p.kind is not p.VAR_KEYWORD]
    hints = inspect.get_annotations(entry, eval_str=True)
    assert dataclasses.is_dataclass(hints[spec.name]), f"{entry.__name__}: {spec.name}"
    assert len(others) <= MAX_OTHERS, [p.name for p in others]
    assert all(p.kind is p.KEYWORD_ONLY for p in others)


def fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_specs_are_named_as_their_config_slices():
    """The mask's specs: a field per key of the job's slice (the finetune's, ablate.mask.layout;
    the evaluation's and the probe's, their config nodes), besides a command line's own."""
    from ablate.mask import layout
    from ablate.mask.evaluation import EvalSpec
    from ablate.mask.leakage import PROBE_KEYS, ProbeSpec
    from ablate.mask.training.entries import FinetuneSpec

    variant = {"stage": 3, "policy": "causal", "allow_leakage": False, "params": {}}
    assert fields(FinetuneSpec) == set(layout.finetune_slice("3A", variant))
    node = "properties/mask/properties/"
    # the evaluation's slice: mask.eval, and for hub tasks their pinned datasets (layout.eval_slice)
    evals = set(subschema(node + "eval")["properties"]) | {"datasets"}
    assert fields(EvalSpec) - {"device"} == evals
    assert set(PROBE_KEYS) == set(subschema(node + "leakage")["properties"])
    assert set(PROBE_KEYS) <= fields(ProbeSpec)


def test_a_spec_records_the_slice_it_was_built_from():
    from ablate.mask.evaluation import EvalSpec
    from ablate.mask.leakage import ProbeSpec
    from ablate.mask.training.entries import FinetuneSpec

    ft = {"variant": "3A", "stage": 3, "policy": "causal", "allow_leakage": False, "params": {}}
    assert FinetuneSpec(**ft).config_slice() == ft
    ev = {
        "ablated_policy": "prefill_bidir",
        "tasks": [{"name": "t", "metric": "acc", "limit": None}],
        "dtype": "float32",
        "max_batch_tokens": 64,
        "share_contexts": True,
        "bootstrap_iters": 0,
        "seed": 0,
        "protocol": "lm_eval",
    }
    assert EvalSpec(**ev).config_slice() == ev
    probe = {"n_pairs": 4, "max_seq_len": 8, "batch_size": 2, "dtype": "float32", "threshold": None}
    assert ProbeSpec(**probe).config_slice() == probe
