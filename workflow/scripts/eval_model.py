"""eval_model (stages 1, 2, 4, 5): lm-eval tasks under a mask policy -> metrics.json + samples."""

from pathlib import Path

from ablate import job_script
from ablate.core.reports import tracking


def log_run():
    """The MLflow run of the finished record (a restored one too)."""
    wc = snakemake.wildcards
    tracking.log_record(
        snakemake.output.metrics,
        "eval",
        f"eval/{wc.model}/{wc.policy}",
        snakemake.config["tracking"],
        snakemake.config["results"],
    )


# log, hub switch, run cache (a restored job ends here, with its MLflow run), imports, its GPUs,
# torch threads
job_cache = job_script.start(
    snakemake, "mask", imports=["ablate.mask.evaluation"], after_restore=log_run
)
from ablate.core.outputs import model_card
from ablate.mask import evaluation

cfg = snakemake.params.eval
tracking.check(snakemake.config["tracking"])
wc = snakemake.wildcards
if wc.model == "base":
    card = model_card.read(snakemake.input.card)
    model, revision = model_card.locate(card)
    model_id = card["id"] or wc.model
else:
    # Hashed once, by the loader: a checkpoint this pipeline wrote loads only with its complete
    # hash manifest (ablate.core.outputs.checkpoint_integrity.check_before_load).
    model, model_id, revision = snakemake.input.checkpoint, wc.model, None
evaluation.evaluate(
    evaluation.EvalSpec(**cfg),  # the job's config slice, as one typed spec
    model=model,
    policy=wc.policy,
    out_dir=Path(snakemake.output.metrics).parent,
    task_dirs=snakemake.input.tasks,
    model_id=model_id,
    revision=revision,
)
# tracking is read from the config, not params: switching it on or off reruns nothing
log_run()
job_cache.store()
