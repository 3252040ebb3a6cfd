"""The planner's own files, relative to a configuration's results folder (config key `results`).

Import-light on purpose: rules/plan.smk reads it at Snakefile parse time.
"""

PLAN_FILES = {
    "plan_csv": "plan.csv",
    "plan_html": "plan.html",
    "estimate_csv": "plan/estimate.csv",
    "estimate_html": "plan/estimate.html",
    "estimate_log": "logs/plan/estimate.log",
    "plan_log": "logs/plan/plan.log",
}

#: plan.csv's column of a data-parallel training job's time on 1, 2, 4 and 8 GPUs (per_gpus)
ON_GPU_COUNTS = "on_gpu_counts"
