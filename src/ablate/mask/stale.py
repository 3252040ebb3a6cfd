"""Which finished jobs a config edit makes stale, named by the config keys that changed.

Snakemake's dry-run reason for a params change prints the whole old and new parameter trees (KBs
per job); the one edited key is hard to find there. Each stage output's provenance block records
the config slice its job ran with, so comparing that with the slice the config gives now names
the changed keys: one line per stale job, e.g.
``stale: finetune 3B: mask.finetune.defaults.learning_rate 0.001 -> 0.002``.
Cheap (one small JSON read per finished job), pure Python (runs at parse time), silent when
nothing changed or nothing has run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ablate.core.config import sorted_tree
from ablate.core.provenance import changed_keys
from ablate.core.records import recorded_config

# The leakage probe records its CLI arguments; their config keys (mask.leakage.<key>).
LEAKAGE_KEYS = {
    "n": "n_pairs",
    "max_seq_len": "max_seq_len",
    "batch_size": "batch_size",
    "dtype": "dtype",
    "threshold": "threshold",
}


def _finetune_changes(old: dict, variant: str, config: dict, variants: dict) -> list[str]:
    """A finetune records its resolved params: name each changed one by where the config sets
    it now (the variant, the stage-3 variant a stage-5 one extends, else mask.finetune.defaults)."""
    v = variants[variant]
    declared = config["mask"]["finetune"]["variants"]

    def origin(key: str) -> str:
        for name in (v.get("base", variant), v.get("extends")):  # a seed: its declared variant
            if name and key in declared.get(name, {}):
                return f"mask.finetune.variants.{name}"
        return "mask.finetune.defaults"

    out = []
    for change in changed_keys(old.get("params", {}), v["params"]):
        key = change.split(" ", 1)[0].split(".", 1)[0]
        out.append(f"{origin(key)}.{change}")
    meta_old = {k: old.get(k) for k in ("stage", "policy", "allow_leakage")}
    meta_new = {k: v[k] for k in ("stage", "policy", "allow_leakage")}
    out += changed_keys(meta_old, meta_new, f"mask.finetune.variants.{variant}")
    return out


def job_changes(
    rule: str, wildcards: dict[str, str], old: Any, config: dict, variants: dict
) -> list[str]:
    """The changed config keys (``"key old -> new"``) between a job's recorded slice and the
    config now; [] for a rule this module does not know (its reruns show in Snakemake's reason)."""
    if not isinstance(old, dict):
        return []
    mask = config["mask"]
    if rule == "prepare_model":
        return changed_keys(old, sorted_tree(mask["model"]), "mask.model")
    if rule == "eval_model":
        return changed_keys(old.get("eval"), sorted_tree(mask["eval"]), "mask.eval")
    if rule == "leakage_probe":
        leak = mask["leakage"]
        # a null key (threshold) is the probe's default: it records the value it resolved to
        before = {
            LEAKAGE_KEYS[k]: old[k]
            for k in LEAKAGE_KEYS
            if k in old and leak.get(LEAKAGE_KEYS[k]) is not None
        }
        now = {k: leak.get(k) for k in before}
        return changed_keys(before, now, "mask.leakage")
    if rule == "finetune" and wildcards.get("variant") in variants:
        return _finetune_changes(old, wildcards["variant"], config, variants)
    return []


def stale_lines(
    jobs: Iterable[tuple[str, dict[str, str], str]], config: dict, variants: dict
) -> list[str]:
    """One ``stale: <rule> <wildcards>: <changes>`` line per finished job whose recorded config
    slice differs from the config now. ``jobs``: (rule, wildcards, output JSON with provenance)."""
    lines = []
    for rule, wildcards, path in jobs:
        changes = job_changes(rule, wildcards, recorded_config(path), config, variants)
        if changes:
            label = " ".join([rule, "/".join(wildcards.values())]).strip()
            lines.append(f"stale: {label}: {', '.join(changes)}")
    return lines
