"""Tables ready for a paper: a LaTeX ``tabular`` in booktabs rules (``\\usepackage{booktabs}``),
every cell escaped, headed by comments that name the table it was cut from and, per row, the
records its numbers came from, so each number in the paper traces back to its run.

Not pandas' ``DataFrame.to_latex``, whose Styler imports matplotlib's pyplot (1-2 s of every table
job on 2 cores); the bytes are its output's with ``index=False, escape=True``
(tests/core/reports/test_latex.py compares them)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

#: LaTeX's special characters, in the order they are replaced (a backslash first, through a
#: placeholder, so the escapes' own backslashes stay); a space a command gobbles becomes ``\space``
_BACKSLASH = "\0backslash\0"
_ESCAPES = (
    ("\\", _BACKSLASH),
    (_BACKSLASH + " ", _BACKSLASH + "\\space "),
    ("&", "\\&"),
    ("%", "\\%"),
    ("$", "\\$"),
    ("#", "\\#"),
    ("_", "\\_"),
    ("{", "\\{"),
    ("}", "\\}"),
    ("~ ", "~\\space "),
    ("~", "\\textasciitilde "),
    ("^ ", "^\\space "),
    ("^", "\\textasciicircum "),
    (_BACKSLASH, "\\textbackslash "),
)


def _escape(text: str) -> str:
    """``text`` safe in LaTeX text mode."""
    for old, new in _ESCAPES:
        text = text.replace(old, new)
    return text


def tabular(df: pd.DataFrame, column_format: str | None = None) -> str:
    """``df``'s cells (text) as a booktabs ``tabular``, every cell escaped."""
    for c in df.columns:
        for v in df[c]:
            if not isinstance(v, str):
                raise TypeError(f"column {c!r} holds {v!r}: format every cell as text first")
    lines = [f"\\begin{{tabular}}{{{column_format or 'l' * len(df.columns)}}}", "\\toprule"]
    if len(df.columns):
        lines.append(" & ".join(_escape(str(c)) for c in df.columns) + " \\\\")
    lines.append("\\midrule")
    lines += [" & ".join(_escape(v) for v in row) + " \\\\" for row in df.itertuples(index=False)]
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def booktabs(
    df: pd.DataFrame, source: str, row_sources: Sequence[str], column_format: str | None = None
) -> str:
    """``df`` (cells as text) as a booktabs tabular, with comments above naming ``source``, the
    file the rows were cut from, and ``row_sources``, each row's records (run ids, files)."""
    if len(row_sources) != len(df):
        raise ValueError(f"{len(row_sources)} row sources for {len(df)} rows")
    head = [f"% cut from {source} by ablate; needs \\usepackage{{booktabs}}"]
    head += [f"% row {i}: {s}" for i, s in enumerate(row_sources, 1)]
    return "\n".join(head) + "\n" + tabular(df, column_format)
