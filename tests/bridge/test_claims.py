"""The bridge study's claims (ablate.bridge.claims) on fabricated runs and benchmark rows: supported,
not supported, the KV claim counting the source's cache, the embedded study's note (fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from helpers import BRIDGE_ENTRIES as ENTRIES

from ablate.bridge import claims
from ablate.core.outputs import io


def infer_samples(path: Path, acc: dict[str, float], kv: dict[str, float], source_kv=None) -> Path:
    """Benchmark rows; ``source_kv``: the source's cache per baseline (total = target + it)."""
    rng = np.random.default_rng(1)
    rows = []
    for b, a in acc.items():
        correct = rng.random(100) < a
        for i, c in enumerate(correct):
            target = kv[b] + 0.001 * (i % 3)
            total = target + (source_kv or {}).get(b, 0.0)
            rows.append(
                dict(
                    baseline=b,
                    id=f"q{i}",
                    correct=bool(c),
                    kv_cache_mb=target,
                    kv_cache_total_mb=total,
                )  # fmt: skip
            )
    return io.write_frame(path, pd.DataFrame(rows))


def test_claims_from_fabricated_results(runs, tmp_path):
    _, _, samples = runs
    kv = dict(source_alone=1.0, target_alone=2.0, latent=0.5, token_budget=0.5, cascade=3.0)
    main = infer_samples(
        tmp_path / "main.parquet",
        dict(source_alone=0.2, target_alone=0.3, latent=0.9, token_budget=0.1, cascade=0.85),
        kv,
    )
    df = claims.write(
        ENTRIES, samples, {"entry": main}, tmp_path / "claims.csv", tmp_path / "claims.md"
    ).set_index("claim")
    assert df.loc["latent_beats_both", "verdict"] == "supported"
    assert df.loc["stability_fixes_work", "verdict"] == "supported"
    assert df.loc["compression_tradeoff", "verdict"] == "supported"  # 0.4 < 0.6 < 0.8 in K
    assert df.loc["soft_beats_text", "verdict"] == "inconclusive"  # 0.9 vs 0.85: noise
    assert df.loc["kv_savings", "verdict"] == "supported"
    assert "saved" in df.loc["kv_savings", "evidence"]
    # no QA entry benchmarked: that claim did not run, and says why
    assert df.loc["generalises_beyond_math", "verdict"] == "not run"
    assert (df["test"].str.len() > 0).sum() == 5
    assert (tmp_path / "claims.md").read_text().startswith("# Claims: bridge")


def test_kv_claim_counts_the_source_cache(runs, tmp_path):
    """The latent's target cache is smaller, but the source's cache of the same request makes the
    total larger than the target alone: the claim (on the total) is not supported."""
    _, _, samples = runs
    acc = dict(source_alone=0.2, target_alone=0.3, latent=0.9, token_budget=0.1, cascade=0.85)
    kv = dict(source_alone=1.0, target_alone=2.0, latent=0.5, token_budget=0.5, cascade=3.0)
    src = dict(latent=2.0, cascade=1.5)
    main = infer_samples(tmp_path / "main.parquet", acc, kv, source_kv=src)
    df = claims.write(ENTRIES, samples, {"entry": main}, tmp_path / "c.csv", None)
    row = df.set_index("claim").loc["kv_savings"]
    assert row["verdict"] == "not supported"
    assert "source + target" in row["evidence"] and "target's cache alone 0.5010" in row["evidence"]


def test_embedded_claims_table_says_what_it_can_show(runs, tmp_path):
    _, _, samples = runs
    e, r = (tmp_path / "e", tmp_path / "r")
    claims.write(ENTRIES, samples, {}, tmp_path / "c.csv", f"{e}.md", f"{e}.html", embedded=True)
    claims.write(ENTRIES, samples, {}, tmp_path / "c.csv", f"{r}.md", f"{r}.html")
    embedded, real = Path(f"{e}.md").read_text(), Path(f"{r}.md").read_text()
    assert embedded.startswith(real) and "show the plumbing, not the seed's claims" in embedded
    assert "config/latentwire.yaml" in embedded and "plumbing" not in real
    # the report's page (the HTML) says it too
    assert "plumbing" in Path(f"{e}.html").read_text()
    assert "plumbing" not in Path(f"{r}.html").read_text()


def test_claims_the_wrong_way_are_not_supported(runs, tmp_path):
    _, _, samples = runs
    swapped = {**samples, "r1a": samples["r1b"], "r1b": samples["r1a"]}
    df = claims.write(ENTRIES, swapped, {}, tmp_path / "c.csv", None).set_index("claim")
    assert df.loc["stability_fixes_work", "verdict"] == "not supported"
    assert df.loc["compression_tradeoff", "verdict"] == "not supported"
    assert df.loc["latent_beats_both", "verdict"] == "not run"
