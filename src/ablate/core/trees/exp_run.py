"""``ablate exp run NAME --set KEY=VALUE``: an experiment, or a sweep over the values of one or
more keys (one experiment per point of their product), written to ``experiments/<name>.yaml``
and run beside the base in one Snakemake run (:mod:`ablate.core.trees.experiments` says what an
experiment is and which of its jobs are the base's), which ends with each experiment's own
summary (:func:`ablate.core.reports.exp_summary.closing_lines`: its tree, claims and deltas
against the base). Not in the experiments module, which the run cache and STATUS read."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from ablate.core.config import ConfigError, add_configfiles_option, check_set_keys
from ablate.core.outputs import io
from ablate.core.trees import exp_rm
from ablate.core.trees.experiments import (
    OVERLAYS,
    Plan,
    check_names,
    experiment_config,
    folder,
    is_name,
    merged,
    rule_prefix,
)
from ablate.core.trees.results_lock import ResultsLocked
from ablate.core.user_yaml import config_mapping, load_yaml


def _axes(entries: Iterable[str]) -> list[tuple[str, list[tuple[Any, str]]]]:
    """Each ``KEY=VALUE`` entry's key and its values, each with its text as typed."""
    entries = [str(e) for e in entries]
    axes = []
    for entry in entries:
        key, eq, text = entry.partition("=")
        if not eq or not key or any(not part for part in key.split(".")):
            raise ConfigError(
                f"--set {entry}: write KEY=VALUE with KEY a dotted config key "
                "(mask.finetune.defaults.learning_rate=5.0e-4), KEY=V1,V2 for a sweep"
            )
        text = text.strip()
        texts = [text] if text[:1] in "[{" else [t.strip() for t in text.split(",")]
        axes.append((key, [(load_yaml(t, f"--set {entry}", value=True), t) for t in texts]))
    check_set_keys(entries, hint=" (KEY=V1,V2 sweeps over several values)")
    return axes


def parse_set(entries: Iterable[str], as_typed: bool = False) -> list[dict[str, Any]]:
    """``KEY=VALUE`` entries (``KEY=V1,V2,...`` a sweep, several sweeps their product) -> one
    {dotted key: value} per experiment; a value in brackets or braces is never split.
    ``as_typed``: each value's text as typed."""
    axes = _axes(entries)
    keys = [k for k, _ in axes]
    return [
        dict(zip(keys, [v[1 if as_typed else 0] for v in combo], strict=True))
        for combo in itertools.product(*[values for _, values in axes])
    ]


def _overridden(over: Mapping[str, Any], sets: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of ``over`` (a ``--file`` overlay) whose value ``sets`` would replace."""
    keys = []
    for k, v in sets.items():
        if k in over:
            both = isinstance(v, Mapping) and isinstance(over[k], Mapping)
            keys += _overridden(over[k], v, f"{prefix}{k}.") if both else [f"{prefix}{k}"]
    return keys


def check_file_keys(over: Mapping[str, Any], path: str, entries: Iterable[str]) -> None:
    """ConfigError when a ``--set`` entry sets a key the ``--file`` overlay sets."""
    for entry in entries:
        keys = [k for point in parse_set([entry]) for k in _overridden(over, nested(point))]
        if keys:
            value = over
            for part in keys[0].split("."):
                value = value[part]
            raise ConfigError(
                f"--file {path} sets {keys[0]} ({json.dumps(value, default=str)}) and --set "
                f"{entry} sets it again: give each key in one of them"
            )


def _overlay_file(files: list[str]) -> str | None:
    """The one ``--file`` given (None: none); ConfigError when there are more."""
    if len(files) > 1:
        raise ConfigError(
            " and ".join(f"--file {f}" for f in files) + ": an experiment takes one overlay "
            "file: put their keys in one file (or give some as --set KEY=VALUE)"
        )
    return files[0] if files else None


def nested(assignments: Mapping[str, Any]) -> dict[str, Any]:
    """{dotted key: value} as the nested mapping a config file writes."""
    out: dict[str, Any] = {}
    for key, value in assignments.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def sweep_names(name: str, points: list[dict[str, Any]]) -> list[str]:
    """Each sweep point's name, ``<name>-<values>`` (``lr-1.0e-4``), else ``<name>-<i>``."""
    if len(points) == 1:
        return [name]
    varied = [k for k in points[0] if len({repr(p[k]) for p in points}) > 1]
    names = [
        f"{name}-" + "-".join(re.sub(r"[^A-Za-z0-9_.=-]", "_", str(p[k])) for k in varied)
        for p in points
    ]
    if len(set(names)) < len(names) or not all(is_name(n) for n in names):
        names = [f"{name}-{i}" for i in range(1, len(points) + 1)]
    return names


def experiments_run(
    target_rules: Iterable[str], target_files: Iterable[str], plans: Iterable[Plan]
) -> list[str]:
    """The experiments a run's targets are, if all are experiments'; else []."""
    plans = sorted(plans, key=lambda p: -len(p.prefix))  # exp_a_b_all is a_b's, not a's
    trees = [(p, os.path.normpath(p.config["results"]) + os.sep) for p in plans]

    def owner(rule: str, path: str) -> str | None:
        return next(
            (p.name for p, t in trees if rule.startswith(p.prefix) or path.startswith(t)), None
        )

    names = [owner(r, "") for r in target_rules]
    names += [owner("", os.path.normpath(f)) for f in target_files]
    return list(dict.fromkeys(names)) if names and None not in names else []


def main(argv: list[str] | None = None) -> int:
    import yaml

    ap = argparse.ArgumentParser(
        prog="ablate exp",
        description="Experiments beside a configuration: `ablate exp run NAME --set KEY=VALUE` "
        "runs the configuration with KEY changed in its own results tree, <results>/exp/NAME/, "
        "in one snakemake run: the jobs the change does not reach are the base's, not run again. "
        "`ablate runs` puts the trees side by side.",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an experiment, or a sweep of them")
    run.add_argument("name", help="the experiment's name: its tree is <results>/exp/<name>/")
    run.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config key it changes (dotted; a YAML value); KEY=V1,V2,... sweeps over the "
        "values, several sweeps over their product (repeat the flag)",
    )
    run.add_argument(
        "--file",
        metavar="YAML",
        action="append",
        default=[],
        help="an overlay of the keys it changes (one file)",
    )
    add_configfiles_option(run, "the base configuration's files")
    run.add_argument("-c", "--cores", default="2", help="snakemake's --cores (default 2)")
    run.add_argument("-n", "--dry-run", action="store_true", help="snakemake's dry run")
    run.epilog = "After --: more snakemake options (--rerun-triggers mtime, --keep-going, ...)."
    rm = sub.add_parser("rm", help="remove an experiment (or a sweep): its trees and overlay")
    rm.add_argument("name", help="an overlay's name (experiments/NAME.yaml) or an experiment's")
    add_configfiles_option(rm, "the base configuration's files")
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:cut])
    extra = argv[cut + 1 :]
    from ablate.core.planner.inputs import PlanError, load_config

    if args.command == "rm":
        return _remove_command(args.name, args.configfile)

    try:
        base = load_config(args.configfile)
        file = _overlay_file(args.file)
        over = config_mapping(file) if file else {}
        check_file_keys(over, file, args.sets)
        points = [merged(over, nested(p)) for p in parse_set(args.sets)] if args.sets else [over]
        if not any(points):
            raise ConfigError("ablate exp run: give the keys it changes: --set KEY=VALUE or --file")
        names = sweep_names(args.name, parse_set(args.sets, as_typed=True) if args.sets else [{}])
        config = {**base, "experiments": dict(zip(names, points, strict=True))}
        check_names(names)
        for n in names:
            experiment_config(config, n)  # a bad key: one line, before snakemake starts
    except (ConfigError, PlanError, OSError) as exc:
        print(f"ablate exp: {exc}", file=sys.stderr)
        return 2
    overlay = f"{OVERLAYS}/{args.name}.yaml"
    io.write_text(overlay, yaml.safe_dump({"experiments": config["experiments"]}, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-c", str(args.cores)]
    cmd += [*(["-n"] if args.dry_run else []), *(f"{rule_prefix(n)}all" for n in names)]
    cmd += ["--configfile", *args.configfile, overlay, *extra]
    print(f"ablate exp: {', '.join(names)} in {folder(base['results'], '')}; " + " ".join(cmd[2:]))
    # the run ends with the experiments' own summary (exp_summary.closing_lines: the base's onsuccess)
    return subprocess.call(cmd)


def _remove_command(name: str, configfiles: list[str]) -> int:
    """``ablate exp rm NAME``, its refusals in one line."""
    from ablate.core.planner.inputs import PlanError, load_config

    try:
        print("\n".join(exp_rm.remove(name, load_config(configfiles)["results"])))
    except (ConfigError, PlanError, OSError, LookupError, ResultsLocked) as exc:
        print(f"ablate exp rm: {exc}", file=sys.stderr)
        return 2
    return 0
