"""How a job script of the workflow starts (workflow/scripts/*.py), in one place.

The order matters, so each step is here once rather than in every script:

1. stdout and stderr go to the rule's log (everything after is in it);
2. the job's hub-offline switch (:func:`ablate.studies.hub_switch`), before any Hugging Face
   import reads it;
3. (:func:`start` only: the jobs that load a model) the run cache, where a job it restores is
   done (exit 0); the job's own GPUs (:func:`ablate.core.gpus.claim_for`), before torch sees
   CUDA; torch's CPU threads set to the rule's ``threads``.
"""

from __future__ import annotations

import sys
from typing import Any

from ablate import studies


def log_only(snakemake: Any) -> None:
    """Step 1 alone: a job of no study (STATUS, the plan)."""
    sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)


def start_light(snakemake: Any, study: str) -> None:
    """Steps 1 and 2: a job that reads and writes tables, no model."""
    log_only(snakemake)
    studies.hub_switch(snakemake.config, study)


def start(snakemake: Any, study: str):
    """Steps 1 to 3; the job's :class:`ablate.core.runcache.JobCache` (it stores the outputs
    once the job has written them)."""
    start_light(snakemake, study)
    from ablate.core.runcache import JobCache

    job_cache = JobCache(snakemake)  # config key run_cache (off: a no-op)
    if job_cache.restored():
        sys.exit(0)
    from ablate.core import gpus

    gpus.claim_for(snakemake)
    import torch

    torch.set_num_threads(snakemake.threads)
    return job_cache
