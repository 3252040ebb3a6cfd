"""Tables for a paper: booktabs LaTeX of the recovery table's macro rows and of a claims table,
every cell escaped, each row's records named above the table."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from ablate.core.reports import claims
from ablate.core.reports.latex import booktabs, tabular
from ablate.mask import recovery


def test_booktabs_escapes_cells_and_names_each_rows_source():
    df = pd.DataFrame({"claim": ["ablation_hurts"], "evidence": ["95% CI & more"]})
    tex = booktabs(df, "results/claims/mask.csv", ["results/eval/base/causal (run r1)"])
    lines = tex.splitlines()
    assert lines[0] == "% cut from results/claims/mask.csv by ablate; needs \\usepackage{booktabs}"
    assert lines[1] == "% row 1: results/eval/base/causal (run r1)"
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "ablation\\_hurts & 95\\% CI \\& more \\\\" in tex
    with pytest.raises(ValueError, match="2 row sources for 1 rows"):
        booktabs(df, "x.csv", ["a", "b"])


def test_claims_table_as_latex_names_each_claims_inputs():
    row = dict.fromkeys(claims.COLUMNS, "")
    df = pd.DataFrame(
        [
            {
                **row,
                "study": "mask",
                "claim": "prefix_recovers_more",
                "verdict": "supported",
                "evidence": "3B 0.636 - 3A 0.591: diff +0.045",
                "test": "permutation",
                "p_value": 1.9e-05,
                "n": 1000,
                "inputs": "results/eval/3B/prefill_bidir (run b)",
            },
        ],
        columns=claims.COLUMNS,
    )
    tex = claims.to_latex(df, "results/claims/mask.csv")
    assert "% row 1: prefix_recovers_more <- results/eval/3B/prefill_bidir (run b)" in tex
    assert "Claim & Verdict & Evidence & p \\\\" in tex
    assert "prefix\\_recovers\\_more & supported & 3B 0.636 - 3A 0.591: diff +0.045 &" in tex


def test_recovery_as_latex_keeps_the_macro_rows_with_their_runs_and_protocol():
    base = dict.fromkeys(recovery.COLUMNS)
    rows = [
        {
            **base,
            "task": "macro",
            "stage": 1,
            "variant": "base",
            "eval_policy": "causal",
            "metric": "mean_headline",
            "score": 0.951,
            "stderr": 0.0061,
            "delta_vs_stage1": 0.0,
            "recovered_fraction": 1.0,
            "run_id": "r1",
            "metrics_file": "eval/base/causal/metrics.json",
        },
        {
            **base,
            "task": "macro",
            "stage": 4,
            "variant": "3B",
            "eval_policy": "prefill_bidir",
            "metric": "mean_headline",
            "score": 0.636,
            "stderr": 0.013,
            "delta_vs_stage1": -0.315,
            "delta_vs_stage1_ci_low": -0.349,
            "delta_vs_stage1_ci_high": -0.28,
            "recovered_fraction": 0.11,
            "run_id": "r2",
            "metrics_file": "eval/3B/prefill_bidir/metrics.json",
            "sft_format": "alpaca",
        },
        {
            **base,
            "task": "emb_pair",
            "stage": 4,
            "variant": "3B",
            "eval_policy": "prefill_bidir",
            "metric": "acc_norm",
            "protocol": "lm_eval",
            "score": 0.7,
            "sft_format": "alpaca",
        },
    ]
    tex = recovery.to_latex(pd.DataFrame(rows, columns=recovery.COLUMNS), "results/recovery.csv")
    assert "% row 2: eval/3B/prefill_bidir/metrics.json (run r2)" in tex and "% row 3" not in tex
    assert "4 & 3B & prefill\\_bidir & 0.636 ± 0.013 & -0.315 [-0.349, -0.280] & 0.11 \\\\" in tex
    assert "1 & base & causal & 0.951 ± 0.006 & +0.000 & 1.00 \\\\" in tex
    assert "emb\\_pair" not in tex
    assert tex.rstrip().endswith(
        "% Scoring protocol: lm_eval (headline metrics: acc_norm); SFT format of the finetunes: "
        "alpaca. docs/differences.md says how each differs from the original study's."
    )


def test_the_tabular_is_pandas_to_latex_without_its_pyplot_import():
    """The bytes of pandas' ``to_latex(index=False, escape=True)`` for every special character
    (a space after the ones whose command gobbles it), empty cells, no rows, no columns, a
    column format; without pandas' Styler, which imports matplotlib's pyplot (1-2 s a job)."""
    specials = "50% & $3 #4 {y} ~ z~w ^ q^r \\ back\\slash_x"
    frames = [
        pd.DataFrame({"a b_c": ["x_1", "", specials], "d": ["±", "1", "é"]}),
        pd.DataFrame({"a": pd.Series([], dtype=object)}),
        pd.DataFrame([]),
    ]
    for df in frames:
        for fmt in (None, "p{0.5\\linewidth}" + "r" * len(df.columns)):
            assert tabular(df, fmt) == df.to_latex(index=False, escape=True, column_format=fmt)
    with pytest.raises(TypeError, match="column 'n' holds 1: format every cell as text first"):
        tabular(pd.DataFrame({"n": [1]}))
    code = (
        "import sys, pandas as pd; from ablate.core.reports.latex import booktabs; "
        "booktabs(pd.DataFrame({'a': ['1']}), 'x.csv', ['r']); print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
