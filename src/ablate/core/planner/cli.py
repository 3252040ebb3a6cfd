"""``ablate plan``: the plan of a config without Snakemake, written under its results folder."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from ablate.core.planner.files import PLAN_FILES
from ablate.core.planner.inputs import PlanError, load_config, load_reference, parse_setups
from ablate.core.planner.output import summary_lines, write_plan
from ablate.core.planner.plan import make_plan
from ablate.core.planner.prices import capture_offers


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ablate plan",
        description="Predict wall time and cost of every job on every setup (plan.setups); after a "
        "run, add the actual time and the error of the estimate. See docs/planner.md.",
    )
    ap.add_argument(
        "--config",
        "--configfile",  # Snakemake's spelling
        dest="config",
        required=True,
        nargs="+",
        help="pipeline config (config/config.yaml, config/ministral3b.yaml, config/latentwire.yaml); "
        "several: each over the ones before it, as Snakemake merges them "
        "(config/ministral3b.yaml config/ministral8b.yaml)",
    )
    ap.add_argument(
        "--out",
        help=f"plan table (CSV); default <root>/<results>/{PLAN_FILES['plan_csv']}, "
        "<results> being the config's results folder",
    )
    ap.add_argument("--html", help="also write the table as HTML (the report's view)")
    ap.add_argument(
        "--root", default=".", help="folder holding the config's results folder (earlier runs)"
    )
    ap.add_argument(
        "--frozen",
        help="add actuals to this estimate (written before the run) instead of a fresh one",
    )
    ap.add_argument("--no-actuals", action="store_true", help="estimate only")
    ap.add_argument(
        "--capture-offers",
        metavar="PATH",
        help="write the cheapest live Vast offer per setup as a snapshot (needs VAST_API_KEY) and exit",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        config = load_config(args.config)
        if args.capture_offers:
            plan = config["plan"]
            setups = parse_setups(plan, load_reference(plan["measurements"]))
            snap = capture_offers(setups, plan, args.capture_offers)
            print(
                f"wrote {len(snap['offers'])} offers to {args.capture_offers} ({snap['captured_at']})"
            )
            for m in snap["missing"]:
                print(f"  missing: {m}")
            return 0
        frozen = pd.read_csv(args.frozen) if args.frozen else None
        p = make_plan(config, root=args.root, actuals=not args.no_actuals, frozen=frozen)
    except (PlanError, OSError) as exc:
        print(f"ablate plan: {exc}", file=sys.stderr)
        return 2
    # beside the runs it read, where the rule writes it: <root>/<results>/plan.csv
    out = args.out or str(Path(args.root) / config["results"] / PLAN_FILES["plan_csv"])
    write_plan(p, out, args.html)
    print("\n".join(summary_lines(p)))
    print(f"wrote {out}" + (f" and {args.html}" if args.html else ""))
    return 0
