"""The frozen-state caches a grid needs, resolved at parse time (no torch).

A cache's key holds what the frozen model's outputs depend on, never the translator or its
training: an lr edit keeps the cache, and every run sharing the key reads it.
"""

from __future__ import annotations

from typing import Any

from ablate.bridge.params import BridgeParams, defaults
from ablate.bridge.pins import data_identity, model_identity
from ablate.core.config import sorted_tree
from ablate.core.outputs.provenance import config_hash

#: Which hidden states the caches hold: the final normed layer (the translator's input, as in
#: the seed).
SOURCE_LAYER = "last_hidden_state"


#: The splits each cache holds (the KL teacher's train only: the KL term is a training loss).
FROZEN_SPLITS = {"source": ("train", "test"), "teacher": ("train",)}


def _frozen_key(
    bridge, what: str, model_key: str, role: str, p: BridgeParams, **lengths: int
) -> dict[str, Any]:
    """What a frozen model's cached outputs depend on (under ``model_key`` the model)."""
    data = bridge["data"]
    return sorted_tree(
        {
            "what": what,
            model_key: model_identity(bridge[role], data),
            "data": data_identity(data, p.dataset),
            "dataset": p.dataset,
            "layer": SOURCE_LAYER,
            **lengths,
            "model_dtype": p.model_dtype,
        }
    )


def states_key(bridge: dict[str, Any], source_role: str, p: BridgeParams) -> dict[str, Any]:
    """What a source-state cache depends on."""
    return _frozen_key(bridge, "source", "source", source_role, p, max_source_len=p.max_source_len)


#: The definitions the teacher's rows depend on (which input, which answer tokens): in the key
#: where they are not at their defaults, so the caches of the default's runs keep their ids.
TEACHER_DEFINITIONS = ("kl_teacher", "nll_labels", "kl_rows", "padding")


def teacher_key(bridge: dict[str, Any], target_role: str, p: BridgeParams) -> dict[str, Any]:
    """What the KL teacher's rows depend on."""
    key = _frozen_key(
        bridge,
        "teacher",
        "target",
        target_role,
        p,
        max_prompt_len=p.max_prompt_len,
        kl_positions=p.kl_positions,
    )
    definitions = {k: getattr(p, k) for k in TEACHER_DEFINITIONS}
    changed = {k: v for k, v in definitions.items() if v != defaults()[k]}
    return sorted_tree({**key, **changed})


def of_runs(bridge: dict[str, Any], runs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One cache per key of ``runs``: its role, runs, test items and forward batch."""
    out: dict[str, dict[str, Any]] = {}
    for e in runs.values():
        p = e.settings
        keys = [("source", e.source_role, states_key(bridge, e.source_role, p))]
        if p.kl_weight > 0:
            keys.append(("teacher", e.target_role, teacher_key(bridge, e.target_role, p)))
        for what, role, key in keys:
            sid = f"{e.dataset}-{config_hash(key)[:12]}"
            s = out.setdefault(
                sid, dict(what=what, key=key, role=role, runs=[], test_items=0, batch=1 << 30)
            )
            s["runs"].append(e.run_id)
            s["test_items"] = max(s["test_items"], p.eval_size if what == "source" else 0)
            s["batch"] = min(s["batch"], p.eval_batch_size)  # a forward pass's items
    return out


def states_params(states: dict[str, Any]) -> dict[str, Any]:
    """The params the cache job computes with: its key's, and the smallest forward batch."""
    keep = ("max_source_len", "max_prompt_len", "kl_positions", "model_dtype", *TEACHER_DEFINITIONS)
    return {
        **{k: v for k, v in states["key"].items() if k in keep},
        "eval_batch_size": states["batch"],
    }
