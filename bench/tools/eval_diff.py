"""Two evaluations of the same models and docs, side by side: per (model, policy) evaluated in
both ``eval/`` folders, how many docs change their acc_tokens and acc_norm predictions, the
acc_tokens macro of each, and the per-token log-likelihood gap of the choices.

    python bench/tools/eval_diff.py results/a/eval results/b/eval    # prints a markdown table

What measured docs/differences.md's switches of the evaluation (one run with the switch off, a
copy of its ``eval/`` folder, the run again with it on).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

KEYS = ["task", "doc_id", "choice"]


def compare(a: Path, b: Path) -> pd.DataFrame:
    rows = []
    for samples in sorted(a.glob("*/*/samples.parquet")):
        other = b / samples.relative_to(a)
        if not other.exists():
            continue
        x, y = pd.read_parquet(samples), pd.read_parquet(other)
        if not x[KEYS].equals(y[KEYS]):
            raise SystemExit(f"{samples} and {other} score other docs or choices")
        gap = (x["loglikelihood"] - y["loglikelihood"]).abs() / x["tokens"]
        dx, dy = (d.drop_duplicates(["task", "doc_id"]) for d in (x, y))
        rows.append(
            {
                "model": samples.parent.parent.name,
                "policy": samples.parent.name,
                "docs": len(dx),
                "acc_tokens changed": int((dx["predicted_tokens"] != dy["predicted_tokens"]).sum()),
                "acc_norm changed": int((dx["predicted_norm"] != dy["predicted_norm"]).sum()),
                "acc_tokens macro a": round(dx.groupby("task")["acc_tokens"].mean().mean(), 4),
                "acc_tokens macro b": round(dy.groupby("task")["acc_tokens"].mean().mean(), 4),
                "max nats/token": round(gap.max(), 4),
                "mean nats/token": round(gap.mean(), 5),
            }
        )
    return pd.DataFrame(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="an eval/ folder")
    ap.add_argument("b", type=Path, help="the other")
    args = ap.parse_args()
    print(compare(args.a, args.b).to_markdown(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
