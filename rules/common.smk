# Shared by every study: config validation, the results folder, resource and target helpers
# (each study applies resource_helpers to its own keys).
# Nothing here imports torch: the Snakefile must parse in well under a second (no-op reruns).
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from ablate.core.config import ConfigError, schema_error, sorted_tree
from ablate.core.provenance import WORKFLOW_DIR_ENV

# Provenance records the git state of this checkout (the Snakefile's folder), not of the folder
# the library is installed from; every job inherits the variable.
os.environ[WORKFLOW_DIR_ENV] = workflow.basedir


def validate_config(cfg, schema):
    """validate(), with a violation as one line naming the key path and the bad key or value."""
    try:
        validate(cfg, schema=schema)
    except WorkflowError as exc:
        cause = exc.__context__  # the jsonschema ValidationError snakemake wrapped
        if not hasattr(cause, "absolute_path"):
            raise
        raise WorkflowError(schema_error(cause)) from None


validate_config(config, "../workflow/schemas/config.schema.yaml")


STUDIES = config["studies"]
# Every file this configuration writes lives under one folder (config key `results`), so two
# configurations (the embedded default, a real study) never mix their outputs.
RESULTS = config["results"]


# Every job of the studies this configuration runs (each study's common.smk adds its own, from
# its job list: ablate.<study>.study.jobs); the plan rules forecast the ones with a kind.
JOBS = []


def out(path):
    """A path under this configuration's results folder (outputs, logs, benchmarks)."""
    return f"{RESULTS}/{path}"


def only_targets(names):
    """Whether this invocation asks for these targets (paths or rule names) and nothing else;
    false for the default target (rule all) and --report. Read at DAG time, not parse time.
    """
    targets = workflow.dag_settings.targets
    return bool(targets) and {os.path.relpath(t) for t in targets} <= set(names)


def resource_helpers(resources):
    """(res, resources_of) over one study's own resources node (group -> key -> value):
    ``res(group, key)`` one value; ``resources_of(group)`` a GPU-capable group's resources, a
    null gpu_model left out (any GPU)."""

    def res(group, key):
        return resources[group][key]

    def resources_of(group):
        r = {k: v for k, v in resources[group].items() if k != "threads"}
        if r.get("gpu_model") is None:
            r.pop("gpu_model", None)
        return r

    return res, resources_of
