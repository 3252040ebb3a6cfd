"""Tables ready for a paper: a LaTeX ``tabular`` in booktabs rules (``\\usepackage{booktabs}``),
every cell escaped, headed by comments that name the table it was cut from and, per row, the
records its numbers came from, so each number in the paper traces back to its run."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def booktabs(
    df: pd.DataFrame, source: str, row_sources: Sequence[str], column_format: str | None = None
) -> str:
    """``df`` (cells already formatted as text) as a booktabs tabular. ``source``: the file the
    rows were cut from; ``row_sources``: per row, the records behind its numbers (run ids,
    files), written as a comment above the table."""
    if len(row_sources) != len(df):
        raise ValueError(f"{len(row_sources)} row sources for {len(df)} rows")
    head = [f"% cut from {source} by ablate; needs \\usepackage{{booktabs}}"]
    head += [f"% row {i}: {s}" for i, s in enumerate(row_sources, 1)]
    body = df.to_latex(index=False, escape=True, column_format=column_format)
    return "\n".join(head) + "\n" + body
