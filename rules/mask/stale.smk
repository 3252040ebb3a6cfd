# Parse-time summary of what a config edit made stale, one line per finished job naming the
# changed keys (Snakemake's own reason prints whole parameter trees). Reads the output JSON with a
# provenance block of each job of the job list; silent when nothing changed; skipped in spawned
# jobs.
import sys

from ablate.mask.stale import stale_lines

if workflow.is_main_process:
    for _line in stale_lines(
        [(j.rule, j.wildcards, j.record) for j in MASK_JOBS if j.record],
        config,
        VARIANTS,
    ):
        print(_line, file=sys.stderr)
