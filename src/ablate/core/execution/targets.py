"""One line for a command-line target that this configuration makes nowhere: a misspelled file,
or another configuration's file (a real study's target typed without its ``--configfile``). It
names the nearest file this configuration does make and the config file whose results folder
holds the target, instead of Snakemake's bare ``No rule to produce <target>``. No torch: the
Snakefile calls it at parse time.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _norm(path: str | os.PathLike) -> str:
    return os.path.normpath(os.path.relpath(os.path.abspath(path)))


def is_snakemake_cli(argv: list[str]) -> bool:
    """Whether ``argv`` is the ``snakemake`` command line, not a program using Snakemake's API."""
    prog = Path(argv[0]) if argv else Path()
    return "snakemake" in (prog.name, prog.parent.name)


def command_line_targets() -> list[str]:
    """The targets of the ``snakemake`` command line this process runs, read with Snakemake's
    own parser (it hands them to the workflow only after parsing it); none through its API."""
    if not is_snakemake_cli(sys.argv):
        return []
    from snakemake.cli import get_argument_parser

    args, _ = get_argument_parser().parse_known_args(sys.argv[1:])
    return [str(t) for t in args.targets or []]


def target_files(jobs: Iterable[Any], rules: Iterable[Any]) -> list[str]:
    """Every file a target may name: each job's outputs, log and benchmark, each fixed rule's."""
    own = [f for j in jobs for f in [*j.outputs.values(), j.log, j.benchmark] if f]
    fixed = [str(f) for r in rules if not r.has_wildcards() for f in r.products()]
    return own + fixed


def config_folders(config_dir: str | os.PathLike) -> dict[str, str]:
    """The results folder of each config file in ``config_dir`` -> that file (the first by name
    of a shared folder); a file without a ``results`` key, or no config at all, is left out."""
    from ablate.core.user_yaml import ConfigError, config_mapping

    folders: dict[str, str] = {}
    for path in sorted(Path(config_dir).glob("*.y*ml")):
        try:
            results = config_mapping(path).get("results")
        except (ConfigError, OSError):
            continue
        if isinstance(results, str):
            folders.setdefault(_norm(results), os.path.relpath(path))
    return folders


def unknown_target(
    target: str, known: Iterable[str], results: str, folders: dict[str, str]
) -> str | None:
    """One line for ``target`` when it is none of ``known`` (the files this configuration
    makes, relative paths); None when it is one. ``results``: this configuration's results
    folder; ``folders``: :func:`config_folders`."""
    known = sorted({_norm(k) for k in known})
    wanted = _norm(target)
    if wanted in known:
        return None
    here = _norm(results)
    # the deepest results folder that holds the target (the default's `results` holds the
    # others): another config file's, or this configuration's own (a misspelled file)
    owners = [f for f in [*folders, here] if wanted.startswith(f + os.sep)]
    owner = max(owners, key=len, default=here)
    if owner != here:
        config = folders[owner]
        return (
            f"{target}: no rule of this configuration (results: {results}) makes it; it is in "
            f"the results folder of {config}: snakemake [options] {target} --configfile {config}"
        )
    close = difflib.get_close_matches(wanted, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"the outputs are under {results}/"
    return f"{target}: no rule of this configuration (results: {results}) makes it; {hint}"
