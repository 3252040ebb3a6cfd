"""Which training checkpoint a rerun resumes from: only one of the same run, by content, whose
files match their manifest (:mod:`ablate.core.outputs.checkpoint_integrity`).

"The same run" (:func:`resume_identity`) includes the content of its inputs and the code it
imported: a changed base model or data file at the same path is another run. Any difference: the
folder is removed and the run starts fresh, saying in one line what changed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from ablate.core.outputs import checkpoint_integrity, io, provenance


def loaded_code() -> dict[str, str]:
    """sha256 of the source of every ``ablate`` module this process has imported: an edit of a
    module the run never imports must not throw hours of training away."""
    out = {}
    for name, module in sorted(list(sys.modules.items())):
        path = getattr(module, "__file__", None) or ""
        if (name == "ablate" or name.startswith("ablate.")) and path.endswith(".py"):
            out[name] = checkpoint_integrity.sha256_file(path)
    return out


def resume_identity(
    run_key: dict[str, Any], inputs: dict[str, str | os.PathLike] | None = None
) -> dict[str, Any]:
    """What a checkpoint must have been trained on to be resumed: the run key, the content of
    each input file or folder, the code that ran and the installed packages."""
    return _identity(run_key, inputs or {}, loaded_code())


def _identity(config: Any, inputs: dict[str, Any], code: dict[str, str]) -> dict[str, Any]:
    """:func:`resume_identity` of given module hashes, as JSON reads it."""
    identity = {
        "config": config,
        "inputs": {
            label: {"path": str(path), "content": provenance.fingerprint_path(path)}
            for label, path in sorted(inputs.items())
            if Path(path).exists()
        },
        "code": code,
        "packages": provenance.runtime_packages(),
    }
    return json.loads(json.dumps(identity, default=str))


def _why_other(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """Why a checkpoints folder of identity ``old`` is not this run's ("" when it is)."""
    if not isinstance(old, dict) or set(old) != set(new) or not isinstance(old["code"], dict):
        return "were written by another version of this pipeline (no comparable run key)"
    reasons = []
    old_in, new_in = old["inputs"], new["inputs"]
    for label in sorted(set(old_in) | set(new_in)):
        o, n = old_in.get(label), new_in.get(label)
        if o is None or n is None or o["content"] != n["content"]:
            reasons.append(f"were trained on another {label} ({(n or o)['path']} changed)")
    changed = provenance.changed_keys(old["config"], new["config"])
    if changed:
        reasons.append(f"belong to another configuration ({'; '.join(changed[:3])})")
    # modules both runs imported (a module only one imported is imported by one that changed,
    # or by another code path of the same code)
    old_code, new_code = old["code"], new["code"]
    changed = [m for m in sorted(set(old_code) & set(new_code)) if old_code[m] != new_code[m]]
    if changed:
        reasons.append(f"were trained by other code ({', '.join(changed[:3])} changed)")
    changed = provenance.changed_keys(old["packages"], new["packages"])
    if changed:
        reasons.append(f"were trained with other packages ({'; '.join(changed[:3])})")
    return "; ".join(reasons)


def _remove_incomplete(ckpt_dir: Path) -> None:
    for d in ckpt_dir.glob("checkpoint-*"):
        if d.is_dir() and not (d / checkpoint_integrity.CHECKPOINT_MARKER).exists():
            checkpoint_integrity.say(f"removing incomplete {d.name} (killed while saving)")
            shutil.rmtree(d)


def prepare_resume(
    ckpt_dir: str | os.PathLike,
    run_key: dict[str, Any],
    inputs: dict[str, str | os.PathLike] | None = None,
) -> Path | None:
    """The newest complete checkpoint of the same run whose files match its manifest, or None;
    clears what cannot be resumed. Process 0 alone calls it (:func:`resume_point`)."""
    ckpt_dir = Path(ckpt_dir)
    key_file = ckpt_dir / checkpoint_integrity.RUN_KEY_FILE
    identity = resume_identity(run_key, inputs)
    if ckpt_dir.is_dir():
        try:
            old = io.load_json(key_file) if key_file.exists() else None
            why = _why_other(old, identity)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # cut off or altered: whose checkpoints these are is unknown, so none is resumed
            aside = checkpoint_integrity.set_aside(ckpt_dir)
            checkpoint_integrity.say(
                f"{key_file} is unreadable ({type(exc).__name__}: {exc}): {ckpt_dir.name} set "
                f"aside as {aside.name}, starting fresh"
            )
        else:
            if why:
                checkpoint_integrity.say(f"{ckpt_dir} {why}: starting fresh")
                shutil.rmtree(ckpt_dir)
            else:
                _remove_incomplete(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    io.write_json(key_file, identity)
    for ckpt in reversed(checkpoint_integrity.complete_checkpoints(ckpt_dir)):
        try:
            checkpoint_integrity.verify(ckpt)
        except checkpoint_integrity.CheckpointError as exc:
            aside = checkpoint_integrity.set_aside(ckpt)
            checkpoint_integrity.say(f"{ckpt.name} set aside as {aside.name}: {exc}")
            continue
        return ckpt
    return None


def resume_point(
    ckpt_dir: str | os.PathLike,
    run_key: dict[str, Any],
    inputs: dict[str, str | os.PathLike] | None = None,
) -> Path | None:
    """:func:`prepare_resume` for every process of a run: process 0 clears and checks the
    checkpoints before the others take the newest complete one."""
    # torch: not for `ablate status`, which reads rerun_note
    from ablate.core.execution import parallel

    if parallel.rank() != 0:
        parallel.barrier()
        return checkpoint_integrity.newest_complete(ckpt_dir)
    found = prepare_resume(ckpt_dir, run_key, inputs)
    parallel.barrier()
    return found


def _module_file(name: str) -> Path | None:
    """The source file of an ``ablate`` module by its name, found without importing it."""
    import ablate

    rel = Path(*name.split(".")[1:])
    for p in (
        Path(ablate.__file__).parent / f"{rel}.py",
        Path(ablate.__file__).parent / rel / "__init__.py",
    ):
        if p.is_file():
            return p
    return None


def rerun_note(ckpt_dir: str | os.PathLike, params: dict[str, Any] | None = None) -> str | None:
    """What the next run of a training job does with its checkpoints (``ablate status``), or
    None without a complete checkpoint; one that fails its manifest is found only when the job
    runs (a full read)."""
    ckpt_dir = Path(ckpt_dir)
    done = checkpoint_integrity.complete_checkpoints(ckpt_dir) if ckpt_dir.is_dir() else []
    if not done:
        return None
    try:
        old = io.load_json(ckpt_dir / checkpoint_integrity.RUN_KEY_FILE)
        code, inputs, config = old["code"], old["inputs"], old["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"starts afresh: {checkpoint_integrity.RUN_KEY_FILE} of {ckpt_dir} is missing or unreadable"
    recorded = config.get("params") if isinstance(config.get("params"), dict) else {}
    # the params the config gives now, of those its run key holds (a run adds resolved ones)
    given = {k: v for k, v in (params or {}).items() if k in recorded}
    now = _identity(
        {**config, **({"params": {**recorded, **given}} if recorded else {})},
        {label: v["path"] for label, v in inputs.items()},
        {name: checkpoint_integrity.sha256_file(f) for name in code if (f := _module_file(name))},
    )
    why = _why_other(old, now)
    if why:
        return f"starts afresh: its checkpoints {why}"
    return f"resumes from checkpoint-{checkpoint_integrity.step_of(done[-1])}"
