"""The config schema: both shipped configs validate, the library reads its defaults, bad input is named.

The bad-config cases run `snakemake -n` on a copy of the workflow: the error must come before any
job is scheduled and name the key (and the bad value or key).
"""

from __future__ import annotations

import copy
import datetime
import json
import re
import shutil

import jsonschema
import pytest
import yaml
from helpers import (
    FAMILY_OVERLAYS,
    ROOT,
    dry_run,
    dry_run_with,
    edit,
    load_workflow,
    shipped_config,
    validated,
)

from ablate.core.config import (
    config_schema,
    defaults_of,
    schema_path,
    subschema,
)


def schema_defs() -> dict:
    return config_schema()["$defs"]


@pytest.mark.parametrize("name", ["config.yaml", "ministral3b.yaml", "ministral3b-smoke.yaml"])
def test_shipped_configs_validate_and_get_defaults(name):
    cfg = validated(shipped_config(name))
    defaults = cfg["mask"]["finetune"]["defaults"]
    defs = schema_defs()
    props = {**defs["finetune_params"]["properties"], **defs["mask_finetune_params"]["properties"]}
    # every key with a default (the core's, the study's) is filled in; loss_vocab has none
    assert set(defaults_of(subschema("$defs/mask_finetune_params"))) <= set(defaults) <= set(props)
    assert {"packing", "attn_implementation", "loss_vocab"} <= set(props)
    assert cfg["mask"]["resources"]["eval"]["threads"] >= 1


def test_variant_overrides_get_no_defaults():
    """Overrides are not padded with defaults: they would mask finetune.defaults."""
    cfg = validated(shipped_config("config.yaml"))
    assert cfg["mask"]["finetune"]["variants"]["3A"] == {"stage": 3, "policy": "causal"}


def test_library_reads_the_training_defaults_of_the_schema():
    """The schema states the training defaults once; the library's are the schema's (probe_* come
    from the schema's leakage section), so there is no copy to keep equal."""
    from ablate.mask.training.params import PROBE_PARAMS, defaults

    defs = schema_defs()
    props = defs["finetune_params"]["properties"]
    own = defs["mask_finetune_params"]["properties"]  # the study's keys and backend default
    library = defaults("finetune")
    assert {k: v for k, v in library.items() if k not in PROBE_PARAMS} == {
        k: p["default"] for k, p in {**props, **own}.items() if "default" in p
    }
    assert "default" not in props["attn_implementation"]  # the core names no study's backend
    leakage = subschema("properties/mask/properties/leakage")["properties"]
    assert {k: library[k] for k in PROBE_PARAMS} == {
        k: leakage[v]["default"] for k, v in PROBE_PARAMS.items()
    }
    pretrain = defs["pretrain_params"]["properties"]
    assert defaults("pretrain") == {
        k: p["default"]
        for k, p in {**pretrain, **defs["mask_pretrain_params"]["properties"]}.items()
        if "default" in p
    }
    # every training key can be overridden per variant and set for pretraining; loss_vocab (unset
    # = full), stall_s and data_parallel (unset = derived) have no default, so a run made before
    # the key existed stays fresh, and pretraining lists only defaults
    unset = ("loss_vocab", "stall_s", "data_parallel")
    assert set(defs["finetune_params_override"]["properties"]) == set(props)
    assert set(pretrain) == set(props) - set(unset)
    for key in unset:
        assert "default" not in props[key] and key not in library


def test_pipeline_and_library_resolve_the_same_training_params():
    """What the pipeline validates (config defaults filled in) is what the library would resolve."""
    from ablate.mask.training.params import resolve_params

    cfg = validated(shipped_config("config.yaml"))
    pretrain = cfg["mask"]["model"]["embedded"]["pretrain"]
    assert resolve_params(pretrain, "pretrain").as_dict() == pretrain
    finetune = cfg["mask"]["finetune"]["defaults"]
    resolved = resolve_params(finetune, "finetune").as_dict()
    assert {k: resolved[k] for k in finetune} == finetune


def test_library_reads_the_embedded_defaults_of_the_schema():
    """The embedded world's sizes and the tiny architecture: the schema's defaults, read by
    `ablate data` and tiny_ministral3_config."""
    from ablate.mask import embedded
    from ablate.mask.tiny import tiny_ministral3_config

    defs = schema_defs()
    data = subschema("properties/mask/properties/data")["properties"]
    sizes = {k: p["default"] for k, p in data["embedded"]["properties"].items()}
    assert embedded.options() == {"seed": data["seed"]["default"], **sizes}
    arch = defs["embedded_model"]["properties"]["arch"]["properties"]
    tiny = tiny_ministral3_config()
    for key, p in arch.items():
        if "default" in p:
            assert getattr(tiny, key) == p["default"], key


def test_pretrained_model_settings_carry_no_embedded_block():
    """mask.model.embedded is filled in for an embedded model only: a hub model's params stay its own."""
    assert "embedded" not in validated(shipped_config("ministral3b.yaml"))["mask"]["model"]
    cfg = shipped_config("config.yaml")
    del cfg["mask"]["model"]["embedded"]
    filled = validated(cfg)["mask"]["model"]["embedded"]
    assert (
        filled["pretrain"]["max_steps"]
        == schema_defs()["pretrain_params"]["properties"]["max_steps"]["default"]
    )


def test_seed_study_settings():
    cfg = validated(shipped_config("ministral3b.yaml"))
    assert cfg["mask"]["model"]["path"] == "mistralai/Ministral-3-3B-Instruct-2512"
    tasks = {t["name"]: (t["metric"], t["limit"]) for t in cfg["mask"]["eval"]["tasks"]}
    assert tasks == {
        "hellaswag": ("acc_norm", 500),
        "piqa": ("acc_norm", 500),
        "arc_easy": ("acc_norm", 500),
        "arc_challenge": ("acc_norm", 500),
        "winogrande": ("acc", 500),
    }
    d = cfg["mask"]["finetune"]["defaults"]
    assert (d["learning_rate"], d["weight_decay"], d["warmup_ratio"]) == (2e-5, 0.1, 0.03)
    assert (d["lr_scheduler"], d["optim"], d["max_seq_len"]) == ("cosine", "adafactor", 1024)
    assert (d["batch_size"], d["grad_accum"], d["max_steps"]) == (1, 16, 1200)
    assert (d["eval_steps"], d["save_steps"]) == (200, 400)
    s5 = cfg["mask"]["finetune"]["variants"]["5B"]
    assert (s5["plateau_patience"], s5["plateau_min_delta"]) == (8, 0.001)
    assert (s5["plateau_min_steps"], s5["max_steps"]) == (3000, 6000)
    assert cfg["mask"]["data"]["sft"] == "yahma/alpaca-cleaned"


# --------------------------------------------------------------- bad configs, through snakemake


@pytest.mark.parametrize(
    "path, value, where, message",
    [
        (
            "mask.finetune.defaults.learning_rat",
            1e-3,
            "mask.finetune.defaults",
            "Unevaluated properties are not allowed ('learning_rat'",
        ),
        ("mask.eval.ablated_policy", "bidir", "mask.eval.ablated_policy", "'bidir' is not one of"),
        (
            "mask.finetune.variants.3A.policy",
            "sideways",
            "mask.finetune.variants.3A.policy",
            "'sideways'",
        ),
        (
            "mask.finetune.variants.3A.lr",
            0.1,
            "mask.finetune.variants.3A",
            "Unevaluated properties are not allowed ('lr'",
        ),
        (
            "mask.finetune.variants.5B.policy",
            "causal",
            "mask.finetune.variants.5B",
            "should not be valid",
        ),
        (
            "mask.finetune.defaults.max_steps",
            0,
            "mask.finetune.defaults.max_steps",
            "0 is less than",
        ),
        ("mask.model.source", "hub", "mask.model.source", "'hub' is not one of"),
        ("mask.data.source", "hub", "mask.data.source", "'embedded' was expected"),
        ("mask.model.source", "pretrained", "mask.model.path", "None is not of type 'string'"),
        ("mask.resources.eval.gpu", -1, "mask.resources.eval.gpu", "-1 is less than"),
        ("mask.eval.tasks", [], "mask.eval.tasks", "should be non-empty"),
        ("bogus", 1, "", "Additional properties are not allowed ('bogus'"),
        ("plan", {"setup": []}, "plan", "Additional properties are not allowed ('setup'"),
    ],
)
def test_schema_names_the_bad_key(path, value, where, message):
    with pytest.raises(jsonschema.ValidationError) as info:
        validated(edit(path, value))
    cause = info.value  # what rules/common.smk turns into its one-line message
    assert ".".join(map(str, cause.absolute_path)) == where
    assert message in cause.message


@pytest.mark.parametrize(
    "path, hint",
    [
        ("mask.finetune.defaults.learning_rat", "did you mean 'learning_rate' for 'learning_rat'?"),
        (
            "mask.finetune.variants.3A.learnig_rate",
            "did you mean 'learning_rate' for 'learnig_rate'?",
        ),
        ("mask.eval.ablated_polcy", "did you mean 'ablated_policy' for 'ablated_polcy'?"),
        ("studie", "did you mean 'studies' for 'studie'?"),
        (
            "mask.finetune.variants.5B.plateau_patince",
            "did you mean 'plateau_patience' for 'plateau_patince'?",
        ),
        ("bogus", None),
    ],
)
def test_misspelled_key_gets_did_you_mean(path, hint):
    """An unknown key is compared with the keys the schema allows at its path (through $ref and
    allOf for a variant); a key close to none gets no guess."""
    from ablate.core.config import schema_error

    with pytest.raises(jsonschema.ValidationError) as info:
        validated(edit(path, 1))
    message = schema_error(info.value)
    assert "\n" not in message
    if hint is None:
        assert "did you mean" not in message, message
    else:
        assert message.endswith(": " + hint), message


def test_check_suggests_the_key_too():
    from ablate.core.config import ConfigError, check
    from ablate.core.training.params import params_schema

    with pytest.raises(ConfigError, match="did you mean 'learning_rate' for 'learnin_rate'"):
        check({"learnin_rate": 1.0}, params_schema("finetune"), "finetune params")


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (
            "mask.finetune.defaults.learning_rat",
            1e-3,
            "invalid config at mask.finetune.defaults: Unevaluated properties are not allowed "
            "('learning_rat' was unexpected): did you mean 'learning_rate' for 'learning_rat'?",
        ),
        (
            "mask.eval.ablated_policy",
            "bidir",
            "invalid config at mask.eval.ablated_policy: 'bidir' is not one of",
        ),
        (
            "mask.finetune.variants.5B.extends",
            "3C",
            "invalid config at mask.finetune.variants.5B.extends: variant '3C' does not exist",
        ),
        (
            "mask.finetune.variants.5B.extends",
            "5B",
            "invalid config at mask.finetune.variants.5B.extends: '5B' is a stage-5 variant",
        ),
        (
            "mask.eval.tasks",
            [{"name": "hellaswag"}],
            "invalid config at mask.eval.tasks: hellaswag is not an embedded task (mask.data.source: embedded "
            "has emb_count, emb_order, emb_pair",
        ),
        (
            "experiments",  # YAML's `1:` (the review: a TypeError traceback from rule_prefix)
            {1: {"mask": {"finetune": {"defaults": {"learning_rate": 5.0e-4}}}}},
            "invalid config at experiments: the key 1 is a number, not a name",
        ),
    ],
)
def test_bad_config_fails_before_any_job(workflow_copy, path, value, expected):
    r = dry_run_with(workflow_copy, edit(path, value))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert expected in out, out
    assert "Job stats" not in out and "Building DAG" not in out, out


def old_shape(cfg: dict) -> dict:
    """``cfg`` as written before the mask study's keys moved under ``mask:`` (ablate 0.2.0):
    those keys at the top level."""
    top = {k: v for k, v in cfg.items() if k != "mask"}
    return {**top, **cfg["mask"]}


MOVED = (
    "are the mask study's and now live under 'mask:': indent them (with what they hold) by two "
    "spaces under one top-level 'mask:' key in each config file that has them "
    '(config/README.md, "mask")'
)


@pytest.mark.parametrize("name", ["config.yaml", "ministral3b.yaml"])
def test_old_config_fails_with_how_to_convert(workflow_copy, name):
    """A config of the old shape stops before any job with one line naming its keys and how to
    convert them, not with the schema's "Additional properties" for each."""
    r = dry_run_with(workflow_copy, old_shape(shipped_config(name)))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    keys = "model, data, eval, leakage, finetune, resources" + (
        ", claims" * (name == "config.yaml")
    )
    assert f"config keys {keys} {MOVED}" in out, out
    assert "Additional properties" not in out and "Building DAG" not in out, out


def test_old_overlay_over_the_new_default_fails_too(workflow_copy):
    """An overlay merged over config/config.yaml (as config/seeds3.yaml is) with a mask key at
    the top level: the merged config is checked, so its one key is named."""
    overlay = {"finetune": {"variants": {"3A": {"seeds": [5, 6]}}}}
    r = dry_run_with(workflow_copy, overlay, "config/config.yaml")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    one = MOVED.replace("are", "is").replace("live", "lives").replace("them", "it")
    one = one.replace("they hold", "it holds")
    assert f"config key finetune {one}" in out, out
    assert "Building DAG" not in out, out


def test_planner_refuses_an_old_config_with_how_to_convert(tmp_path, monkeypatch):
    from ablate.core.planner.inputs import PlanError, load_config

    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump(old_shape(shipped_config("ministral3b.yaml"))))
    with pytest.raises(PlanError) as info:
        load_config(old)
    keys = "model, data, eval, leakage, finetune, resources"
    assert str(info.value) == f"invalid config {old}: config keys {keys} {MOVED}"
    new = tmp_path / "new.yaml"
    new.write_text((ROOT / "config" / "ministral3b.yaml").read_text())
    assert load_config(new)["mask"]["model"]["source"] == "pretrained"


def test_target_after_configfile_is_named_in_one_line(workflow_copy):
    """`snakemake -n --configfile config/x.yaml <target>`: Snakemake reads the target as a second
    config file (--configfile takes several). A JSON record merged its keys into the config and
    failed on them (`Additional properties are not allowed ('macro', ...)`); now one line names
    the file and what to type."""
    target = workflow_copy / "results/eval/base/causal/metrics.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"macro": {"score": 0.5}, "provenance": {"run_id": "r1"}}))
    command = ["-n", "--configfile", "config/config.yaml", str(target)]
    try:
        r = dry_run(workflow_copy, *command)
    finally:
        shutil.rmtree(workflow_copy / "results")  # the module's copy stays a fresh checkout
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert (
        "--configfile results/eval/base/causal/metrics.json: an output of this workflow, not a "
        "config file (a target typed after --configfile is read as one more config file); put "
        "targets first: snakemake [options] results/eval/base/causal/metrics.json --configfile "
        "config/config.yaml (or write --configfile=FILE, which takes one file)"
    ) in out, out
    assert "Additional properties" not in out and "Building DAG" not in out, out


def test_configfile_error(tmp_path, monkeypatch):
    from ablate.core.config import configfile_error

    monkeypatch.chdir(tmp_path)
    assert configfile_error(["config/a.yaml", tmp_path / "config/b.yaml"], "results") is None
    assert configfile_error([], "results") is None
    assert configfile_error(
        [tmp_path / "config/a.yaml", tmp_path / "results/recovery.csv"], "results"
    ) == (
        "--configfile results/recovery.csv: an output of this workflow, not a config file (a "
        "target typed after --configfile is read as one more config file); put targets first: "
        "snakemake [options] results/recovery.csv --configfile config/a.yaml (or write "
        "--configfile=FILE, which takes one file)"
    )


@pytest.mark.parametrize(
    "overlay",
    [
        pytest.param([], id="lm_eval"),
        pytest.param(["config/ministral3b-original.yaml"], id="original"),
        # the other families: the first in the fast tier, the rest (seconds each) in the slow one
        *(
            pytest.param([f"config/{name}"], id=name, marks=[pytest.mark.slow] * (i > 0))
            for i, name in enumerate(sorted(FAMILY_OVERLAYS))
        ),
    ],
)
@pytest.mark.usefixtures("gpu_host")
def test_seed_study_dag_builds_offline(workflow_copy, overlay):
    """The real config plans the same stages, under lm-eval's protocol or the original study's
    (the overlay), and on the other model families (their overlays: the model's shape and family
    from config/gpu_measurements.yaml's 'models:'); nothing is fetched by a dry run."""
    r = dry_run(workflow_copy, "-n", "--configfile", "config/ministral3b.yaml", *overlay)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "make_data" not in r.stdout  # hub data: no embedded world
    for rule, n in [("prepare_model", 1), ("eval_model", 8), ("finetune", 3), ("leakage_probe", 2)]:
        assert any(line.split() == [rule, str(n)] for line in r.stdout.splitlines()), (
            rule,
            r.stdout,
        )


def test_config_readme_documents_every_schema_key():
    """config/README.md names every key the schema allows (the plan block has its own docs)."""
    schema = copy.deepcopy(config_schema())
    schema["properties"]["plan"] = {}
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
    walk(yaml.safe_load(schema_path("ablate.bridge", "params").read_text()))
    readme = (ROOT / "config" / "README.md").read_text()
    documented = set(re.findall(r"`([^`]+)`", readme))
    words = {w for d in documented for w in re.split(r"[.\s,<>\[\]*]+", d) if w}
    missing = sorted(keys - words)
    assert not missing, f"config/README.md does not document: {missing}"


def test_policies_restated_in_the_schema_match_the_library():
    """The schema lists the policies as an enum; the rules import them from ablate.mask.policies."""
    from ablate.mask.masks import POLICIES

    assert schema_defs()["policy"]["enum"] == list(POLICIES)


# --------------------------------------------------------------- numbers YAML reads as text


@pytest.mark.parametrize(
    "value, wanted, hint",
    [
        ("1e-3", "number", "write 1.0e-3 (YAML reads 1e-3 without a dot as text)"),
        (
            "5E-5",
            "number",
            "write 5.0e-5 (YAML reads 5E-5 without a dot as text)",
        ),
        (
            "1.0e3",
            "number",
            "write 1.0e+3 (YAML reads 1.0e3 without a sign in the exponent as text)",
        ),
        (
            "2e3",
            "number",
            "write 2.0e+3 (YAML reads 2e3 without a dot and a sign in the exponent as text)",
        ),
        ("0.5", ["number", "null"], "write 0.5 without quotes (quoted, it is text)"),
        ("1e3", "integer", "write 1000 (a whole number, without quotes or exponent)"),
        ("1.5e0", "integer", None),
        ("fast", "number", None),
        ("inf", "number", None),
        ("1e-3", "string", None),
        (
            float("nan"),
            "number",
            "write a finite number (YAML's .nan and .inf are no value a run can use)",
        ),
        (
            float("-inf"),
            ["number", "null"],
            "write a finite number (YAML's .nan and .inf are no value a run can use)",
        ),
        (8.0, "integer", "write 8 (the key takes a whole number, written without a decimal point)"),
        # a float beyond the whole numbers it holds exactly: its digits are no number anyone typed
        (
            1.0e300,
            "integer",
            "write a whole number (the key takes a whole number, written without a decimal point)",
        ),
        ("1e300", "integer", "write a whole number (without quotes or exponent)"),
        (0.5, "number", None),
    ],
)
def test_number_hint(value, wanted, hint):
    from ablate.core.config import number_hint

    assert number_hint(value, wanted) == hint
    if hint and re.match(r"write [-+.0-9]", hint) and wanted == "number":
        written = hint.split()[1]
        assert isinstance(yaml.safe_load(f"x: {written}")["x"], float)  # the advice works


def test_scientific_number_without_a_dot_says_what_to_write(workflow_copy):
    """The YAML as a user types it: 2e-3 (PyYAML, YAML 1.1, reads it as the string '2e-3')."""
    text = (ROOT / "config" / "config.yaml").read_text()
    assert "    learning_rate: 1.0e-3" in text  # mask.finetune.defaults, a number as written
    path = workflow_copy / "config" / "typed.yaml"
    path.write_text(text.replace("    learning_rate: 1.0e-3", "    learning_rate: 2e-3"))
    r = dry_run(workflow_copy, "-n", "--configfile", str(path))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert (
        "invalid config at mask.finetune.defaults.learning_rate: '2e-3' is not of type 'number': "
        "write 2.0e-3 (YAML reads 2e-3 without a dot as text)"
    ) in out, out


#: every character Python's str.splitlines breaks a line at (U+0085, U+2028 among them)
LINE_BREAKS = [c for c in map(chr, range(0x110000)) if len(f"a{c}b".splitlines()) > 1]


@pytest.mark.parametrize(
    "results",
    ["./results/", "results/", "/abs/results", "r\tx", *(f"r{c}x" for c in LINE_BREAKS), "r\x9bx"],
)
def test_a_results_folder_is_refused_in_words_not_by_its_regex(results):
    """``results: ./results/`` was answered with the schema's raw regex; ``results: "a\\nb"`` (a
    line break in a folder's name, which breaks every line naming it) was accepted, and then
    ``"r\\u0085x"`` and ``"r\\u2028x"`` (NEL, LINE SEPARATOR: line breaks beyond \\x00-\\x1f)."""
    from ablate.core.config import schema_error

    with pytest.raises(jsonschema.ValidationError) as info:
        validated(edit("results", results))
    assert schema_error(info.value) == (
        f"invalid config at results: {results!r} is not a folder written as a relative path "
        "(results, results/run2): no / at its start or end, no { or }, no line break of any kind "
        "(U+0085, U+2028 and U+2029 too), tab or other control character"
    )


@pytest.mark.parametrize(
    "path, value, where, words",
    [("experiments", {"a b": {}}, "experiments",
      "'a b' is not an experiment's name: a folder name of letters, digits and _ . = - "
      "(starting with a letter or digit)"),
     ("mask.finetune.variants.a b", {}, "mask.finetune.variants",
      "'a b' is not a finetune variant's name: letters, digits, _ and - only"),
     ("mask.finetune.variants.base", {}, "mask.finetune.variants",
      "'base' is not a finetune variant's name: base is reserved for the base model's run "
      "(results/eval/base/): name the variant otherwise (base_ft, 3C)"),
     ("mask.models", {"A B": {}}, "mask.models",
      "'A B' is not a model's name: a folder name of lower-case letters, digits and . _ - "
      "(starting with a letter or digit)"),
     ("mask.eval.tasks.0.name", "a b", "mask.eval.tasks.0.name",
      "'a b' is not a task's name: letters, digits and . _ - only"),
     ("bridge.grid.a b", None, "bridge.grid",
      "'a b' is not a grid entry's name: letters, digits, _ and - only")],
)  # fmt: skip
def test_a_name_is_refused_in_words_not_by_its_regex(path, value, where, words):
    """An experiment's, variant's, model's, task's or grid entry's name that is no name was
    answered with the schema's raw regex (``'a b' does not match '^[A-Za-z0-9_-]+$'``): now in
    words, the node's ``patternMeaning`` beside its pattern. The variant name reserved for the
    base run was answered in schema words (``'base' should not be valid under {'const':
    'base'}``): now the node's ``notMeaning`` beside its ``not``."""
    from ablate.core.config import schema_error

    with pytest.raises(jsonschema.ValidationError) as info:
        validated(edit(path, value))
    assert schema_error(info.value) == f"invalid config at {where}: {words}"


@pytest.mark.parametrize(
    "path, key, where, words",
    [("experiments", 1, "experiments", "the key 1 is a number"),
     ("experiments", datetime.date(2026, 11, 28), "experiments", "the key 2026-11-28 is a date"),
     ("mask.models", None, "mask.models", "the key None is null (YAML reads null, ~ or no key so)"),
     ("mask.finetune.variants", False, "mask.finetune.variants",
      "the key False is a boolean (YAML reads yes/no, true/false, on/off so)"),
     ("bridge.grid", 2, "bridge.grid", "the key 2 is a number")],
)  # fmt: skip
def test_a_name_yaml_reads_as_no_text_is_refused_in_one_line(path, key, where, words):
    """A name YAML reads as a number, a date, a boolean or null (`1:`, `2026-11-28:`, `no:`,
    `null:`) passed the schema, whose patterns check text only, and ended in a TypeError
    traceback in the code that needs text (the second review's G)."""
    from ablate.core.config import schema_error

    with pytest.raises(jsonschema.ValidationError) as info:
        validated(edit(path, {key: {}}))
    assert schema_error(info.value) == (
        f"invalid config at {where}: {words}, not a name: quote it as you wrote it "
        f"('{key.isoformat() if hasattr(key, 'isoformat') else key}': ...)"
    )


# --------------------------------------------------------------- numbers a run cannot use

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "path, value, hint",
    [
        ("mask.finetune.defaults.learning_rate", NAN, "write a finite number"),
        ("mask.finetune.defaults.weight_decay", NAN, "write a finite number"),
        ("mask.finetune.defaults.warmup_ratio", NAN, "write a finite number"),
        ("mask.finetune.defaults.weight_decay", INF, "write a finite number"),
        ("mask.model.embedded.pretrain.batch_size", 8.0, "write 8 (the key takes a whole number"),
        ("mask.finetune.defaults.eval_size", 32.0, "write 32 (the key takes a whole number"),
        ("mask.finetune.defaults.eval_size", 32.5, "write a whole number (the key takes"),
        ("mask.claims.side_effect_margin", NAN, "write a finite number"),
        ("mask.finetune.defaults.seed", 2**64, None),
        ("mask.data.seed", 2**32, None),
        ("mask.finetune.variants.3A.seeds", [1, 2**63], None),
        ("bridge.data.seed", -1, None),
        ("mask.resources.eval.mem_mb", 2000.0, "write 2000 (the key takes a whole number"),
        # a whole float beyond the key's range, or beyond a float's exact whole numbers, is no
        # number to write back digit by digit (1.0e+300 was "write 1000...", 301 digits)
        ("mask.finetune.defaults.seed", 1.0e300, "write a whole number from 0 to 4294967295 ("),
        ("mask.finetune.defaults.seed", 5.0e9, "write a whole number from 0 to 4294967295 ("),
        ("mask.finetune.defaults.max_steps", 0.0, "write a whole number from 1 to 10000000 ("),
        ("mask.resources.eval.mem_mb", 1.0e300, "write a whole number of at least 1 ("),
    ],
)
def test_numbers_a_run_cannot_use_are_refused_at_parse_time(path, value, hint):
    """NaN passes every bound (each comparison with it is false), jsonschema takes 8.0 as an
    integer, and a seed beyond numpy's legacy range (2**32 - 1) fails in the job: each failed
    after Snakemake had removed the finished result. Now the schema refuses each, naming the key
    and what to write."""
    from ablate.core.config import schema_error

    with pytest.raises(jsonschema.ValidationError) as info:
        validated(edit(path, value))
    message = schema_error(info.value)
    assert message.startswith(f"invalid config at {path}") and "\n" not in message, message
    if hint:
        assert hint in message, message
    else:
        assert "4294967295" in message or "less than the minimum of 0" in message, message


@pytest.mark.parametrize(
    "params, key, hint",
    [
        ({"lr": NAN}, "lr", "write a finite number"),
        ({"weight_decay": INF}, "weight_decay", "write a finite number"),
        ({"steps": 8.0}, "steps", "write 8 (the key takes a whole number"),
        ({"eval_size": 32.0}, "eval_size", "write 32"),
        ({"seed": 2**64}, "seed", "4294967295"),
    ],
)
def test_bridge_entry_refuses_numbers_a_run_cannot_use(params, key, hint):
    """A grid entry's params (bridge.defaults, an entry's overrides) go through the same checker:
    a NaN lr trained a one-step translator and exited 0."""
    from ablate.bridge import params as bridge_params

    with pytest.raises(bridge_params.BridgeConfigError) as info:
        bridge_params.resolve(params, "bridge.defaults")
    assert str(info.value).startswith(f"bridge.defaults.{key}: ") and hint in str(info.value)


@pytest.mark.parametrize(
    "params, hint",
    [
        ({"learning_rate": NAN}, "learning_rate: nan is not of type 'number': write a finite"),
        ({"batch_size": 8.0}, "batch_size: 8.0 is not of type 'integer': write 8"),
        ({"seed": 2**64}, "seed: 18446744073709551616 is greater than the maximum of 4294967295"),
    ],
)
def test_library_params_refuse_numbers_a_run_cannot_use(params, hint):
    """`ablate train --params` and every library caller resolve params through the same check."""
    from ablate.core.training.params import TrainingConfigError, resolve_params

    with pytest.raises(TrainingConfigError, match=re.escape(hint)):
        resolve_params(params, "finetune")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_command_line_numbers_are_finite(value, capsys):
    """A library command's number option (`ablate recovery --alpha`, `ablate probe
    --threshold`) refuses what the config schema refuses: argparse's float takes nan."""
    from ablate.mask import commands, recovery

    with pytest.raises(SystemExit) as info:
        recovery.main(["--entries", "e.json", "--csv", "r.csv", f"--alpha={value}"])
    assert info.value.code == 2
    assert f"argument --alpha: {value} is not a finite number" in capsys.readouterr().err
    args = ["--model", "m", "--data", "d", "--policy", "causal", "--out", "o"]
    with pytest.raises(SystemExit):
        commands.probe_parser().parse_args([*args, f"--threshold={value}"])
    assert f"argument --threshold: {value} is not a finite number" in capsys.readouterr().err


def test_the_seed_range_suits_every_generator_a_seed_reaches():
    """The schema's largest seed seeds numpy's legacy generator (lm-eval's numpy_random_seed) and
    torch, also as a training run's epoch shuffle derives it; one more is refused by numpy."""
    import numpy as np
    import torch

    top = schema_defs()["seed"]["maximum"]
    np.random.seed(top)
    torch.Generator().manual_seed(top * 1_000_003 + 1000)
    with pytest.raises(ValueError):
        np.random.seed(top + 1)


def test_nan_in_a_yaml_config_fails_the_dry_run_in_one_line(workflow_copy):
    """YAML's own spelling (.nan), as a user writes it: one line before any job."""
    text = (ROOT / "config" / "config.yaml").read_text()
    path = workflow_copy / "nan.yaml"
    path.write_text(text.replace("    learning_rate: 1.0e-3", "    learning_rate: .nan"))
    r = dry_run(workflow_copy, "-n", "--configfile", str(path))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert (
        "invalid config at mask.finetune.defaults.learning_rate: nan is not of type 'number': "
        "write a finite number"
    ) in out, out
    assert "Building DAG" not in out, out


# --------------------------------------------------------------- task names, checked offline


def test_task_index_is_cached_per_lm_eval_version(tmp_path, monkeypatch):
    import lm_eval.tasks

    from ablate.mask import tasks

    built = []

    class FakeTaskManager:
        def __init__(self):
            built.append(1)
            self.all_tasks = ["hellaswag", "piqa", "arc_easy"]
            self.task_index = {}

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", FakeTaskManager)
    tasks.check_task_names(["piqa"], cache=tmp_path)
    tasks.check_task_names(["hellaswag", "arc_easy"], cache=tmp_path)
    assert built == [1]  # the second check read the cache
    (cached,) = tmp_path.glob("lm_eval-*-tasks.json")
    # the names, each with its hub dataset (none here: see tests/mask/test_tasks.py)
    assert json.loads(cached.read_text()) == {"arc_easy": None, "hellaswag": None, "piqa": None}
    with pytest.raises(tasks.ConfigError) as info:
        tasks.check_task_names(["hellaswg", "piqa", "zzz_nothing"], cache=tmp_path)
    assert str(info.value) == (
        "invalid config at mask.eval.tasks: 'hellaswg' is not an lm-eval task (did you mean "
        "'hellaswag'?); 'zzz_nothing' is not an lm-eval task"
    )


def test_embedded_task_names_need_no_lm_eval_index(tmp_path):
    from ablate.mask import tasks

    tasks.check_task_names(["emb_count"], embedded=True, cache=tmp_path)
    assert not list(tmp_path.iterdir())
    with pytest.raises(tasks.ConfigError, match="hellaswag is not an embedded task"):
        tasks.check_task_names(["hellaswag"], embedded=True, cache=tmp_path)


def test_misspelled_hub_task_fails_the_dry_run(workflow_copy):
    """Against lm-eval's real task index (built once, then cached in ~/.cache/ablate)."""
    text = (ROOT / "config" / "ministral3b.yaml").read_text()
    path = workflow_copy / "config" / "typo.yaml"
    path.write_text(text.replace("{name: hellaswag,", "{name: hellaswg,"))
    r = dry_run(workflow_copy, "-n", "--configfile", str(path), timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert (
        "invalid config at mask.eval.tasks: 'hellaswg' is not an lm-eval task "
        "(did you mean 'hellaswag'?)"
    ) in out, out
    assert "Building DAG" not in out, out


@pytest.mark.parametrize(
    "target, content, what",
    [
        ("results/recovery.csv", b"stage,variant,task,score\n1,base,macro,0.5\n", "not a JSON"),
        ("results/plots/scores.png", b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 64, "not a JSON"),
        ("results/recovery.parquet", b"PAR1\x15\x04\x15\xff\xfe" * 64, "not a JSON"),
        ("results/bridge/summary.csv", None, "no such file"),
    ],
    ids=["csv", "png", "parquet", "not-made-yet"],
)
def test_target_after_configfile_of_any_kind_is_named_in_one_line(
    workflow_copy, target, content, what
):
    """A target after --configfile that is not a config (a table, a picture, a file not made
    yet): Snakemake reads config files in its command line, before any workflow file, and
    stopped with `Config file is not valid JSON or YAML` (naming no file), a UnicodeDecodeError
    or a FileNotFoundError traceback. The workflow profile now names it in one line."""
    if content is not None:
        (workflow_copy / target).parent.mkdir(parents=True, exist_ok=True)
        (workflow_copy / target).write_bytes(content)
    try:
        r = dry_run(workflow_copy, "-n", "--configfile", "config/config.yaml", target)
    finally:
        shutil.rmtree(workflow_copy / "results", ignore_errors=True)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    line = (
        f"--configfile {target}: {what}"
        if what == "no such file"
        else f"--configfile {target}: not a JSON or YAML config file"
    )
    assert line in out, out
    assert (
        f"put targets first: snakemake [options] {target} --configfile config/config.yaml" in out
    ), out
    assert "Traceback" not in out and "Error" not in out and "Building DAG" not in out, out


def test_configfile_args():
    from ablate.core.config import configfile_args

    assert configfile_args(["-n", "--configfile", "a.yaml", "b.yaml", "-c2", "t.csv"]) == [
        "a.yaml",
        "b.yaml",
    ]
    assert configfile_args(["--configfile=a.yaml", "t.csv", "--configfiles", "c.yaml"]) == [
        "a.yaml",
        "c.yaml",
    ]
    assert configfile_args(["-n", "results/recovery.csv"]) == []


def test_nested_config_values_get_yaml_types(workflow_copy):
    """Snakemake reads a nested --config value with YAML's base loader (every leaf text): the
    schema refused `max_steps: 5` as `'5' is not of type 'integer'`. Now it reads as a config
    file would; a value that is wrong in a config file is still named in one line."""
    r = dry_run(workflow_copy, "-n", "--config", "mask={finetune: {defaults: {max_steps: 5}}}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "finetune" in r.stdout
    r = dry_run(workflow_copy, "-n", "--config", "mask={finetune: {defaults: {max_steps: x5}}}")
    assert r.returncode != 0
    assert (
        "invalid config at mask.finetune.defaults.max_steps: 'x5' is not of type 'integer'"
        in r.stdout + r.stderr
    ), r.stdout + r.stderr


def test_typed_config_args():
    from ablate.core.config import typed_config_args

    args = ["mask={finetune: {defaults: {max_steps: 5, learning_rate: 1.0e-3}}}", "results=r"]
    assert typed_config_args(args) == {
        "mask": {"finetune": {"defaults": {"max_steps": 5, "learning_rate": 1e-3}}}
    }
    assert typed_config_args(["studies=[mask]", "bad={a: [}", "noequals"]) == {"studies": ["mask"]}
    assert typed_config_args(None) == {}
    # Snakemake types only True/False: the YAML boolean a config file would have
    assert typed_config_args(["allow_cpu=true", "results=r"]) == {"allow_cpu": True}


@pytest.mark.parametrize(
    "target, hint",
    [
        ("results/recovry.csv", "did you mean results/recovery.csv?"),
        ("results/finetune/3C/summary.json", "did you mean results/finetune/3"),
        (
            "results/ministral3b/recovery.csv",
            "it is in the results folder of config/ministral3b.yaml: snakemake [options] "
            "results/ministral3b/recovery.csv --configfile config/ministral3b.yaml",
        ),
    ],
    ids=["misspelled", "unknown-variant", "another-config"],
)
def test_unknown_target_names_the_nearest_and_its_config(workflow_copy, target, hint):
    """A misspelled target, or the real study's target without its --configfile: Snakemake said
    only `No rule to produce <target>`; now one line names the nearest file or the config."""
    r = dry_run(workflow_copy, target, "-n")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert f"{target}: no rule of this configuration (results: results) makes it; {hint}" in out, (
        out
    )
    assert "No rule to produce" not in out, out


def test_every_file_of_a_full_run_is_a_known_target(workflow_copy):
    """The unknown-target check refuses no file a full run makes: every output of the default
    run's DAG (`snakemake --summary`) is among the files it accepts."""
    from ablate.core.execution.targets import target_files

    r = dry_run(workflow_copy, "--summary")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    files = {row[0] for row in rows if len(row) > 2 and row[0] != "output_file"}
    wf = load_workflow(workflow_copy)
    known = set(target_files(wf.globals["JOBS"], wf.rules))
    assert len(files) > 50 and files <= known, sorted(files - known)


def test_schemas_are_package_data():
    """Every schema ships in the package (an installed wheel has it: pyproject's package-data),
    none in the checkout's workflow/ folder: the library finds its defaults without a checkout."""
    import fnmatch
    import tomllib

    package = ROOT / "src" / "ablate"
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["ablate"]
    paths = [
        schema_path(p, n)
        for p, n in [("ablate.core", "config"), ("ablate.core", "plan")]
        + [("ablate.mask", "config"), ("ablate.bridge", "config"), ("ablate.bridge", "params")]
    ]
    for path in paths:
        rel = path.resolve().relative_to(package.resolve()).as_posix()
        assert path.is_file() and any(fnmatch.fnmatch("x/" + rel, g) for g in globs), rel
    assert not (ROOT / "workflow" / "schemas").exists()
