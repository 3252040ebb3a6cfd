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
