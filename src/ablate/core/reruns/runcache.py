"""The run cache: a finished job's outputs stored under a key of everything that determines them,
restored instead of recomputed when a job with the same key runs again (config key `run_cache`).

The key, the entry layout, what a restore checks and why not Snakemake's own ``cache:``:
docs/design.md, "Run cache". Hardware is not in the key: a result made on another machine is
reused (its provenance names that machine). No torch: a restored job never imports it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ablate.core.jobs import RESTORED_LINE
from ablate.core.outputs import io
from ablate.core.outputs.provenance import canonical_json, fingerprint_path, runtime_packages
from ablate.core.outputs.records import result_content

FORMAT = 4  # raise when the key or the entry layout changes: old entries are then never matched
MANIFEST = "manifest.json"
OUTPUTS = "outputs"
REFUSED = "refused"
RESTORED_SUFFIX = ".restored.json"  # <first output><suffix>: the restore marker of a job
#: written by Snakemake into directory outputs after the job: not the job's content
_SKIPPED = frozenset({".snakemake_timestamp"})


def log(msg: str) -> None:
    print(f"[run cache] {msg}", flush=True)


#: The files that count as code: the modules, and the data files the package ships (the config
#: schemas, whose defaults fill a job's slice; the original protocol's task YAMLs, its prompts).
CODE_FILES = ("*.py", "*.yaml", "*.json", "*.jsonl")


#: path -> (mtime_ns, size, sha256) of each code file hashed in this process (the planner keys
#: every job of a run: about 1 s a job on 2 busy cores)
_CODE_DIGESTS: dict[Path, tuple[int, int, str]] = {}


def code_files(scripts: str | os.PathLike | None = None) -> dict[str, str]:
    """``ablate/<name>`` or ``scripts/<name>`` -> sha256 of each :data:`CODE_FILES` file of the
    package and the scripts folder (a manifest lists them, so a miss can name the one changed)."""
    import ablate

    out = {}
    for label, root in (("ablate", Path(ablate.__file__).parent), ("scripts", scripts)):
        if root is None:
            continue
        files = {x for pattern in CODE_FILES for x in Path(root).rglob(pattern) if x.is_file()}
        for p in sorted(x for x in files if "__pycache__" not in x.parts):
            st = p.stat()
            kept = _CODE_DIGESTS.get(p)
            if kept is None or kept[:2] != (st.st_mtime_ns, st.st_size):
                kept = (st.st_mtime_ns, st.st_size, hashlib.sha256(p.read_bytes()).hexdigest())
                _CODE_DIGESTS[p] = kept
            out[f"{label}/{p.relative_to(root)}"] = kept[2]
    return out


def code_hash(scripts: str | os.PathLike | None = None) -> str:
    """sha256 of :func:`code_files` (a docstring's edit too: the key errs towards running)."""
    return hashlib.sha256(canonical_json(code_files(scripts)).encode()).hexdigest()


def job_spec(job: Any) -> dict[str, Any]:
    """What of a job its key covers besides code and packages. ``job``: a script job's
    ``snakemake`` object or :func:`rule_job` (the planner): one shape, so both build the same key.
    An experiment's rule is keyed by the base's rule it copies: it restores what that computed."""
    from ablate.core.trees.experiments import base_rule

    return {
        "rule": base_rule(job.rule, getattr(job, "config", None)),
        "wildcards": dict(job.wildcards.items()),
        "params": dict(job.params.items()),
        "inputs": [str(p) for p in job.input],
    }


def rule_job(rule: Any, wildcards: dict[str, str]) -> Any:
    """The job of a Snakemake rule for these wildcards as its script sees it (rules/plan.smk)."""
    from types import SimpleNamespace

    from snakemake.iocontainers import Wildcards

    wc = Wildcards(fromdict=wildcards)
    inputs = rule.expand_input(wc)[0]
    # job=None: no param of these rules reads threads or resources (those would need a job)
    params = rule.expand_params(wc, inputs, rule.expand_output(wc)[0], None)[0]
    config = rule.module_globals.get("config") if hasattr(rule, "module_globals") else None
    return SimpleNamespace(rule=rule.name, wildcards=wc, params=params, input=inputs, config=config)


def job_specs(get_rule: Callable[[str], Any], jobs: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Job name -> :func:`job_spec` of each core Job of a parsed workflow (rule plan_estimate); a
    job whose rule Snakemake cannot expand gets ``{"error": why}``: a forecast never stops a run."""
    specs = {}
    for j in jobs:
        try:
            specs[j.name] = job_spec(rule_job(get_rule(j.rule), j.wildcards))
        except Exception as exc:  # noqa: BLE001 (Snakemake's and the rules' own errors)
            specs[j.name] = {"error": f"{type(exc).__name__}: {exc}"}
    return specs


def key_parts(
    rule: str,
    wildcards: dict[str, Any],
    params: Any,
    inputs: Iterable[str],
    scripts: str | os.PathLike | None = None,
    code: str | None = None,
    exact: bool = False,
) -> dict[str, Any]:
    """Everything the key covers. ``code``: :func:`code_hash` of ``scripts`` where the caller took
    it already (the planner); ``exact``: the input files by their bytes, and their paths (a table
    names the files its rows came from)."""
    inputs = [str(p) for p in inputs]
    return {
        "format": FORMAT,
        "rule": rule,
        "wildcards": dict(sorted(wildcards.items())),
        "params": params,
        "inputs": [input_fingerprint(path, exact) for path in inputs],
        **({"input_paths": inputs} if exact else {}),
        "code": code if code is not None else code_hash(scripts),
        "packages": runtime_packages(),
    }


def key_of(parts: dict[str, Any]) -> str:
    """sha256 of ``parts`` as JSON, taken of them as a manifest stores them and reads them back
    (a number key a string, a tuple a list): :func:`verify` recomputes it from the stored parts."""
    stored = json.loads(canonical_json(parts))
    return hashlib.sha256(canonical_json(stored).encode()).hexdigest()


def input_fingerprint(path: str | os.PathLike, exact: bool = False) -> str:
    """sha256 of what a declared input holds as a result: a JSON file by its result content (with
    ``exact`` by its bytes), a checkpoint folder by its hash manifest, any other file by its bytes,
    a folder by its files'. A folder's ``history/`` is of the runs, not of the result."""
    from ablate.core.outputs import checkpoint_integrity

    p = Path(path)
    if p.is_dir() and (p / checkpoint_integrity.MANIFEST_NAME).is_file():
        return fingerprint_path(p)
    if p.is_file():
        files = {"": p}
    else:
        found = sorted(x for x in p.rglob("*") if x.is_file() and x.name not in _SKIPPED)
        files = {
            str(x.relative_to(p)): x for x in found if io.HISTORY_DIR not in x.relative_to(p).parts
        }
    digests = {}
    for rel, f in files.items():
        if f.suffix == ".json" and not exact and (digest := _json_digest(f)) is not None:
            digests[rel] = digest
    rest = {rel: f for rel, f in files.items() if rel not in digests}
    digests.update(zip(rest, checkpoint_integrity.hash_files(list(rest.values())), strict=True))
    if p.is_file():
        return digests[""]
    h = hashlib.sha256()
    for rel in sorted(digests):
        h.update(rel.encode())
        h.update(digests[rel].encode())
    return h.hexdigest()


def _json_digest(path: Path) -> str | None:
    """sha256 of a JSON file's result content; None when it is no JSON (hashed by its bytes)."""
    try:
        record = io.load_json(path)
    except (UnicodeDecodeError, ValueError):
        return None
    return hashlib.sha256(b"json\0" + canonical_json(result_content(record)).encode()).hexdigest()


def _output_digests(paths: list[Path]) -> dict[str, str]:
    """``<i>`` (a file) or ``<i>/<relative path>`` -> sha256 of each file of the i-th path; a
    folder's files are hashed several at once (a multi-GB checkpoint's shards)."""
    from ablate.core.outputs.checkpoint_integrity import hash_files

    out = {}
    for i, root in enumerate(paths):
        if root.is_file():
            files = {str(i): root}
        else:
            found = sorted(p for p in root.rglob("*") if p.is_file() and p.name not in _SKIPPED)
            files = {f"{i}/{p.relative_to(root)}": p for p in found}
        out.update(zip(files, hash_files(list(files.values())), strict=True))
    return out


def seal_of(manifest: dict[str, Any]) -> str:
    """sha256 of a manifest as it reads back, its ``seal`` left out: what binds an entry's key and
    parts to its files' hashes (another entry's files under this key's parts are refused)."""
    body = {k: v for k, v in manifest.items() if k != "seal"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def verify(entry: Path) -> str | None:
    """None when the entry is the one its sealed manifest describes, filed under its own key (the
    manifest's ``key`` and the key of its ``parts``, recomputed); else what is wrong."""
    try:
        manifest = io.load_json(entry / MANIFEST)
        listed = manifest["files"]
    except (OSError, ValueError, KeyError) as exc:
        return f"no readable manifest ({type(exc).__name__})"
    if manifest.get("key") != entry.name:  # copied or renamed: another job's outputs
        return f"its manifest is of another key ({manifest.get('key')}): filed under the wrong key"
    try:
        own = key_of(manifest["parts"])
    except (KeyError, TypeError, ValueError) as exc:
        return f"its manifest has no readable key parts ({type(exc).__name__})"
    if own != entry.name:  # its key field edited: another job's outputs under this key
        return f"its parts are of another key ({own}): filed under the wrong key"
    if manifest.get("seal") != seal_of(manifest):  # key and parts edited onto another's files
        return "its manifest is not the one stored with its files (edited since, or another's)"
    n = len(manifest.get("outputs", [])) + len(manifest.get("side_outputs", {}))
    found = _output_digests([entry / OUTPUTS / str(i) for i in range(n)])
    for rel in sorted(set(listed) | set(found)):
        if rel not in found:
            return f"{rel} is missing"
        if rel not in listed:
            return f"{rel} is not in the manifest"
        if found[rel] != listed[rel]:
            return f"{rel} does not match its sha256 in the manifest"
    return None


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(
            src, dst, ignore=shutil.ignore_patterns(*_SKIPPED), copy_function=shutil.copy
        )
    else:  # not copy2: a restored file is new (an old mtime would make Snakemake rerun what reads it)
        shutil.copy(src, dst)


def _remove(paths: list[Path]) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def _refuse(cache: Path, key: str, why: str) -> None:
    """Move a bad entry out of the way (kept for inspection under refused/), never to be used."""
    entry = cache / key
    dest = cache / REFUSED / f"{key}-{uuid.uuid4().hex[:8]}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(entry, dest)
    except OSError:  # another job moved it first, or the cache is read-only: it is not used
        dest = "(left in place)"
    log(f"refused entry {key}: {why}; moved to {dest}; the job runs")


def store(
    cache: Path,
    parts: dict[str, Any],
    outputs: list[Path],
    side: Sequence[Path] = (),
    code: dict[str, str] | None = None,
) -> Path:
    """Copy a finished job's outputs into the cache under the key of ``parts``, appearing at once
    (a rename), so a reader never sees half an entry. ``side``: what else the job wrote that a user
    reads, kept where it exists (``side_outputs`` maps its position in ``side`` to its output)."""
    key = key_of(parts)
    entry = cache / key
    tmp = cache / f".tmp-{uuid.uuid4().hex}"
    kept = {str(j): p for j, p in enumerate(side) if p.exists()}
    stored = [*outputs, *kept.values()]
    try:
        for i, p in enumerate(stored):
            _copy(p, tmp / OUTPUTS / str(i))
        manifest = {
            "key": key,
            "parts": parts,
            "outputs": [str(p) for p in outputs],
            "side_outputs": {j: len(outputs) + k for k, j in enumerate(kept)},
            "files": _output_digests([tmp / OUTPUTS / str(i) for i in range(len(stored))]),
            # the run id of the first JSON record among the outputs: the run that made them
            "run_id": next(
                (r for p in outputs if p.suffix == ".json" and (r := io.file_run_id(p))), None
            ),
            "stored_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": os.uname().nodename,
            "code_files": code,
        }
        manifest = json.loads(json.dumps(manifest, default=str))  # sealed as it reads back
        manifest["seal"] = seal_of(manifest)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    except BaseException:  # a full disk half way: no half entry left to fill it further
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if entry.exists() and (why := verify(entry)):  # a bad entry: this result takes its place
        _refuse(cache, key, why)
    try:
        os.replace(tmp, entry)
    except OSError:  # a concurrent store of the same key got there first: one copy is enough
        shutil.rmtree(tmp)
        if verify(entry) is not None:
            raise
        return entry
    log(f"stored {len(outputs)} output(s) as entry {key}")
    return entry


def marker_path(outputs: list[Path]) -> Path:
    """Where a restored job says so: beside its first output (one marker per job)."""
    return outputs[0].with_name(outputs[0].name + RESTORED_SUFFIX)


def restore(
    cache: Path,
    parts: dict[str, Any],
    outputs: list[Path],
    where: str | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    side: Sequence[Path] = (),
) -> dict | None:
    """Put the entry of ``parts`` in place of ``outputs`` once it and the ``inputs`` check out (an
    input the job would refuse raises its error); the restore marker, or None: the job runs. Each
    ``side`` output is the entry's, or removed: never of the run the restore replaces."""
    key = key_of(parts)
    entry = cache / key
    if not entry.exists():
        return None
    if why := verify(entry):
        _refuse(cache, key, why)
        return None
    from ablate.core.outputs.checkpoint_integrity import check_inputs_before_load

    check_inputs_before_load(inputs)
    manifest = io.load_json(entry / MANIFEST)
    _remove([*outputs, *side])
    for i, p in enumerate(outputs):
        _copy(entry / OUTPUTS / str(i), p)
        if p.suffix == ".json":  # a restored record is kept in history/ as a written one is
            io.keep_in_history(p)
    for j, p in enumerate(side):
        if (stored := manifest.get("side_outputs", {}).get(str(j))) is not None:
            _copy(entry / OUTPUTS / str(stored), p)
    # the entry's last use, for `ablate cache --max-size` (a read-only cache: not recorded)
    with contextlib.suppress(OSError):
        os.utime(entry / MANIFEST)
    marker = {
        "restored": True,
        "from_run_id": manifest.get("run_id"),
        "cache_entry": where or str(entry),
        "key": manifest["key"],
        "stored_at": manifest.get("stored_at"),
        "stored_on": manifest.get("host"),
        "restored_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "outputs": [str(p) for p in outputs],
    }
    marker_path(outputs).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
    log(f"restored entry {key} (run {marker['from_run_id']}) instead of running the job")
    return marker


def holds(cache: str | os.PathLike | dict | None, parts: dict[str, Any]) -> bool:
    """Whether the cache (a folder or a storage plugin's location) has an entry for ``parts``."""
    if not cache:
        return False
    if isinstance(cache, dict):
        from ablate.core.reruns.runcache_storage import PluginEntries

        with tempfile.TemporaryDirectory() as tmp:
            return PluginEntries(cache, Path(tmp)).exists(key_of(parts))
    return (Path(cache) / key_of(parts) / MANIFEST).is_file()


class JobCache:
    """The run cache of one Snakemake script job: ``restored()`` at its start, ``store()`` at its
    end. The key is taken at the start, so a library edit during a long job does not relabel its
    result. A cache that fails (unreadable, full, a plugin's error) costs a run, never the job:
    Snakemake would delete the outputs of a failed job."""

    def __init__(
        self,
        smk: Any,
        side_outputs: Sequence[str | os.PathLike] = (),
        work: Sequence[str | os.PathLike] = (),
        exact: bool = False,
    ):
        self.outputs = [Path(p) for p in smk.output]
        self.side = [Path(p) for p in side_outputs]  # see store()
        self.work = [Path(p) for p in work]  # see restored()
        self.started = time.time()
        self.inputs = [str(p) for p in smk.input]
        self.where = smk.config.get("run_cache") or None
        self.parts = None
        self.code: dict[str, str] | None = None  # code_files, for the manifest and a miss's line
        self.marker: dict | None = None
        self.stored_key: str | None = None
        self.missed: str | None = None  # why it missed the nearest entry of this job, if any
        self.exact = exact
        if self.where is not None:
            self.parts = key_parts(**job_spec(smk), scripts=smk.scriptdir, exact=exact)
            self.code = code_files(smk.scriptdir)

    def restored(self) -> bool:
        """Whether the outputs were restored (the job then has nothing to do); its ``work`` (a
        training's checkpoints) is then set aside, so no later run of the job resumes it."""
        # a marker of an earlier restore would be false once the job runs
        marker_path(self.outputs).unlink(missing_ok=True)
        if self.where is None:
            return False
        from ablate.core.outputs.checkpoint_integrity import CheckpointError

        try:
            if isinstance(self.where, dict):
                self.marker = self._restored_from_plugin()
            else:
                self.marker = restore(
                    Path(self.where), self.parts, self.outputs, None, self.inputs, self.side
                )
            if self.marker is not None:
                self._set_work_aside()
            else:
                self._say_why_missed()
            return self.marker is not None
        except CheckpointError:  # an input the job would refuse: the job's own error
            raise
        except Exception as exc:  # noqa: BLE001 (a plugin raises its own types)
            _remove([*self.outputs, *self.side])
            log(f"not restored ({type(exc).__name__}: {exc}); the job runs")
            return False

    def _say_why_missed(self) -> None:
        """On a miss where the cache holds an entry of this job: one line naming what differs
        (:func:`ablate.core.reruns.runcache_miss.nearest_difference`). A folder cache only (a
        storage plugin's entries are not listed); never costs the job."""
        if isinstance(self.where, dict):
            return
        from ablate.core.reruns.runcache_miss import nearest_difference

        try:
            manifests = Path(self.where).glob(f"*/{MANIFEST}")
            line = nearest_difference(manifests, self.parts, self.inputs, self.code or {})
        except OSError:
            return
        if line:
            self.missed = line
            log(line)

    def _set_work_aside(self) -> None:
        """Each ``work`` folder there is, renamed out of the way (as a checkpoints folder of
        unknown run is: :func:`ablate.core.outputs.checkpoint_integrity.set_aside`)."""
        from ablate.core.outputs.checkpoint_integrity import set_aside

        for p in self.work:
            if p.exists():
                aside = set_aside(p)
                log(
                    f"set aside {p} as {aside.name}: a run's working files, not the restored "
                    "outputs' (never resumed; delete it to free the space)"
                )

    def store(self) -> None:
        """Store the finished job's outputs; a side output this job did not write is another
        run's: removed, not stored as this one's."""
        for p in self.side:
            if p.exists() and max(q.stat().st_mtime for q in [p, *p.rglob("*")]) < self.started:
                log(f"removed {p}: written by an earlier run, not by this job")
                _remove([p])
        if self.where is None:
            return
        if changed := self._changed_input():
            log(
                f"not stored: {changed} changed while the job ran (its key is of the bytes "
                "before); the job's outputs stand"
            )
            return
        try:
            if isinstance(self.where, dict):
                self._store_to_plugin()
            else:
                Path(self.where).mkdir(parents=True, exist_ok=True)
                store(Path(self.where), self.parts, self.outputs, self.side, self.code)
            self.stored_key = key_of(self.parts)
        except Exception as exc:  # noqa: BLE001 (a plugin raises its own types)
            log(f"not stored ({type(exc).__name__}: {exc}); the job's outputs stand")

    def _changed_input(self) -> str | None:
        """The first declared input file whose fingerprint is no longer the key's (the job may have
        read its new bytes); folders are not read again (a checkpoint's loader checks its files)."""
        for path, before in zip(self.inputs, self.parts["inputs"], strict=True):
            if Path(path).is_file() and input_fingerprint(path, self.exact) != before:
                return path
        return None

    def restored_line(self) -> str:
        """A restored job's ``[job]`` line: its key, and which run stored it, when and where."""
        m = self.marker or {}
        run = f"run {m['from_run_id']}, " if m.get("from_run_id") else ""
        return (
            f"{RESTORED_LINE} (key {str(m.get('key'))[:12]}: {run}stored "
            f"{m.get('stored_at') or '?'} on {m.get('stored_on') or '?'})"
        )

    def _restored_from_plugin(self) -> dict | None:
        from ablate.core.reruns.runcache_storage import PluginEntries

        key = key_of(self.parts)
        with tempfile.TemporaryDirectory() as tmp:
            entries = PluginEntries(self.where, Path(tmp))
            local = entries.fetch(key)
            if local is None:
                return None
            where = entries.where(key)
            return restore(local, self.parts, self.outputs, where, self.inputs, self.side)

    def _store_to_plugin(self) -> None:
        from ablate.core.reruns.runcache_storage import PluginEntries

        with tempfile.TemporaryDirectory() as tmp:
            entries = PluginEntries(self.where, Path(tmp))
            local = Path(tmp) / "entries"
            local.mkdir()
            store(local, self.parts, self.outputs, self.side, self.code)
            entries.put(local, key_of(self.parts))
            log(f"uploaded as {entries.where(key_of(self.parts))}")
