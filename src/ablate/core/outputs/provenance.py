"""The provenance block every stage output carries: code, config, data, packages, hardware, time.

Never records command lines, and of the environment only the variables that change float results
(:data:`NUMERICS_ENV_PREFIXES`, :data:`NUMERICS_ENV_NAMES`), so secrets cannot leak into outputs.
The git state is the workflow's checkout (``$ABLATE_WORKFLOW_DIR``, else the current directory),
not the library's install folder: a non-editable install has no git state, and an edited rule or
config must show as ``dirty``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from ablate.core.execution import gpu_watch, warm

_PACKAGES = (
    "ablate",
    "torch",
    "transformers",
    "lm_eval",
    "datasets",
    "accelerate",
    "snakemake",
    "mistral_common",
    "pandas",
    "pyarrow",
    "numpy",
)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config_slice: Any) -> str:
    """Stable hash of a config sub-tree (key order does not matter)."""
    return hashlib.sha256(canonical_json(config_slice).encode()).hexdigest()[:16]


def fingerprint_path(path: str | os.PathLike) -> str:
    """sha256 of a file, or of the sorted (relative name, sha256) list of a directory's files,
    taken from a checkpoint's manifest after a size check (the loaders verify the hashes;
    rehashing cost each 3.4 B job a read of ~7 GB)."""
    from ablate.core.outputs import checkpoint_integrity

    p = Path(path)
    if p.is_file():
        return checkpoint_integrity.sha256_file(p)
    h = hashlib.sha256()
    if (p / checkpoint_integrity.MANIFEST_NAME).is_file():
        listed = checkpoint_integrity.verify_layout(p)["files"]
        digests = {rel: meta["sha256"] for rel, meta in listed.items()}
    else:
        files = sorted(x for x in p.rglob("*") if x.is_file())
        digests = dict(
            zip(
                (str(f.relative_to(p)) for f in files),
                checkpoint_integrity.hash_files(files),
                strict=True,
            )
        )
    for rel in sorted(digests):
        h.update(rel.encode())
        h.update(digests[rel].encode())
    return h.hexdigest()


# Set by rules/common.smk to the Snakefile's folder; every job inherits it.
WORKFLOW_DIR_ENV = "ABLATE_WORKFLOW_DIR"


def git_state(cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """Commit and dirty flag (tracked files) of the checkout at ``cwd``; None where unknown."""

    def run(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": run("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def _package_versions() -> dict[str, str | None]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)  # "lm_eval" finds lm-eval: names are normalized
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def installed_key() -> str:
    """sha256 of every ``*.dist-info`` and ``*.egg-info`` folder's name on ``sys.path`` with its
    metadata file's size and mtime (an editable install rewrites it when its requirements
    change): a stat per distribution."""
    h = hashlib.sha256()
    for folder in dict.fromkeys(p or "." for p in sys.path):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                for meta in ("METADATA", "PKG-INFO"):
                    try:
                        st = os.stat(os.path.join(folder, name, meta))
                    except OSError:
                        continue
                    h.update(f"{folder}\0{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
                    break
    return h.hexdigest()


@functools.cache
def runtime_packages(root: str = "ablate") -> dict[str, str | None]:
    """Name -> version of ``root`` and of every distribution its requirements need, transitively,
    its extras left out (they change no result's bytes): what the run cache's key covers
    (docs/design.md). A required distribution not installed is None; without ``root`` installed,
    every installed distribution. Kept in the user's cache under :func:`installed_key` (reading
    the metadata took 0.6 s of CPU per job)."""
    from ablate.core.outputs.io import load_json, user_cache_dir, write_text

    # v2: extras left out (v1 counted all but `test`)
    kept = user_cache_dir() / f"runtime-packages-v2-{root}-{installed_key()[:32]}.json"
    try:
        return load_json(kept)
    except (OSError, ValueError):
        pass
    out = _runtime_packages(root)
    try:
        write_text(kept, json.dumps(out, sort_keys=True))
    except OSError:  # a read-only home: computed each time
        pass
    return out


def _runtime_packages(root: str) -> dict[str, str | None]:
    """:func:`runtime_packages` from the installed metadata."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    dists = {}
    for d in metadata.distributions():
        dists.setdefault(canonicalize_name(d.metadata["Name"] or ""), d)
    if canonicalize_name(root) not in dists:
        return {name: d.version for name, d in sorted(dists.items())}
    out: dict[str, str | None] = {}
    todo, seen = [(root, frozenset[str]())], set()
    while todo:
        name, extras = todo.pop()
        if (key := (canonicalize_name(name), extras)) in seen:
            continue
        seen.add(key)
        d = dists.get(key[0])
        out[key[0]] = d.version if d else None
        for text in (d.requires or []) if d else []:
            marker = text.partition(";")[2]
            if not extras and "extra" in marker and " or " not in marker:  # a fast skip
                continue
            req = Requirement(text)
            env = [{"extra": e} for e in (*extras, "")]
            if req.marker is None or any(req.marker.evaluate(e) for e in env):
                todo.append((req.name, frozenset(req.extras)))
    return dict(sorted(out.items()))


# Instruction-set extensions that change which float kernels run (and so the low bits of results).
_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
_CPU_SIGNATURE = ("cpu family", "model", "stepping")  # /proc/cpuinfo keys, x86


#: Linux's description of the CPU (:func:`cpu_info`)
CPUINFO = "/proc/cpuinfo"


def cpu_info() -> dict[str, Any]:
    """The CPU vendor, model, x86 family/model/stepping (the microarchitecture where a virtual
    machine names a generic model) and which of _CPU_FLAGS it has; None where unknown."""
    vendor, model, flags = None, None, None
    signature: dict[str, str] = {}
    try:
        text = Path(CPUINFO).read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("vendor_id", "CPU implementer") and vendor is None:
            vendor = value.strip() or None
        elif key in ("model name", "Model", "cpu model") and model is None:
            model = value.strip() or None
        elif key in _CPU_SIGNATURE and key not in signature:
            signature[key] = value.strip()
        elif key in ("flags", "Features") and flags is None:
            flags = set(value.split())
        if model is not None and flags is not None:
            break  # the first processor's block: vendor_id comes before both
    return {
        "cpu_vendor": vendor,
        "cpu_model": model or platform.processor() or None,
        "cpu_family_model_stepping": (
            "/".join(signature[k] for k in _CPU_SIGNATURE) if len(signature) == 3 else None
        ),
        "cpu_flags": None if flags is None else {f: f in flags for f in _CPU_FLAGS},
    }


# Environment variables that change float results on one machine, recorded by name and value (no
# other variable is): docs/guide.md says how each does.
NUMERICS_ENV_PREFIXES = ("MKL_", "ONEDNN_", "DNNL_", "OMP_", "KMP_", "OPENBLAS_")
NUMERICS_ENV_NAMES = frozenset(
    {
        "ATEN_CPU_CAPABILITY",
        "NVIDIA_TF32_OVERRIDE",
        "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
        "CUBLAS_WORKSPACE_CONFIG",
        "NCCL_ALGO",
        "NCCL_PROTO",
    }
)


def _numerics_env() -> dict[str, str]:
    """The variables of NUMERICS_ENV_PREFIXES / NUMERICS_ENV_NAMES set in this process."""
    return {
        k: v
        for k, v in sorted(os.environ.items())
        if k in NUMERICS_ENV_NAMES or k.startswith(NUMERICS_ENV_PREFIXES)
    }


def torch_build(config_text: str) -> dict[str, str | None]:
    """The BLAS, LAPACK, MKL and oneDNN of a torch build, from ``torch.__config__.show()``."""
    settings = dict(re.findall(r"\b([A-Z_]+)=([^,\s]*)", config_text))
    mkl = re.search(r"Math Kernel Library Version ([\d.]+)", config_text)
    onednn = re.search(r"(?:MKL-DNN|oneDNN) v(\S+)", config_text)
    return {
        "blas": settings.get("BLAS_INFO") or None,
        "lapack": settings.get("LAPACK_INFO") or None,
        "mkl": mkl and mkl.group(1),
        "onednn": onednn and onednn.group(1),
    }


@functools.cache
def _torch_build() -> dict[str, str | None]:
    import torch

    return torch_build(torch.__config__.show())  # fixed for the process: parsed once


def _tf32(legacy: Any, backend: Any) -> Any:
    """A backend's TF32 switch: its legacy flag, or its ``fp32_precision`` where torch refuses
    the legacy read (a job that set the new API)."""
    try:
        return legacy()
    except RuntimeError:
        return getattr(backend, "fp32_precision", None)


def numerics() -> dict[str, Any]:
    """What else changes float results, read as the record is written: a job's switches count."""
    import torch

    mkldnn_matmul = getattr(torch.backends.mkldnn, "matmul", None)
    out: dict[str, Any] = {
        **_torch_build(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "mkldnn_matmul_fp32_precision": getattr(mkldnn_matmul, "fp32_precision", None),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "env": _numerics_env(),
    }
    if torch.cuda.is_available():
        cuda, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
        out |= {
            "cuda_matmul_tf32": _tf32(lambda: cuda.allow_tf32, cuda),
            "cuda_fp16_reduced_reduction": cuda.allow_fp16_reduced_precision_reduction,
            "cuda_bf16_reduced_reduction": cuda.allow_bf16_reduced_precision_reduction,
            "cuda_blas": torch.backends.cuda.preferred_blas_library().name,  # cuBLAS or cuBLASLt
            "cudnn": cudnn.version(),
            "cudnn_tf32": _tf32(lambda: cudnn.allow_tf32, cudnn),
            "cudnn_benchmark": cudnn.benchmark,
            "cudnn_deterministic": cudnn.deterministic,
        }
    return out


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        **cpu_info(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "hostname": platform.node(),
        # forked from the run's warm server: the job's benchmark file measured the process that
        # waited for it (its memory, CPU and I/O columns; not its wall time)
        "started_warm": warm.started_warm(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        # the kernels torch dispatches to on this CPU (DEFAULT, AVX2, AVX512, ...)
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["numerics"] = numerics()
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            info["cuda"] = torch.version.cuda
    except ImportError:
        pass
    return info


#: The run id of each record a job read (path -> run id), set by ablate.job_script: its record's
#: ``upstream``, which ``ablate diff`` follows.
UPSTREAM_ENV = "ABLATE_UPSTREAM_RUNS"


def upstream_runs(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """Declared input path -> the run id of the record it is (its JSON files that are records)."""
    from ablate.core.outputs.io import file_run_id

    return {
        str(path): run_id
        for path in paths
        if str(path).endswith(".json") and os.path.isfile(path) and (run_id := file_run_id(path))
    }


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


#: What every block :func:`collect` writes holds (a job's own fields may follow): a block at a
#: file's top level without them is no job's sidecar (``records.record_lacks``).
BLOCK_FIELDS = (
    "run_id",
    "git",
    "config_hash",
    "config",
    "inputs",
    "packages",
    "hardware",
    "finished_at",
)


def collect(
    *,
    config_slice: Any,
    inputs: dict[str, str | os.PathLike] | None = None,
    digests: dict[str, str] | None = None,
    started: float | None = None,
    run_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance block. ``inputs``: label -> a file or directory to fingerprint; ``digests``:
    label -> the sha256 the job took of what it read, when it read it (a file edited since would
    be fingerprinted as what the job never read)."""
    fingerprints = {k: fingerprint_path(v) for k, v in (inputs or {}).items()}
    block = {
        "run_id": run_id or new_run_id(),
        "git": git_state(Path(os.environ.get(WORKFLOW_DIR_ENV) or os.getcwd()).resolve()),
        "config_hash": config_hash(config_slice),
        "config": config_slice,
        "inputs": dict(sorted({**fingerprints, **(digests or {})}.items())),
        "packages": _package_versions(),
        "hardware": hardware(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if started is not None:
        block["wall_time_s"] = round(time.time() - started, 3)
    if use := gpu_watch.current():  # a GPU job: how busy its GPUs were (none on a CPU)
        block["gpu_use"] = use
    if upstream := os.environ.get(UPSTREAM_ENV):  # the records the job read, by run id
        block["upstream"] = json.loads(upstream)
    if extra:
        block.update(extra)
    return block


_ABSENT = "<absent>"


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Where two config slices differ, one ``"dotted.key old -> new"`` per changed leaf (list
    items by index when both lists have the same length, else the whole list), in key order."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            out += changed_keys(old.get(k, _ABSENT), new.get(k, _ABSENT), key)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            c for i, (o, n) in enumerate(zip(old, new)) for c in changed_keys(o, n, f"{prefix}.{i}")
        ]
    if old == new and type(old) is type(new):
        return []
    return [f"{prefix or '<root>'} {_short(old)} -> {_short(new)}"]


def _short(value: Any, limit: int = 60) -> str:
    text = value if value is _ABSENT else canonical_json(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
