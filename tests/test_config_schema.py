"""The config schema: both shipped configs validate, defaults match the library, bad input is named.

The bad-config cases run `snakemake -n` on a copy of the workflow: the error must come before any
job is scheduled and name the key (and the bad value or key).
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


def validated(cfg: dict) -> dict:
    from snakemake.utils import validate

    cfg = copy.deepcopy(cfg)
    validate(cfg, str(SCHEMA))
    return cfg


def schema_defs() -> dict:
    return yaml.safe_load(SCHEMA.read_text())["$defs"]


@pytest.mark.parametrize("name", ["config.yaml", "ministral3b.yaml"])
def test_shipped_configs_validate_and_get_defaults(name):
    cfg = validated(load(name))
    defaults = cfg["finetune"]["defaults"]
    assert set(defaults) == set(schema_defs()["finetune_params"]["properties"])
    assert cfg["resources"]["eval"]["threads"] >= 1


def test_variant_overrides_get_no_defaults():
    """Overrides are not padded with defaults: they would mask finetune.defaults."""
    cfg = validated(load("config.yaml"))
    assert cfg["finetune"]["variants"]["3A"] == {"stage": 3, "policy": "causal"}


def test_finetune_defaults_equal_the_library():
    """The schema states the training defaults; they must be the library's (probe_* aside)."""
    from ablate.mask.training import FINETUNE_DEFAULTS

    props = schema_defs()["finetune_params"]["properties"]
    library = {k: v for k, v in FINETUNE_DEFAULTS.items() if not k.startswith("probe_")}
    assert set(props) == set(library)
    assert {k: p["default"] for k, p in props.items()} == library
    override = schema_defs()["finetune_params_override"]["properties"]
    assert set(override) == set(library)


def test_pretrain_keys_are_training_keys():
    from ablate.mask.training import PRETRAIN_DEFAULTS

    pretrain = load("config.yaml")["model"]["embedded"]["pretrain"]
    assert set(pretrain) <= set(PRETRAIN_DEFAULTS)


def test_embedded_config_copies_the_embedded_defaults():
    """config/config.yaml states the embedded world and model sizes of ablate.mask.embedded."""
    from ablate.mask import embedded

    cfg = load("config.yaml")
    for key, value in cfg["data"]["embedded"].items():
        assert embedded.DEFAULTS[key] == value, key
    for key, value in cfg["model"]["embedded"]["arch"].items():
        assert embedded.DEFAULTS["model"][key] == value, key
    pretrain = cfg["model"]["embedded"]["pretrain"]
    for key, value in embedded.DEFAULTS["pretrain"].items():
        assert pretrain.get(key) == value, key
    tasks = {t["name"]: t["metric"] for t in cfg["eval"]["tasks"]}
    assert tasks == embedded.DEFAULTS["headline"]


def test_seed_study_settings():
    cfg = validated(load("ministral3b.yaml"))
    assert cfg["model"]["path"] == "mistralai/Ministral-3-3B-Instruct-2512"
    tasks = {t["name"]: (t["metric"], t["limit"]) for t in cfg["eval"]["tasks"]}
    assert tasks == {
        "hellaswag": ("acc_norm", 500),
        "piqa": ("acc_norm", 500),
        "arc_easy": ("acc_norm", 500),
        "arc_challenge": ("acc_norm", 500),
        "winogrande": ("acc", 500),
    }
    d = cfg["finetune"]["defaults"]
    assert (d["learning_rate"], d["weight_decay"], d["warmup_ratio"]) == (2e-5, 0.1, 0.03)
    assert (d["lr_scheduler"], d["optim"], d["max_seq_len"]) == ("cosine", "adafactor", 1024)
    assert (d["batch_size"], d["grad_accum"], d["max_steps"]) == (1, 16, 1200)
    assert (d["eval_steps"], d["save_steps"]) == (200, 400)
    s5 = cfg["finetune"]["variants"]["5B"]
    assert (s5["plateau_patience"], s5["plateau_min_delta"]) == (8, 0.001)
    assert (s5["plateau_min_steps"], s5["max_steps"]) == (3000, 6000)
    assert cfg["data"]["sft"] == "yahma/alpaca-cleaned"


# --------------------------------------------------------------- bad configs, through snakemake


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory):
    wd = tmp_path_factory.mktemp("wf_schema")
    for name in ("Snakefile", "rules", "workflow", "config", "profiles", "environment.yml"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, wd / name)
    return wd


def dry_run_with(wd: Path, cfg: dict) -> subprocess.CompletedProcess:
    path = wd / "config" / "edited.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(path)],
        cwd=wd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def edit(path: str, value, *, delete: bool = False) -> dict:
    cfg = load("config.yaml")
    *parents, last = path.split(".")
    node = cfg
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if delete:
        del node[last]
    else:
        node[last] = value
    return cfg


@pytest.mark.parametrize(
    "path, value, where, message",
    [
        (
            "finetune.defaults.learning_rat",
            1e-3,
            "finetune.defaults",
            "Additional properties are not allowed ('learning_rat'",
        ),
        ("eval.ablated_policy", "bidir", "eval.ablated_policy", "'bidir' is not one of"),
        ("finetune.variants.3A.policy", "sideways", "finetune.variants.3A.policy", "'sideways'"),
        (
            "finetune.variants.3A.lr",
            0.1,
            "finetune.variants.3A",
            "Unevaluated properties are not allowed ('lr'",
        ),
        ("finetune.variants.5B.policy", "causal", "finetune.variants.5B", "should not be valid"),
        ("finetune.defaults.max_steps", 0, "finetune.defaults.max_steps", "0 is less than"),
        ("model.source", "hub", "model.source", "'hub' is not one of"),
        ("data.source", "hub", "data.source", "'embedded' was expected"),
        ("model.source", "pretrained", "model.path", "None is not of type 'string'"),
        ("resources.eval.gpu", -1, "resources.eval.gpu", "-1 is less than"),
        ("eval.tasks", [], "eval.tasks", "should be non-empty"),
        ("bogus", 1, "", "Additional properties are not allowed ('bogus'"),
        ("plan", {"setup": []}, "plan", "Additional properties are not allowed ('setup'"),
    ],
)
def test_schema_names_the_bad_key(path, value, where, message):
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError) as info:
        validated(edit(path, value))
    cause = info.value.__context__  # what rules/common.smk turns into its one-line message
    assert ".".join(map(str, cause.absolute_path)) == where
    assert message in cause.message


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (
            "finetune.defaults.learning_rat",
            1e-3,
            "invalid config at finetune.defaults: Additional properties are not allowed ('learning_rat'",
        ),
        (
            "eval.ablated_policy",
            "bidir",
            "invalid config at eval.ablated_policy: 'bidir' is not one of",
        ),
        (
            "finetune.variants.5B.extends",
            "3C",
            "invalid config at finetune.variants.5B.extends: variant '3C' does not exist",
        ),
        (
            "finetune.variants.5B.extends",
            "5B",
            "invalid config at finetune.variants.5B.extends: '5B' is a stage-5 variant",
        ),
        (
            "eval.tasks",
            [{"name": "hellaswag"}],
            "invalid config at eval.tasks: hellaswag is not an embedded task (data.source: embedded "
            "has emb_animals, emb_count",
        ),
    ],
)
def test_bad_config_fails_before_any_job(workflow_copy, path, value, expected):
    r = dry_run_with(workflow_copy, edit(path, value))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert expected in out, out
    assert "Job stats" not in out and "Building DAG" not in out, out


def test_seed_study_dag_builds_offline(workflow_copy):
    """The real config plans the same stages; nothing is fetched by a dry run."""
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", "config/ministral3b.yaml"],
        cwd=workflow_copy,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "make_data" not in r.stdout  # hub data: no embedded world
    for rule, n in [("prepare_model", 1), ("eval_model", 8), ("finetune", 3), ("leakage_probe", 2)]:
        assert any(line.split() == [rule, str(n)] for line in r.stdout.splitlines()), (
            rule,
            r.stdout,
        )


def test_config_readme_documents_every_schema_key():
    """config/README.md names every key the schema allows (the plan block has its own docs)."""
    schema = yaml.safe_load(SCHEMA.read_text())
    keys: set[str] = set()

    def walk(node):
        if not isinstance(node, dict):
            return
        for k, v in (node.get("properties") or {}).items():
            keys.add(k)
            walk(v)
        for sub in [
            node.get("items"),
            node.get("additionalProperties"),
            *(node.get("$defs") or {}).values(),
        ]:
            walk(sub)

    walk(schema)
    # the bridge study's params (bridge.defaults, bridge.grid.<entry>) have their own schema
    walk(yaml.safe_load((SCHEMA.parent / "bridge.schema.yaml").read_text()))
    readme = (ROOT / "config" / "README.md").read_text()
    documented = set(re.findall(r"`([^`]+)`", readme))
    words = {w for d in documented for w in re.split(r"[.\s,<>\[\]*]+", d) if w}
    missing = sorted(keys - words)
    assert not missing, f"config/README.md does not document: {missing}"


def test_policies_restated_in_the_schema_match_the_library():
    """The schema lists the policies as an enum; the rules import them from ablate.mask.study."""
    from ablate.mask.masks import POLICIES

    assert schema_defs()["policy"]["enum"] == list(POLICIES)
