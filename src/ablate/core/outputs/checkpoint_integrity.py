"""A checkpoint directory's integrity, the files' side of all checkpoint I/O: written whole, hash
manifest and marker, the check before loading, complete training checkpoints, setting aside.
(What a training run saves in them and loads back: :mod:`ablate.core.training.saving`.)

Invariants: a checkpoint is complete only if its hash manifest, written last, lists every file
with its size and sha256 and no file was added since; a directory this pipeline wrote (its
marker inside, or our ``summary.json`` beside it) never loads without its manifest, while a
foreign model directory loads as it is. Training checkpoints (``checkpoints/checkpoint-N``) are
complete-or-ignored: :data:`CHECKPOINT_MARKER` comes after the manifest, and one that fails its
manifest is set aside, never resumed from (:func:`ablate.core.training.resume.prepare_resume`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ablate.core.outputs import io
from ablate.upstream import hf

MANIFEST_NAME = "checkpoint_manifest.json"
#: Written into a final checkpoint before anything else: the directory is this pipeline's.
_WRITER_MARKER = "ablate_checkpoint.json"
CHECKPOINT_MARKER = "checkpoint_complete.json"  # written last into every training checkpoint
RUN_KEY_FILE = "run_key.json"  # identifies the run the intermediate checkpoints belong to
#: training checkpoints live in ``<out>/checkpoints`` beside the run's outputs (``final``, the
#: summary), where the Vast executor copies them from.
CHECKPOINTS_DIR = "checkpoints"
FORMAT_SAVE_PRETRAINED = "save_pretrained"
FORMAT_FALLBACK = "state_dict_fallback"
#: a training checkpoint of a sharded run: torch.distributed.checkpoint shards, no whole weights
FORMAT_SHARDED = "sharded"
SUMMARY_NAME = "summary.json"  # the training summary written beside ``final``
#: A training checkpoint failing its manifest is renamed ``corrupt-checkpoint-N``: the rotation
#: (``checkpoint-*``) never counts or deletes it.
_SET_ASIDE_PREFIX = "corrupt-"
# Not part of a checkpoint (the last is the mtime file Snakemake puts into a directory() output).
_UNHASHED = frozenset({MANIFEST_NAME, CHECKPOINT_MARKER, ".snakemake_timestamp"})


class CheckpointError(RuntimeError):
    pass


# ------------------------------------------------------------------------------------ integrity


def sha256_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _files(d: Path) -> list[Path]:
    return [p for p in sorted(d.rglob("*")) if p.is_file() and p.name not in _UNHASHED]


def hash_files(paths: list[Path]) -> list[str]:
    """sha256 of each file, several at once: hashlib releases the GIL, so the shards of a
    multi-GB checkpoint hash in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    if len(paths) <= 1:
        return [sha256_file(p) for p in paths]
    with ThreadPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1, 8)) as pool:
        return list(pool.map(sha256_file, paths))


def write_manifest(directory: str | os.PathLike, extra: dict[str, Any] | None = None) -> dict:
    """Hash every file under ``directory`` and write the manifest."""
    d = Path(directory)
    paths = _files(d)
    files = {
        str(p.relative_to(d)): {"bytes": p.stat().st_size, "sha256": digest}
        for p, digest in zip(paths, hash_files(paths), strict=True)
    }
    manifest = {"files": files, **(extra or {})}
    io.write_json(d / MANIFEST_NAME, manifest)
    return manifest


def read_manifest(directory: str | os.PathLike) -> dict:
    """The manifest of ``directory``: ``{"files": {relative path: {"bytes", "sha256"}}, ...}``;
    one cut off or altered raises :class:`CheckpointError`, as a file failing it does (so the
    checkpoint is set aside, not failed on every rerun)."""
    d = Path(directory)
    try:
        manifest = io.load_json(d / MANIFEST_NAME)
        files = manifest["files"]
        if not all(
            isinstance(m, dict) and isinstance(m["bytes"], int) and isinstance(m["sha256"], str)
            for m in files.values()
        ):
            raise TypeError("an entry without an integer bytes and a string sha256")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"checkpoint {d}: its {MANIFEST_NAME} is unreadable ({type(exc).__name__}: {exc}); "
            "cut off or altered"
        ) from exc
    return manifest


def verify_layout(directory: str | os.PathLike) -> dict:
    """:func:`verify` without reading the files' contents; returns the manifest."""
    d = Path(directory)
    if not (d / MANIFEST_NAME).exists():
        raise CheckpointError(f"{d} has no {MANIFEST_NAME}: the checkpoint was never completed")
    manifest = read_manifest(d)
    for rel, meta in manifest["files"].items():
        p = d / rel
        if not p.exists():
            raise CheckpointError(f"checkpoint {d}: file {rel} is missing")
        size = p.stat().st_size
        if size != meta["bytes"]:
            raise CheckpointError(
                f"checkpoint {d}: file {rel} has {size} bytes, manifest says {meta['bytes']} "
                "(truncated?)"
            )
    added = [r for r in (str(p.relative_to(d)) for p in _files(d)) if r not in manifest["files"]]
    if added:
        # a loader may read them (another weights shard, an adapter config): not the checkpoint
        raise CheckpointError(
            f"checkpoint {d}: file(s) {', '.join(added[:5])} are not in its manifest "
            "(added after the checkpoint was completed)"
        )
    return manifest


def _check_hashes(d: Path, manifest: dict) -> dict:
    rels = list(manifest["files"])
    for rel, digest in zip(rels, hash_files([d / r for r in rels]), strict=True):
        if digest != manifest["files"][rel]["sha256"]:
            raise CheckpointError(
                f"checkpoint {d}: file {rel} does not match its recorded sha256 (altered)"
            )
    return manifest


def verify(directory: str | os.PathLike) -> dict:
    """Raise :class:`CheckpointError` naming the first missing, truncated, altered or added file."""
    d = Path(directory)
    return _check_hashes(d, verify_layout(d))


class PendingVerify:
    """:func:`verify` with the hashes checked in a background thread while the caller loads the
    same files (one pass over the disk); :meth:`result` raises what :func:`verify` raises."""

    def __init__(self, directory: str | os.PathLike):
        import threading

        self.directory = Path(directory)
        self._manifest = verify_layout(self.directory)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="checkpoint-verify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            _check_hashes(self.directory, self._manifest)
        except BaseException as exc:  # re-raised in the caller's thread by result()
            self._error = exc

    def result(self) -> dict:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._manifest


def written_here(directory: str | os.PathLike) -> bool:
    """This pipeline wrote ``directory``: its marker inside, or our training summary beside it
    naming it (checkpoints from before the marker existed)."""
    d = Path(directory)
    if (d / _WRITER_MARKER).exists():
        return True
    summary = d.parent / SUMMARY_NAME
    if not summary.is_file():
        return False
    try:
        ckpt = io.load_json(summary).get("checkpoint")
    except (ValueError, AttributeError):
        return False
    return isinstance(ckpt, dict) and Path(str(ckpt.get("path", ""))).name == d.name


def check_before_load(directory: str | os.PathLike) -> dict | None:
    """What the loaders call: verify a checkpoint with a manifest, refuse one of ours without;
    None for a foreign model directory."""
    pending = start_check_before_load(directory)
    return pending.result() if pending is not None else None


def check_inputs_before_load(inputs: Iterable[str | os.PathLike]) -> None:
    """:func:`check_before_load` of each input folder: the run cache's key trusts a manifest
    after a size check, so a same-size corruption would otherwise be restored over."""
    for path in inputs:
        if Path(path).is_dir():
            check_before_load(path)


def start_check_before_load(directory: str | os.PathLike) -> PendingVerify | None:
    """:func:`check_before_load` with the hashing in the background: the caller must call
    ``result()`` before it uses what it loaded. None for a foreign model directory."""
    d = Path(directory)
    if (d / MANIFEST_NAME).exists() or written_here(d):
        return PendingVerify(d)
    return None


# ------------------------------------------------------------------------------------ writing

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def out_of_space(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it came from, is a full disk or quota: an ``OSError`` of that
    errno, or a library's error quoting its text (safetensors', torch.distributed.checkpoint's)."""
    texts = tuple(os.strerror(e) for e in _NO_SPACE)
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _NO_SPACE:
            return True
        if any(t in str(seen) for t in texts):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextlib.contextmanager
def naming_a_full_disk(what: str, where: str | os.PathLike) -> Iterator[None]:
    """Around writing ``what`` into ``where``: a full disk is one line naming it and the fix."""
    try:
        yield
    except Exception as exc:
        if not out_of_space(exc):
            raise
        d = Path(where)
        while not d.exists() and d != d.parent:
            d = d.parent
        usage = shutil.disk_usage(d)
        raise CheckpointError(
            f"{what} failed: no space left on the disk holding {where} ({usage.free / 1e9:.2f} "
            f"GB free of {usage.total / 1e9:.1f} GB); free space there or move the results to "
            "a larger disk, then rerun"
        ) from exc


def write_final(
    out_dir: str | os.PathLike, save: Callable[[Path], str], *, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``out_dir/final``: the marker and ``save(final.tmp)`` (returns the format), renamed
    over ``final``, then the manifest. A crash leaves the previous ``final`` whole, ``final.tmp``
    (never read), or a marked ``final`` without manifest, which :func:`check_before_load`
    refuses."""
    out = Path(out_dir)
    final, tmp = out / "final", out / "final.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    io.write_json(tmp / _WRITER_MARKER, {"written_by": "ablate", "kind": "final checkpoint"})
    fmt = save(tmp)
    if final.exists():
        old = out / "final.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    write_manifest(final, extra={"format": fmt, **(extra or {})})
    return {"path": str(final), "format": fmt, **(extra or {})}


def save_state_dict_fallback(model, out_dir: str | os.PathLike, tokenizer=None) -> None:
    """``model.safetensors`` (tied weights once), config.json and tokenizer, for when
    ``save_pretrained`` raises (the seed hit a conversion error there)."""
    from safetensors.torch import save_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(out)
    if getattr(model, "generation_config", None) is not None:
        with contextlib.suppress(Exception):  # optional for loading
            model.generation_config.save_pretrained(out)
    hf.save_tokenizer(tokenizer, out)


# ------------------------------------------------------------------------------------ training saves


def mark_complete(ckpt: str | os.PathLike, step: int, fmt: str | None) -> None:
    """A training checkpoint's last writes, after every process's: its manifest, then the marker."""
    write_manifest(ckpt, extra={"step": step, "format": fmt})
    io.write_json(Path(ckpt) / CHECKPOINT_MARKER, {"step": step, "format": fmt})


def step_of(ckpt: str | os.PathLike) -> int | None:
    """The step of a ``checkpoint-N`` folder (None: not one)."""
    n = Path(ckpt).name.split("-")[-1]
    return int(n) if Path(ckpt).name.startswith("checkpoint-") and n.isdigit() else None


def complete_checkpoints(ckpt_dir: str | os.PathLike) -> list[Path]:
    """training checkpoints carrying the completion marker, oldest first."""
    found = [
        d
        for d in Path(ckpt_dir).glob("checkpoint-*")  # none where ckpt_dir is no folder
        if d.is_dir() and (d / CHECKPOINT_MARKER).exists() and step_of(d) is not None
    ]
    return sorted(found, key=step_of)


def newest_complete(ckpt_dir: str | os.PathLike) -> Path | None:
    done = complete_checkpoints(ckpt_dir)
    return done[-1] if done else None


def say(msg: str) -> None:
    """One ``[resume]`` line on stderr: what a rerun does with the checkpoints it found."""
    print(f"[resume] {msg}", file=sys.stderr, flush=True)


def set_aside(ckpt: Path, into: Path | None = None) -> Path:
    """Rename a failed checkpoint aside (in its folder or ``into``) for a look; its new path."""
    into = ckpt.parent if into is None else into
    aside = into / (_SET_ASIDE_PREFIX + ckpt.name)
    n = 1
    while aside.exists():
        n += 1
        aside = into / f"{_SET_ASIDE_PREFIX}{n}-{ckpt.name}"
    os.replace(ckpt, aside)
    return aside


#: In a run's checkpoints folder: the checkpoint a signal after the training kept only so that a
#: rerun writes the outputs again (``saving.end_of_run``), by its name and its manifest's digest.
_KEPT_FOR_OUTPUTS = "kept_for_outputs.json"


def _manifest_digest(ckpt: Path) -> str | None:
    try:
        return hashlib.sha256((ckpt / MANIFEST_NAME).read_bytes()).hexdigest()
    except OSError:
        return None


def keep_for_outputs(ckpt: Path) -> None:
    """Note ``ckpt`` (complete) as the checkpoint kept only for the outputs: the run's next end
    that writes them removes it (:func:`remove_at_end`)."""
    io.write_json(
        ckpt.parent / _KEPT_FOR_OUTPUTS, {"checkpoint": ckpt.name, "digest": _manifest_digest(ckpt)}
    )


def remove_at_end(ckpt_dir: Path, *, keep: bool) -> None:
    """A run's checkpoints once it wrote its outputs with no signal since: removed, or under
    ``keep`` only the one :func:`keep_for_outputs` noted, unless another was saved under its
    name since (its manifest differs); the note goes either way."""
    if not keep:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        return
    note = ckpt_dir / _KEPT_FOR_OUTPUTS
    try:
        kept = io.load_json(note)
        ckpt = ckpt_dir / kept["checkpoint"]
        own = ckpt.name == kept["checkpoint"] and step_of(ckpt) is not None  # in this folder
        if own and _manifest_digest(ckpt) == kept["digest"]:
            shutil.rmtree(ckpt)
    except (OSError, ValueError, TypeError, KeyError):
        pass  # no note, or one that names no checkpoint of this folder: nothing noted to remove
    note.unlink(missing_ok=True)
