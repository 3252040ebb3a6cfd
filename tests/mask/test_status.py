"""The mask study's STATUS lines (ablate.mask.status): a changed key named where the config
sets it."""

from __future__ import annotations

from helpers import seeded

from ablate.mask import layout


def test_stale_seed_names_its_declared_variant():
    """A seed's changed key is set on its declared variant (mask.finetune.variants.3B), not on a
    variant named 3B-s1, which no config has (before: mask.finetune.defaults)."""
    from ablate.mask import status

    cfg = seeded(**{"3B": [0, 1]})
    cfg["mask"]["finetune"]["variants"]["3B"]["warmup_ratio"] = 0.1
    before = {j.name: j.config for j in layout.jobs(cfg)}
    cfg["mask"]["finetune"]["variants"]["3B"]["warmup_ratio"] = 0.2
    now = {j.name: j for j in layout.jobs(cfg)}
    changes = {
        v: status.changes(now[f"finetune/{v}"], before[f"finetune/{v}"], cfg)
        for v in ("3B-s1", "5B-s1")
    }
    assert changes == {
        "3B-s1": ["mask.finetune.variants.3B.warmup_ratio 0.1 -> 0.2"],
        # the stage-5 variant inherits it: named on itself, then where it is set
        "5B-s1": [
            "mask.finetune.variants.5B.warmup_ratio 0.1 -> 0.2 "
            "(now set by mask.finetune.variants.3B.warmup_ratio)"
        ],
    }


def test_every_cpu_holds_the_question_and_names_claims_the_default_states():
    """The claims that must hold on every CPU kind include the study's question (3B wins back
    part of the drop), and each is a claim the default config's table states (a renamed claim
    would leave the check of an unmeasured CPU kind empty)."""
    from helpers import shipped_config, validated

    from ablate.mask import status
    from ablate.mask.claims import mask_claims
    from ablate.mask.variants import resolve_claims, resolve_variants

    cfg = validated(shipped_config("config.yaml"))["mask"]
    finetune = cfg["finetune"]
    claims = resolve_claims(
        cfg["claims"], resolve_variants(finetune["variants"], finetune["defaults"])
    )
    tasks = [t["name"] for t in cfg["eval"]["tasks"]]
    stated = {c.id for c in mask_claims(claims, cfg["eval"]["ablated_policy"], tasks)}
    assert "prefix_recovers" in status.EVERY_CPU
    assert set(status.EVERY_CPU) <= stated, sorted(set(status.EVERY_CPU) - stated)


def test_status_ends_its_claims_with_the_answer(tmp_path):
    """STATUS.md's key results end with the run's answer (ablate.mask.answer)."""
    import csv

    from ablate.mask import answer, status

    claims = tmp_path / "results" / layout.PATTERNS["claims_csv"]
    claims.parent.mkdir(parents=True)
    evidence = "3B ...; " + answer.share_text("3B", 0.5, 0.2, 0.4, 0.6, 0.05)
    with open(claims, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["study", "claim", "verdict", "evidence", "test", "p_value"])
        w.writerow(["mask", "prefix_recovers", "supported", evidence, "exact McNemar", "1e-05"])
    lines = status.key_results({"results": "results"}, tmp_path)
    assert lines[-2:] == [
        "- claim `prefix_recovers`: **supported**",
        "- answer: 3B wins back 50 % of the ablation's drop (p=1e-05).",
    ]
