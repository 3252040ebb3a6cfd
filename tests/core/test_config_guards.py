"""Config files that cannot say what they seem to: a key written twice (YAML keeps the second
silently), and values that cannot work (a learning rate or step count out of range, an eval_size
that leaves no SFT row to train on). Each is refused at parse time, in one line naming the key,
before any job starts and before Snakemake removes a finished job's outputs."""

from __future__ import annotations

import jsonschema
import pytest
from helpers import ROOT, dry_run, dry_run_with, edit, validated

from ablate.core.config import ConfigError, subschema
from ablate.core.user_yaml import load_config_file

DEFAULT = (ROOT / "config" / "config.yaml").read_text()


def written_twice(after: str, line: str) -> str:
    """The embedded default with ``line`` added after the line ``after`` (same indentation)."""
    assert DEFAULT.count(after + "\n") == 1, after
    return DEFAULT.replace(after + "\n", after + "\n" + line + "\n")


TWICE = {
    # the causal 3A written again as a prefix-LM: the first would vanish
    "variant": (
        "      3B: {stage: 3, policy: prefix_bidir}",
        "      3A: {stage: 3, policy: prefix_bidir}",
        "mask.finetune.variants.3A",
    ),
    "finetune default": (
        "      max_steps: 200",
        "      max_steps: 20",
        "mask.finetune.defaults.max_steps",
    ),
    "bridge grid entry": ("    2b: {K: 6}", "    1a: {K: 2}", "bridge.grid.1a"),
}


def line_of(text: str, line: str) -> int:
    return text.splitlines().index(line) + 1


@pytest.mark.parametrize("case", list(TWICE))
def test_key_written_twice_is_refused_by_status_and_plan(case, tmp_path):
    """What `ablate status` and `ablate plan` read (planner.inputs.load_config): the file, the
    key and both lines."""
    from ablate.core.planner.inputs import PlanError, load_config

    after, line, key = TWICE[case]
    text = written_twice(after, line)
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    first = next(
        i + 1
        for i, x in enumerate(text.splitlines())
        if x.split(":")[0] == line.split(":")[0] and x != line
    )
    with pytest.raises(PlanError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: the key {key} is written twice, at lines {first} and {line_of(text, line)} "
        "(YAML would keep the second silently): delete one of them"
    )


def test_key_written_twice_fails_the_dry_run(workflow_copy):  # noqa: F811
    """Snakemake's own --configfile loader keeps the second 3A; the Snakefile names both."""
    after, line, key = TWICE["variant"]
    text = written_twice(after, line)
    path = workflow_copy / "config" / "twice.yaml"
    path.write_text(text)
    r = dry_run(workflow_copy, "-n", "--configfile", "config/twice.yaml")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert (
        f"config/twice.yaml: the key {key} is written twice, at lines "
        f"{line_of(text, '      3A: {stage: 3, policy: causal}')} and {line_of(text, line)}"
    ) in out, out
    assert "Building DAG" not in out, out


def test_ablate_train_params_file_with_a_key_written_twice(tmp_path, capsys):
    """`ablate train --params FILE.yaml` reads through the same loader: refused before training."""
    from ablate.mask.training.cli import main

    params = tmp_path / "params.yaml"
    params.write_text("max_steps: 5\nlearning_rate: 1.0e-3\nmax_steps: 50\n")
    out = tmp_path / "out"
    argv = ["pretrain", "--corpus", "c.jsonl", "--tokenizer", "tok", "--out", str(out)]
    assert main([*argv, "--params", str(params)]) == 2
    assert capsys.readouterr().err == (
        f"error: --params: {params}: the key max_steps is written twice, at lines 1 and 3 "
        "(YAML would keep the second silently): delete one of them\n"
    )
    assert not out.exists()


def test_a_key_over_a_merged_one_is_no_duplicate(tmp_path):
    """YAML's own override (a key after `<<: *anchor`) and one key in two mappings are fine."""
    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {lr: 1, steps: 2}\nrun: {<<: *b, lr: 3}\nother: {lr: 4}\n")
    assert load_config_file(path) == {
        "base": {"lr": 1, "steps": 2},
        "run": {"lr": 3, "steps": 2},
        "other": {"lr": 4},
    }
    path.write_text("a:\n  - {x: 1, y: 2, x: 3}\n")
    with pytest.raises(ConfigError, match=r"the key a\.0\.x is written twice, at lines 2 and 2"):
        load_config_file(path)


# --------------------------------------------------------------- values that cannot work


def limit(pointer: str) -> float:
    return subschema(pointer)["maximum"]


LEARNING_RATE = "$defs/finetune_params/properties/learning_rate"
MAX_STEPS = "$defs/finetune_params/properties/max_steps"


@pytest.mark.parametrize(
    "path, value, pointer",
    [
        ("mask.finetune.defaults.learning_rate", 1.0e30, LEARNING_RATE),
        ("mask.finetune.variants.5B.learning_rate", 1.0e30, LEARNING_RATE),
        ("mask.model.embedded.pretrain.learning_rate", 2.0, LEARNING_RATE),
        ("mask.finetune.defaults.max_steps", 10**12, MAX_STEPS),
        ("mask.finetune.variants.5B.max_steps", 10**12, MAX_STEPS),
    ],
)
def test_learning_rate_and_steps_out_of_range_name_key_value_and_limit(path, value, pointer):
    from ablate.core.config import schema_error

    with pytest.raises(jsonschema.ValidationError) as info:
        validated(edit(path, value))
    assert schema_error(info.value) == (
        f"invalid config at {path}: {value!r} is greater than the maximum of {limit(pointer)!r}"
    )


@pytest.mark.parametrize("key, pointer", [("lr", LEARNING_RATE), ("steps", MAX_STEPS)])
def test_bridge_bounds_are_the_cores(key, pointer):
    """The bridge's grid-entry params (their own schema) take the same bounds."""
    from ablate.bridge import params as bridge_params

    bridge_params.resolve({key: limit(pointer)})
    with pytest.raises(bridge_params.BridgeConfigError, match=rf"bridge\.{key}: .* maximum of"):
        bridge_params.resolve({key: limit(pointer) * 10})


#: a step of one example: the eval_size tests below hold no step size to account
ONE_EXAMPLE = {"batch_size": 1, "grad_accum": 1}


def finetune_config(sft: dict, variants: dict, defaults: dict) -> dict:
    defaults = {**ONE_EXAMPLE, **defaults}
    return {"mask": {"data": sft, "finetune": {"variants": variants, "defaults": defaults}}}


def test_eval_size_that_leaves_no_training_row_is_refused(tmp_path):
    """Against the embedded data's size, and the rows of a local .jsonl (blank lines are no rows,
    as sft_data reads them); a variant's own eval_size is named where it is set; a hub dataset's
    rows are unknown before the download."""
    from ablate.mask import variants as mask_variants

    variants = {"3A": {"stage": 3, "policy": "causal"}, "3B": {"stage": 3, "policy": "causal"}}
    embedded = {"source": "embedded", "embedded": {"sft_pairs": 1600}}
    for ok in (0, 1599):
        cfg = finetune_config(embedded, variants, {"eval_size": ok, "seed": 0})
        mask_variants.check_sft_sizes(cfg, mask_variants.variants_of(cfg))
    cfg = finetune_config(embedded, variants, {"eval_size": 100000, "seed": 0})
    with pytest.raises(ConfigError) as info:
        mask_variants.check_sft_sizes(cfg, mask_variants.variants_of(cfg))
    assert str(info.value) == (
        "invalid config at mask.finetune.defaults.eval_size: 100000 held-out rows leave none to "
        "train on: the SFT data has 1600 (mask.data.embedded.sft_pairs); set it below 1600"
    )

    rows = tmp_path / "sft.jsonl"
    rows.write_text('{"prompt": "a", "output": " b"}\n\n' * 5)
    local = {"source": "hub", "sft": str(rows)}
    cfg = finetune_config(local, {**variants, "3B": {**variants["3B"], "eval_size": 5}}, {})
    cfg["mask"]["finetune"]["defaults"] = {**ONE_EXAMPLE, "eval_size": 4, "seed": 0}
    with pytest.raises(ConfigError, match=r"variants\.3B\.eval_size: 5 held-out rows .* has 5 "):
        mask_variants.check_sft_sizes(cfg, mask_variants.variants_of(cfg))
    hub = finetune_config({"source": "hub", "sft": "yahma/alpaca-cleaned"}, variants, {})
    hub["mask"]["finetune"]["defaults"] = {**ONE_EXAMPLE, "eval_size": 10**9, "seed": 0}
    mask_variants.check_sft_sizes(hub, mask_variants.variants_of(hub))


def test_a_step_of_more_examples_than_training_rows_is_refused(tmp_path):
    """``batch_size``/``grad_accum`` of 1e8 passed the dry run: a step draws its examples from a
    stream of epochs, so one of more examples than the rows it trains on holds rows twice (the
    gradient of one pass, at more cost) in micro-batches no memory holds. Refused against the
    rows left after eval_size, the embedded data's or a local .jsonl's; a hub dataset's rows are
    known only once downloaded (the finetune stops on it there)."""
    from ablate.mask import variants as mask_variants

    variants = {"3A": {"stage": 3, "policy": "causal"}}
    embedded = {"source": "embedded", "embedded": {"sft_pairs": 1600}}
    fits = finetune_config(
        embedded, variants, {"eval_size": 32, "batch_size": 98, "grad_accum": 16}
    )
    mask_variants.check_sft_sizes(fits, mask_variants.variants_of(fits))  # 1568 = 1600 - 32
    huge = {"eval_size": 32, "batch_size": 10**8, "grad_accum": 10**8, "seed": 0}
    cfg = finetune_config(embedded, variants, huge)
    with pytest.raises(ConfigError) as info:
        mask_variants.check_sft_sizes(cfg, mask_variants.variants_of(cfg))
    assert str(info.value) == (
        "invalid config at mask.finetune.defaults.batch_size and "
        "mask.finetune.defaults.grad_accum: finetune 3A: a step of batch_size 100000000 x "
        "grad_accum 100000000 = 10000000000000000 examples is more than the 1568 rows it trains "
        "on (1600 SFT rows, mask.data.embedded.sft_pairs, less eval_size 32): a step would hold "
        "rows twice (the gradient of one pass over them, at more cost); make batch_size x "
        "grad_accum at most 1568"
    )
    rows = tmp_path / "sft.jsonl"
    rows.write_text('{"prompt": "a", "output": " b"}\n' * 10)
    local = {"source": "hub", "sft": str(rows)}
    cfg = finetune_config(local, {"3A": {**variants["3A"], "grad_accum": 11}}, {"eval_size": 0})
    with pytest.raises(ConfigError, match=r"variants\.3A\.grad_accum: finetune 3A: .* = 11 "):
        mask_variants.check_sft_sizes(cfg, mask_variants.variants_of(cfg))
    hub = finetune_config({"source": "hub", "sft": "yahma/alpaca-cleaned"}, variants, huge)
    mask_variants.check_sft_sizes(hub, mask_variants.variants_of(hub))


def test_a_step_of_more_examples_than_training_rows_fails_the_dry_run(workflow_copy):  # noqa: F811
    cfg = edit("mask.finetune.defaults.batch_size", 10**8)
    r = dry_run_with(workflow_copy, cfg)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "finetune 3A: a step of batch_size 100000000 x grad_accum 1 = " in out, out
    assert "Traceback" not in out and "Building DAG" not in out, out


def test_eval_size_over_the_data_fails_the_dry_run(workflow_copy):  # noqa: F811
    """The reported case: 1600 embedded pairs, eval_size 100000. Refused by the dry run, so a real
    run never starts the finetune (and never removes the finished one's outputs)."""
    r = dry_run_with(workflow_copy, edit("mask.finetune.defaults.eval_size", 100000))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert (
        "invalid config at mask.finetune.defaults.eval_size: 100000 held-out rows leave none to "
        "train on: the SFT data has 1600 (mask.data.embedded.sft_pairs); set it below 1600"
    ) in out, out
    assert "Building DAG" not in out, out
