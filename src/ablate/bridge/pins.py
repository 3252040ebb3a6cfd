"""What a run id pins of the bridge study's two models and its data, at parse time (no torch).

A hub model's or dataset's branch or tag is pinned to the commit it names, so a run id names
weights and data, not a branch that moves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.bridge.world import DATASET_KIND  # dataset name -> file stem and scorer kind
from ablate.core.config import sorted_tree
from ablate.core.outputs import hub_revisions

#: The two model roles (config keys bridge.source / bridge.target).
ROLES = ("source", "target")


def model_identity(m: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """What makes a model what it is: the embedded recipe (and its corpus) or the hub id+revision."""
    if m["source"] == "embedded":
        keep = ("source", "family", "arch", "pretrain")
        return sorted_tree({**{k: m.get(k) for k in keep}, "corpus": data_identity(data, None)})
    return sorted_tree({"source": m["source"], "path": m.get("path"), "revision": _revision(m)})


def data_identity(data: dict[str, Any], dataset: str | None) -> dict[str, Any]:
    """The data an entry trains and evaluates on (embedded: the whole world; hub: its dataset)."""
    if data["source"] == "embedded":
        return sorted_tree({k: data[k] for k in ("source", "seed", "embedded")})
    if dataset is None:  # a pretrained model's identity does not depend on the study's data
        return {"source": "hub"}
    return sorted_tree({"source": "hub", dataset: data[dataset]})


def _revision(m: dict[str, Any]) -> str:
    """A hub revision in one spelling: a commit sha in lower case, ``null`` as ``main``."""
    rev = m.get("revision") or "main"
    return rev.lower() if hub_revisions.SHA.fullmatch(rev.lower()) else rev


def is_hub_model(m: dict[str, Any]) -> bool:
    """A pretrained model named by a hub id (not a local directory: its files are its revision)."""
    path = str(m.get("path") or "")
    return (
        m["source"] == "pretrained"
        and not Path(path).expanduser().exists()
        and not path.startswith(("/", ".", "~"))
        and path.count("/") <= 1
    )


def pin_revisions(bridge: dict[str, Any], results: str | None) -> dict[str, Any]:
    """The bridge section with each hub branch or tag replaced by the commit it names."""
    out = dict(bridge)
    for role in ROLES:
        m = bridge[role]
        if is_hub_model(m):
            out[role] = {**m, "revision": hub_revisions.resolve(m["path"], _revision(m), results)}
    data = dict(bridge["data"])
    for name in DATASET_KIND if data["source"] == "hub" else ():
        spec = data.get(name)
        if spec is not None and not Path(spec["path"]).expanduser().is_dir():
            sha = hub_revisions.resolve(spec["path"], _revision(spec), results, "dataset")
            data[name] = {**spec, "revision": sha}
    return {**out, "data": data}
