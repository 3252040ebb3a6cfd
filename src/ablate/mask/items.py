"""Per-item correctness of one evaluation, from its metrics.json and samples.parquet.

An item's correctness is its doc's value (0/1) of its task's headline metric, so the per-task mean
equals the task's ``score`` (checked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

#: Index levels of a correctness Series: the item id across tasks.
ITEM_ID = ("task", "doc_id")


class ItemsError(ValueError):
    pass


def load(path: str | Path | pd.DataFrame) -> pd.DataFrame:
    if isinstance(path, pd.DataFrame):
        return path
    path = Path(path)
    if not path.exists():
        raise ItemsError(f"samples file {path} does not exist")
    return pd.read_parquet(path)


def correctness(
    metrics: dict[str, Any], samples: pd.DataFrame, where: str = "samples"
) -> pd.Series:
    """0/1 per item, indexed by (task, doc_id), headline metric of each task of ``metrics``."""
    missing = {"task", "doc_id", "acc", "acc_norm"} - set(samples.columns)
    if missing:
        raise ItemsError(f"{where} lacks the column(s) {', '.join(sorted(missing))}")
    docs = samples.drop_duplicates(list(ITEM_ID)).set_index(list(ITEM_ID)).sort_index()
    parts = []
    for task, result in sorted(metrics["tasks"].items()):
        metric = result["headline_metric"]
        if task not in docs.index.get_level_values(0):
            raise ItemsError(f"{where} has no items of task {task!r}")
        values = docs.loc[task, metric].astype(float)
        if values.isna().any() or not values.isin((0.0, 1.0)).all():
            raise ItemsError(f"{where}: task {task!r} has {metric} values other than 0/1")
        # samples that do not belong to these metrics would make every test meaningless
        if abs(values.mean() - float(result["score"])) > 1e-6:
            raise ItemsError(
                f"{where}: task {task!r} mean {metric} {values.mean():.6f} differs from the "
                f"metrics' score {float(result['score']):.6f} (samples of another evaluation?)"
            )
        index = pd.MultiIndex.from_product([[task], values.index], names=ITEM_ID)
        parts.append(pd.Series(values.to_numpy(), index=index))
    return pd.concat(parts).rename("correct")
