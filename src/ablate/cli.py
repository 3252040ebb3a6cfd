"""``ablate <command> ...``: one entry point; each command lives in the module named for it."""

from __future__ import annotations

import importlib
import sys

from ablate.mask.commands import PARSERS

# command -> (module, one-line help). Each module exposes ``main(argv: list[str] | None) -> int``.
COMMANDS = {
    "probe": ("ablate.mask.leakage", "label-leakage probe: causal vs policy loss"),
    "eval": ("ablate.mask.evaluation", "score lm-eval tasks under a mask policy"),
    "train": ("ablate.mask.training.cli", "pretrain or finetune under a mask policy"),
    "data": ("ablate.mask.embedded", "write the embedded corpus, tasks and SFT data"),
    "recovery": ("ablate.mask.recovery", "build the recovery table from metrics.json files"),
    "status": (
        "ablate.core.reports.status",
        "write <results>/STATUS.md: what is done, running, stale, left",
    ),
    "diff": (
        "ablate.core.trees.diff",
        "compare two runs (run_ids or record files): config, inputs, hardware, numerics, scores",
    ),
    "expected": (
        "ablate.core.reports.expected",
        "a finished embedded default against its CPU kind's expected results",
    ),
    "runs": (
        "ablate.core.reports.runs",
        "every results tree side by side: changed keys, numbers, claims",
    ),
    "exp": (
        "ablate.core.trees.exp_run",
        "run an experiment (or a sweep) beside the base: KEY=VALUE changed, its own results tree",
    ),
    "cache": (
        "ablate.core.reruns.cache_prune",
        "the run cache's size; --max-size prunes it, the entries used longest ago first",
    ),
    "flips": (
        "ablate.mask.flips",
        "the items whose correctness differs between two evaluations, counted per task",
    ),
    "plan": (
        "ablate.core.planner",
        "predict wall time and cost per job and setup; compare after a run",
    ),
    "map": (
        "ablate.core.module_map",
        "the module map of docs/design.md from the code's docstrings (--write renders it)",
    ),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {c:<{width}}  {h}" for c, (_, h) in COMMANDS.items()]
        print("usage: ablate <command> [args]\n\ncommands:\n" + "\n".join(lines))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if argv[0] in PARSERS:  # --help and argument errors answer before torch is imported
        PARSERS[argv[0]]().parse_args(argv[1:])
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
