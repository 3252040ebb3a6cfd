# Parse-time summary of what a config edit made stale, one line per finished job of every study
# naming the changed keys (Snakemake's own reason prints whole parameter trees). Reads the record
# of each job of the job lists (JOBS); silent when nothing changed; skipped in spawned jobs.
import sys

from ablate.core.stale import stale_lines

if workflow.is_main_process:
    for _line in stale_lines(JOBS, config):
        print(_line, file=sys.stderr)
