# Parse-time summary of what a config edit made stale, one line per finished job naming the
# changed keys (Snakemake's own reason prints whole parameter trees). Included after the stage
# rules: it reads their output patterns. Silent when nothing changed; skipped in spawned jobs.
import sys

from ablate.mask.stale import stale_lines

if workflow.is_main_process:
    _records = [
        ("prepare_model", {}, str(rules.prepare_model.output.card)),
        *(
            (
                "leakage_probe",
                {"policy": p},
                expand(rules.leakage_probe.output[0], policy=p)[0],
            )
            for p in TRAIN_POLICIES
        ),
        *(
            (
                "finetune",
                {"variant": v},
                expand(rules.finetune.output.summary, variant=v)[0],
            )
            for v in sorted(VARIANTS)
        ),
        *(
            (
                "eval_model",
                {"model": m, "policy": p},
                expand(rules.eval_model.output.metrics, model=m, policy=p)[0],
            )
            for m in MODELS
            for p in EVAL_POLICIES
        ),
    ]
    for _line in stale_lines(_records, config, VARIANTS):
        print(_line, file=sys.stderr)
