"""bench/tools/seed_spread.py (the spread over seeds of the embedded finding) and bench/tools/world_search.py (the
world-design search): their config and table logic on the suite's one embedded run (slow), and
a seconds-long smoke run of the search."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).parents[2]


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench" / "tools"))


def test_seed_spread_config_sets_every_seed_key_and_overrides(bench):
    import seed_spread

    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    before = base["mask"]["data"]["seed"]
    cfg = seed_spread.run_config(base, 3, ["mask.model.embedded.pretrain.loss_vocab=full"])
    assert cfg["studies"] == ["mask"] and cfg["mask"]["data"]["seed"] == 3
    assert cfg["mask"]["model"]["embedded"]["pretrain"]["seed"] == 3
    assert cfg["mask"]["finetune"]["defaults"]["seed"] == 3
    assert cfg["mask"]["model"]["embedded"]["pretrain"]["loss_vocab"] == "full"
    # the base config is left as it was
    assert (
        base["mask"]["data"]["seed"] == before != 3
        and base["mask"]["model"]["embedded"]["pretrain"]["loss_vocab"] == "corpus"
    )
    with pytest.raises(SystemExit, match="expected key.path=value"):
        seed_spread.run_config(base, 0, ["mask.model.embedded.pretrain.seed"])


@pytest.mark.slow  # the session's embedded run (minutes)
def test_seed_spread_table_reads_a_finished_run(bench, embedded_run, tmp_path):
    import seed_spread

    run = tmp_path / "seed0"
    run.mkdir()
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    (run / "run.yaml").write_text(yaml.safe_dump(seed_spread.run_config(base, 0, [])))
    (run / "results").symlink_to(embedded_run / "results")
    df = seed_spread.table(tmp_path)
    assert len(df) == 1
    r = df.iloc[0]
    metrics = embedded_run / "results" / "eval" / "base"
    s1 = json.loads((metrics / "causal" / "metrics.json").read_text())["macro"]["score"]
    s2 = json.loads((metrics / "prefill_bidir" / "metrics.json").read_text())["macro"]["score"]
    assert r["stage 1"] == round(s1, 3) and r["stage 2"] == round(s2, 3)
    assert r["drop"] == round(r["stage 1"] - r["stage 2"], 3)
    assert all(r[c] is not None and 0 <= r[c] <= 1 for c, *_ in seed_spread.COLUMNS)
    claims = pd.read_csv(embedded_run / "results" / "claims" / "mask.csv")
    n_learned = claims.claim.str.startswith("learned/").sum()
    assert r["tasks learned"].endswith(f"/{n_learned}")


@pytest.mark.slow
def test_world_search_smoke(bench, tekken_dir, tmp_path, capsys):
    import world_search

    out = tmp_path / "runs"
    out.mkdir()
    argv = ["--tok", str(tekken_dir), "--tasks", "count,repeat:3", "--restrict"]
    world_search.main([*argv, "--steps", "3", "--ft-steps", "1", "--n-items", "3", "--docs", "20"])
    result = json.loads(capsys.readouterr().out)
    for stage in ("base", "3A", "3B"):
        for policy in ("causal", "prefill_bidir"):
            assert {t: len(v) for t, v in result[stage][policy].items()} == {
                "count": 3,
                "repeat:3": 3,
            }
    (out / "r.json").write_text(json.dumps(result))
    world_search.main(["--summarize", str(out)])
    assert "prefill_bidir" in capsys.readouterr().out
