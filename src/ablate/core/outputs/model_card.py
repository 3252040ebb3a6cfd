"""The base model card (``results/model/base.json``): what "the base model" is for every later stage.

Every later stage reads the model through this card, so the revision stage 1 scored is the one
stage 3 finetunes. ``path`` is what :func:`ablate.core.models.modeling.load_causal_lm` is given (a
local directory or a hub id), ``revision`` the hub revision (a commit when the hub answered).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ablate.core.outputs import hub_revisions, io, provenance


class ModelCardError(ValueError):
    pass


def write(
    out: str | os.PathLike,
    *,
    source: str,
    model: str | os.PathLike,
    revision: str | None = None,
    tokenizer: str | os.PathLike | None = None,
    config_slice: Any = None,
    extra: dict[str, Any] | None = None,
    started: float | None = None,
    fingerprint: bool = True,
) -> dict[str, Any]:
    """Write the card. Local model directories are fingerprinted when ``fingerprint`` (small models)."""
    local = Path(model).exists()
    inputs = {"model": model} if local and fingerprint else {}
    card = {
        "source": source,
        "path": str(model),
        "id": None if local else str(model),
        "revision": revision,
        "tokenizer": str(tokenizer or model),
        "local": local,
        **(extra or {}),
        "provenance": provenance.collect(config_slice=config_slice, inputs=inputs, started=started),
    }
    io.write_json(out, card)
    return card


def read(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise ModelCardError(f"model card {p} does not exist (run the prepare_model rule)")
    try:
        card = io.load_json(p)
    except ValueError as exc:
        raise ModelCardError(f"model card {p} is not valid JSON: {exc}") from exc
    for key in ("path", "revision", "tokenizer"):
        if key not in card:
            raise ModelCardError(f"model card {p} lacks the key {key!r}")
    return card


def locate(card: dict[str, Any]) -> tuple[str, str | None]:
    """(path, revision) to load the card's model from on *this* machine: a downloaded hub
    snapshot is not shipped to a remote job (GBs), which fetches the pinned revision itself."""
    if Path(card["path"]).exists():
        return card["path"], None  # a directory: its files are the recorded revision
    if card.get("id") and card.get("source") == "pretrained":
        if card["path"] != card["id"]:
            print(
                f"{card['path']} (the snapshot prepare_model downloaded) is not on this machine: "
                f"loading {card['id']} at the pinned revision {card['revision']}",
                flush=True,
            )
        return card["id"], card["revision"]
    raise ModelCardError(
        f"the model directory {card['path']} named by the model card is not on this machine: "
        "a job on a remote executor gets it only as a declared input of its rule "
        "(rules/common.smk: base_model_inputs)"
    )


def check_revision(card: dict[str, Any], revision: str, lock: str | os.PathLike) -> None:
    """A hub model's card must record ``revision`` when that is a commit (the one the run id
    names, pinned in ``lock``): a card registered before the lock changed loads other weights."""
    pinned = hub_revisions.SHA.fullmatch(str(revision))
    if card.get("id") and pinned and str(card["revision"]).lower() != revision:
        raise ModelCardError(
            f"the model card of {card['id']} records revision {card['revision']} but the run id "
            f"names commit {revision} (pinned in {lock}): rerun the registration (`snakemake "
            "-f <the card>`), or delete the lock entry to resolve the branch again"
        )


def register_pretrained(
    out: str | os.PathLike,
    *,
    model: str,
    revision: str | None = None,
    download: bool = False,
    config_slice: Any = None,
    requested: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Card for a hub id or local directory; with the hub reachable, the revision becomes a sha.
    ``download``: the snapshot fetched now, before any GPU job. ``requested``: ``{"revision":
    ...}`` as the config wrote it, when ``revision`` is the commit it was pinned to."""
    started = time.time()
    extra: dict[str, Any] = {
        "requested_revision": (requested or {"revision": revision})["revision"]
    }
    if Path(model).exists():
        if not (Path(model) / "config.json").exists():
            raise ModelCardError(f"model.path {model} exists but has no config.json")
        extra["resolved"] = "local directory"
        # A multi-GB checkpoint is not re-hashed here; its manifest (if any) is checked on load.
    else:
        model, revision = _resolve_hub(model, revision, download, extra)
    return write(
        out,
        source="pretrained",
        model=model,
        revision=revision,
        config_slice=config_slice,
        extra=extra,
        started=started,
        fingerprint=False,
    )


def _resolve_hub(
    model: str, revision: str | None, download: bool, extra: dict[str, Any]
) -> tuple[str, str | None]:
    """(what later jobs load, its revision) of a hub id; ``extra`` gets how it was resolved."""
    if model.startswith((os.sep, ".", "~")) or model.count("/") > 1:
        raise ModelCardError(f"model.path {model} does not exist (and is not a hub id org/name)")
    if hub_revisions.offline():
        from huggingface_hub import constants, try_to_load_from_cache

        # Fail here, before any GPU job, not in the first job that loads the model.
        if not isinstance(try_to_load_from_cache(model, "config.json", revision=revision), str):
            raise ModelCardError(
                f"model.path {model!r} (revision {revision!r}) is not in the local Hugging Face "
                f"cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set: download it on a "
                "machine with network (`hf download`), or point model.path to a local directory."
            )
        extra["resolved"] = "offline: revision as configured (not resolved to a commit)"
    else:
        from huggingface_hub import model_info, snapshot_download

        try:
            info = model_info(model, revision=revision)
        except Exception as exc:  # network errors, 401/404: all say the same to the user
            raise ModelCardError(
                f"cannot resolve model.path {model!r} (revision {revision!r}) on the hub: {exc}. "
                "Offline? Set HF_HUB_OFFLINE=1 to record the revision as configured, or point "
                "model.path to a local directory."
            ) from exc
        revision = info.sha
        extra["resolved"] = "hub"
        if download:
            print(f"downloading {model}@{revision} into the Hugging Face cache", flush=True)
            # Later jobs load this directory: exactly the recorded revision, no network needed.
            extra["id"] = model
            model = snapshot_download(model, revision=revision)
    return model, revision
