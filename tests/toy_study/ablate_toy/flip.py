"""The toy study's job: flip the coin, record the flips with their provenance, state the claim."""

from __future__ import annotations

import random
from typing import Any

import pandas as pd

from ablate.core.outputs import io, provenance
from ablate.core.reports import claims


def run(cfg: dict[str, Any], flips_json: str, claims_csv: str) -> None:
    rng = random.Random(cfg["seed"])
    heads = [int(rng.random() < cfg["bias"]) for _ in range(cfg["flips"])]
    record = {"flips": len(heads), "heads": sum(heads)}
    record["provenance"] = provenance.collect(config_slice=cfg, inputs={})
    io.write_json(flips_json, record, indent=2)
    sample = claims.Samples(pd.Series(heads, dtype=float), flips_json, "flips")

    def heads_win(ev: claims.Evidence) -> claims.ClaimResult:
        s = ev["flips"]
        share = float(s.values.mean())
        verdict = "supported" if share > 0.5 else "not supported"
        return claims.ClaimResult(verdict, f"{share:.2f} heads", n=len(s.values))

    claim = claims.Claim("heads_win", "the coin comes up heads more often than tails", heads_win)
    table = claims.evaluate_claims([claim], {"flips": sample}, study="toy")
    claims.write_claims(table, claims_csv)
