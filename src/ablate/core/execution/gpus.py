"""A GPU per job on a local multi-GPU host: ``CUDA_VISIBLE_DEVICES`` from a pool of file locks.

Snakemake counts a ``gpu`` resource but never says which device a job gets
(snakemake/snakemake#281), so two local jobs shared GPU 0. A device is an ``fcntl.flock`` on its
lock file, which the kernel drops when the process dies (SIGKILL too): a device returns however
its job ends and is never shared while held; a job holds no part of its request while it waits.
The pool, and why it is off under SLURM: docs/profiles.md, "A GPU per job on a multi-GPU host".
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

IDS_ENV = "ABLATE_GPU_IDS"
LOCK_DIR_ENV = "ABLATE_GPU_LOCK_DIR"
SWITCH_ENV = "ABLATE_GPU_POOL"
#: Set once a process holds devices: a child (torchrun's workers) must not claim again.
CLAIMED_ENV = "ABLATE_GPUS_CLAIMED"
_POLL_S = 1.0

_held: list[IO] = []  # the open lock files: a device is held as long as its file stays open


def _pool_off() -> bool:
    """Whether a scheduler assigns devices itself (SLURM, or the pool switched off)."""
    off = os.environ.get(SWITCH_ENV, "").lower() in ("off", "0", "false")
    return off or bool(os.environ.get("SLURM_JOB_ID"))


def pool() -> list[str]:
    """The device ids this host's jobs share: ``ABLATE_GPU_IDS``, an inherited
    ``CUDA_VISIBLE_DEVICES``, else one per ``nvidia-smi -L`` line."""
    for env in (IDS_ENV, "CUDA_VISIBLE_DEVICES"):
        if env in os.environ:
            return [i.strip() for i in os.environ[env].split(",") if i.strip()]
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    lines = [x for x in listing.stdout.splitlines() if x.startswith("GPU ")]
    return [str(i) for i in range(len(lines))] if listing.returncode == 0 else []


def _lock_dir() -> Path:
    d = Path(os.environ.get(LOCK_DIR_ENV) or f"/tmp/ablate-gpus-{os.getuid()}")
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def _try_lock(path: Path) -> IO | None:
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def _try_take(ids: list[str], n: int, d: Path) -> list[tuple[str, IO]] | None:
    """n free devices taken together, or none: the pool lock makes the look and take atomic."""
    with open(d / "pool.lock", "a+") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        got: list[tuple[str, IO]] = []
        for i in ids:
            f = _try_lock(d / f"gpu-{i}.lock")
            if f is not None:
                got.append((i, f))
            if len(got) == n:
                return got
        for _, f in got:  # too few: hold nothing while waiting
            f.close()
    return None


def _refuse_initialised_cuda(label: str) -> None:
    """CUDA reads CUDA_VISIBLE_DEVICES once, when it initialises: a claim after that would be
    silently ignored (the job would see every GPU)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError(
            f"{label}: CUDA was initialised before the job claimed its GPUs, so "
            "CUDA_VISIBLE_DEVICES would not apply; claim first (ablate.job_script.start)"
        )


def claim(n: int, label: str = "job") -> list[str] | None:
    """Take ``n`` devices for this process and set ``CUDA_VISIBLE_DEVICES`` to them; block until
    they are free. None (environment untouched) under a scheduler, on a host without a GPU, or
    in a child of a process that already claimed."""
    log = sys.stderr  # at call time: the job's log once job_script redirected it
    if _pool_off() or os.environ.get(CLAIMED_ENV):
        return None
    _refuse_initialised_cuda(label)
    ids = pool()
    if not ids:
        return None
    if n > len(ids):
        raise RuntimeError(f"{label} asks gpu={n} but this host's pool has {len(ids)}: {ids}")
    got: list[tuple[str, IO]] = []
    since, waited = time.monotonic(), 0.0
    if n > 0:
        d, said = _lock_dir(), -60.0
        while (taken := _try_take(ids, n, d)) is None:
            waited = time.monotonic() - since
            if waited - said >= 60:
                print(
                    f"[gpus] {label} waits for {n} free GPU(s) of {ids} ({waited:.0f} s)", file=log
                )
                said = waited
            time.sleep(_POLL_S)
        got = taken
        waited = time.monotonic() - since
    _held.extend(f for _, f in got)
    chosen = [i for i, _ in got]
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(chosen)
    os.environ[CLAIMED_ENV] = "1"
    # bench/tools/gpu_pool_smoke.py reads this line (devices and pid) from each job's log
    print(
        f"[gpus] {label}: CUDA_VISIBLE_DEVICES={','.join(chosen)!r} (pid {os.getpid()}, pool {ids},"
        f" waited {waited:.1f} s)",
        file=log,
    )
    return chosen


def claim_for(smk) -> list[str] | None:
    """:func:`claim` for a Snakemake ``script:`` job: its ``gpu`` resource, its rule as label."""
    n = int(getattr(smk.resources, "gpu", 0) or 0)
    return claim(n, label=f"{smk.rule} {dict(smk.wildcards.items())}")


def release() -> None:
    """Give the devices back before the process ends (tests; a job just exits)."""
    while _held:
        _held.pop().close()
    os.environ.pop(CLAIMED_ENV, None)
