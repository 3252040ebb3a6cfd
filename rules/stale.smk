# Summary of what a config edit made stale, one line per finished job of every study naming the
# changed keys (Snakemake's own reason prints whole parameter trees). Reads the record of each job
# of the job lists (JOBS); silent when nothing changed; skipped in spawned jobs. A run prints it
# before its jobs; a dry run (-n) at exit, after Snakemake's job list, whose parameter trees (tens
# of KB after an edit) would scroll it away (workflow.dryrun is not set yet while this is read).
import atexit
import re
import sys

from ablate.core.reruns.stale import stale_lines


def print_stale(lines):
    for line in lines:
        print(line, file=sys.stderr)


# an experiment's shared jobs are the base's: said once, by the base; its own, with its name
_own = [j for j in JOBS if not j.labels.get("shared")]
_stale = stale_lines(_own, config) if workflow.is_main_process else []
if EXPERIMENT:
    _stale = [f"{line} (experiment {EXPERIMENT['name']})" for line in _stale]
if _stale:
    if any(
        a in ("--dry-run", "--dryrun") or re.fullmatch(r"-[a-zA-Z]*n[a-zA-Z]*", a)
        for a in sys.argv[1:]
    ):
        atexit.register(print_stale, _stale)
    else:
        print_stale(_stale)
