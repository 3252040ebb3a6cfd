"""Experiments beside a configuration (ablate.core.trees.experiments), without running a job: which
of an experiment's jobs are the base's (shared, not run again) for a key of each kind, and the
one-line refusals. The command line (`ablate exp run`, --set and sweep names):
tests/core/trees/test_exp_run.py; the workflow's side (one DAG, the experiment's rules as a
Snakemake module): tests/pipeline/test_experiments_dag.py; the researcher's loop end to end:
tests/pipeline/test_experiments_run.py."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from helpers import dry_run

from ablate import cli
from ablate.core.config import ConfigError, validate_config
from ablate.core.trees import experiments as E

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())
LR_3A = {"mask": {"finetune": {"variants": {"3A": {"learning_rate": 5.0e-4}}}}}
BRIDGE_JOBS = {"data", "model/source", "model/target", "summary", "claims", "plots"}


def own_jobs(over: dict, name: str = "x") -> set[str]:
    """The jobs of the experiment ``over`` on the default config that are its own to run."""
    cfg = copy.deepcopy(DEFAULT)
    cfg["experiments"] = {name: over}
    validate_config(cfg)
    (plan,) = E.plans(cfg)
    return set(plan.definition()["own"])


def test_one_finetune_key_runs_that_finetune_its_evaluations_and_the_tables():
    assert own_jobs(LR_3A) == {
        "finetune/3A",
        "eval/3A/causal",
        "eval/3A/prefill_bidir",
        "recovery_table",
        "plot_scores",
        "plot_loss_curves",
        "mask_claims",
    }


def changes_of(over: dict, base: dict | None = None) -> list[str]:
    """The ``key old -> new`` lines of the experiment ``over`` on ``base`` (default: the default
    config)."""
    cfg = copy.deepcopy(base or DEFAULT)
    cfg["experiments"] = {"x": over}
    validate_config(cfg)
    return E.changes(E.base_config(cfg), E.experiment_config(cfg, "x"))


def variants(over: dict) -> dict:
    return {"mask": {"finetune": {"variants": over}}}


def test_a_changed_keys_base_value_is_the_one_the_base_resolves():
    """A key the base leaves unset is named with the value the base ran with, not ``<absent>``:
    a variant's learning rate (mask.finetune.defaults'), a stage-5 variant's key its stage-3
    parent sets, a variant's allow_leakage (false); a variant the base has not is absent there."""
    lr = DEFAULT["mask"]["finetune"]["defaults"]["learning_rate"]
    assert changes_of(LR_3A) == [f"mask.finetune.variants.3A.learning_rate {lr} -> 0.0005"]
    base = E.merged(DEFAULT, variants({"3B": {"max_grad_norm": 0.5}}))
    assert changes_of(variants({"5B": {"max_grad_norm": 2.0}}), base) == [
        "mask.finetune.variants.5B.max_grad_norm 0.5 -> 2.0"
    ]
    assert changes_of(variants({"3A": {"allow_leakage": True}})) == [
        "mask.finetune.variants.3A.allow_leakage false -> true"
    ]
    assert changes_of(variants({"3C": {"stage": 3, "policy": "causal"}})) == [
        'mask.finetune.variants.3C <absent> -> {"policy":"causal","stage":3}'
    ]


def test_a_key_of_each_kind_reaches_what_reads_it():
    # the evaluations' slice: every evaluation and the tables, no finetune
    evals = own_jobs({"mask": {"eval": {"max_batch_tokens": 8192}}})
    assert {j for j in evals if j.startswith("eval/")} == {
        f"eval/{m}/{p}" for m in ("base", "3A", "3B", "5B") for p in ("causal", "prefill_bidir")
    }
    assert not {j for j in evals if j.startswith(("finetune/", "leakage/", "prepare"))}
    # a key only the tables read (mask.claims): the tables alone
    assert own_jobs({"mask": {"claims": {"side_effect_margin": 0.2}}}) == {
        "recovery_table",
        "plot_scores",
        "plot_loss_curves",
        "mask_claims",
    }
    # a key no slice holds (a rule's threads: the numerics of its jobs): the whole study
    threads = own_jobs({"mask": {"resources": {"eval": {"threads": 2}}}})
    assert {"make_data", "prepare_model", "finetune/3A"} <= threads
    assert not threads & BRIDGE_JOBS
    # the other study's key: nothing of the mask study
    k = own_jobs({"bridge": {"grid": {"2b": {"K": 5}}}})
    assert {j for j in k if not j.startswith("train/")} == {"summary", "claims", "plots"}
    assert not {j for j in k if j.startswith(("eval/", "finetune/", "recovery"))}


def test_a_seed_added_in_an_experiment_runs_only_that_seeds_jobs():
    seeds = {"mask": {"finetune": {"variants": {"3B": {"seeds": [5, 6]}}}}}
    assert own_jobs(seeds) == {
        "finetune/3B-s6",
        "finetune/5B-s6",
        *(f"eval/{v}-s6/{p}" for v in ("3B", "5B") for p in ("causal", "prefill_bidir")),
        "recovery_table",
        "plot_scores",
        "plot_loss_curves",
        "mask_claims",
    }


def test_shared_jobs_read_the_bases_files():
    cfg = copy.deepcopy(DEFAULT)
    cfg["experiments"] = {"lr": LR_3A}
    validate_config(cfg)
    (plan,) = E.plans(cfg)
    jobs = {j.name: j for j in plan.jobs}
    assert plan.config["results"] == "results/exp/lr" and plan.prefix == "exp_lr_"
    assert jobs["finetune/3B"].outputs["summary"] == "results/finetune/3B/summary.json"
    assert jobs["finetune/3A"].outputs["summary"] == "results/exp/lr/finetune/3A/summary.json"
    assert plan.redirects["results/exp/lr/finetune/3B/final"] == "results/finetune/3B/final"
    assert "results/exp/lr/finetune/3A/final" not in plan.redirects
    # a file whose name starts with another's is left to it: Snakemake refuses two prefixes
    infer = [k for k in plan.redirects if "/bridge/infer/" in k]
    assert infer and not [k for k in infer if k.endswith(".provenance.json")]
    # the rules all of whose jobs are shared are left out of its module
    assert "prepare_model" in plan.excluded and "finetune" not in plan.excluded
    # STATUS of the experiment's configuration reads the base's files for them
    study = E.study_jobs(plan.config)
    shared = {j.name for js in study.values() for j in js if j.labels.get("shared")}
    assert "finetune/3B" in shared and "finetune/3A" not in shared
    lr = DEFAULT["mask"]["finetune"]["defaults"]["learning_rate"]
    assert plan.definition()["changes"] == [
        f"mask.finetune.variants.3A.learning_rate {lr} -> 0.0005"
    ]


def test_refusals_name_the_key():
    cfg = copy.deepcopy(DEFAULT)
    cfg["experiments"] = {"lr": {"mask": {"finetune": {"defaults": {"learnin_rate": 1.0}}}}}
    validate_config(cfg)
    with pytest.raises(ConfigError) as err:
        E.plans(cfg)
    assert str(err.value).startswith("experiments.lr: invalid config at mask.finetune.defaults")
    cfg["experiments"] = {"lr": {"results": "elsewhere"}}
    with pytest.raises(ConfigError, match=r"experiments.lr.results: an experiment sets what"):
        E.plans(cfg)
    with pytest.raises(ConfigError, match=r"experiments.a.b: its rules would be named"):
        E.check_names(["a_b", "a.b"])
    # the schema's words for a name that is no name, as a config file's refusal gives them
    with pytest.raises(ConfigError, match=r"experiments.a b: 'a b' is not an experiment's name: a"):
        E.check_names(["a b"])


def test_status_writes_each_experiments_status_in_its_tree(tmp_path, monkeypatch, capsys):
    """`ablate status --configfile <base> <overlay>`: the base's STATUS.md and each
    experiment's, whose shared jobs are the base's (their files in the base's tree)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(DEFAULT))
    (tmp_path / "lr.yaml").write_text(yaml.safe_dump({"experiments": {"lr": LR_3A}}))
    assert cli.main(["status", "--configfile", "config/config.yaml", "lr.yaml"]) == 0
    out = capsys.readouterr().out
    assert "results/STATUS.md: " in out and "results/exp/lr/STATUS.md: " in out
    text = (tmp_path / "results/exp/lr/STATUS.md").read_text()
    assert "missing results/finetune/3B/final" in text  # the base's file
    assert "missing results/exp/lr/finetune/3A/final" in text  # its own
    assert "results/exp/lr/finetune/3B" not in text


#: what a config file or --config that sets the experiment marker is told, after its name
MARKER_LINE = (
    "experiment: set by the workflow for an experiment's own configuration, never by hand: to run "
    "an experiment, write experiments: {NAME: {KEY: VALUE}} in a config file (or ablate exp run "
    "NAME --set KEY=VALUE)"
)


def test_a_config_file_that_sets_the_marker_fails_the_dry_run_in_one_line(workflow_copy):
    """``experiment: {name: evil, base: {}}`` in an overlay was read as an experiment's own
    configuration: ``KeyError ... 'studies'`` from the Snakefile. A config file or --config
    that sets the marker is refused, before any job."""
    (workflow_copy / "evil.yaml").write_text("experiment: {name: evil, base: {}}\n")
    r = dry_run(workflow_copy, "-n", "--configfile", "config/config.yaml", "evil.yaml")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "KeyError" not in out, out
    assert f"evil.yaml: {MARKER_LINE}" in out, out
    r = dry_run(workflow_copy, "-n", "--config", "experiment={name: evil}")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and f"--config {MARKER_LINE}" in out, out


def test_the_librarys_commands_refuse_a_config_file_that_sets_the_marker(tmp_path):
    """``ablate exp run``, ``status``, ``runs`` and ``plan`` read config files through the
    planner's loader: the same line there."""
    from ablate.core.planner.inputs import PlanError, load_config

    over = tmp_path / "evil.yaml"
    over.write_text(yaml.safe_dump({"experiment": {"name": "evil", "base": {}}}))
    with pytest.raises(PlanError) as info:
        load_config([ROOT / "config/config.yaml", over])
    assert str(info.value) == f"{over}: {MARKER_LINE}"
