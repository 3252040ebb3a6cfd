"""Data-parallel jobs: torch.distributed as torchrun sets it up, one launcher for every study.

A job whose ``gpu`` resource is N > 1 calls :func:`launch`, which starts N processes of
:func:`main` through torchrun. Outside such a launch every helper here is the single-process
identity, so a one-process run is exactly the plain one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import faulthandler
import importlib
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from ablate.upstream import pytorch

#: How long a process waits for the others at a collective: rank 0 may evaluate for minutes.
_TIMEOUT = datetime.timedelta(hours=2)
#: After an error, how long a process may take to leave before it is ended.
_EXIT_AFTER_ERROR_S = 60.0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


_cpu_group = None  # a CPU (gloo) group for the host-side collectives, made at its first use


def _all_reduce_on_cpu(n: int, op) -> int:
    """``n`` reduced over every process through a gloo group on the CPU, so on GPUs it waits for
    no device work: no sync of the step's queued kernels."""
    global _cpu_group
    if _cpu_group is None:
        _cpu_group = dist.new_group(backend="gloo")
    t = torch.tensor([n], dtype=torch.long)
    dist.all_reduce(t, op=op, group=_cpu_group)
    return int(t.item())


def any_process(flag: bool) -> bool:
    """Whether ``flag`` holds in any process (a collective: every process calls it)."""
    if world_size() == 1:
        return flag
    return bool(_all_reduce_on_cpu(int(flag), dist.ReduceOp.MAX))


def sum_int(n: int) -> int:
    """``n`` summed over every process (a collective, as :func:`any_process`)."""
    if world_size() == 1:
        return n
    return _all_reduce_on_cpu(n, dist.ReduceOp.SUM)


def sum_tensor(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over every process (a collective on the default group: a device tensor)."""
    if world_size() == 1:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t


def init() -> None:
    """Join the process group torchrun described; bind this process to its GPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        # device_id: NCCL binds the group to this GPU instead of guessing it from the rank
        dist.init_process_group("nccl", timeout=_TIMEOUT, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=_TIMEOUT)


def close() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def abort() -> None:
    """Leave the group after an error without waiting for anyone: a graceful
    ``destroy_process_group`` waits for a peer blocked in a collective this process will never
    join, so the process hung, its traceback unprinted (bench/results/h200x2_pool_ddp.md)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    with contextlib.suppress(Exception):  # a backend without abort: exiting is enough
        pytorch.abort_process_group()


def barrier() -> None:
    """Wait for every process (nothing on one)."""
    if world_size() > 1:
        dist.barrier()


def command(spec: str | os.PathLike, nproc: int) -> list[str]:
    """The torchrun command line that runs ``spec`` (see :func:`launch`) on ``nproc`` processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", "-m", "ablate.core.execution.parallel", str(spec)]  # fmt: skip


def launch(
    call: str,
    kwargs: dict[str, Any],
    nproc: int,
    threads: int,
    log: TextIO | None = None,
    reporters: dict[str, Any] | None = None,
) -> None:
    """Run ``call`` (``"module:function"``) with ``kwargs`` (JSON; a dataclass value is rebuilt
    in each process) in ``nproc`` data-parallel processes of ``threads // nproc`` CPU threads
    each; raise if one fails. ``reporters`` (``{"call", "kwargs"}``): what each process calls for
    its ``reporters=`` argument (objects that JSON cannot carry)."""
    kwargs = encode_kwargs(kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(
            json.dumps({"call": call, "kwargs": kwargs, "reporters": reporters}, default=str)
        )
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads // nproc))}
        out = log or sys.stdout
        try:
            subprocess.run(command(spec, nproc), stdout=out, stderr=out, env=env, check=True)
        except subprocess.CalledProcessError as e:
            raise RuntimeError(
                f"{call} failed in {nproc} data-parallel processes (torchrun exit "
                f"{e.returncode}){_tail(out)}"
            ) from e


def _tail(log: TextIO, lines: int = 40) -> str:
    """The end of a log file the processes wrote (why they failed), for the exception."""
    name = getattr(log, "name", None)
    if not isinstance(name, str) or not os.path.isfile(name):
        return ""  # a terminal or a pipe: the output is already in front of the user
    log.flush()
    text = Path(name).read_text(errors="replace").splitlines()[-lines:]
    return f"; the end of {name}:\n" + "\n".join(text)


def resolve(call: str):
    module, name = call.split(":")
    return getattr(importlib.import_module(module), name)


#: the key of a dataclass carried through the launcher's JSON: {_DATACLASS: "module:Class", ...}
_DATACLASS = "$dataclass"


def encode_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for the launcher's JSON: a dataclass value as its fields and its class."""

    def encode(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            cls = type(value)
            return {_DATACLASS: f"{cls.__module__}:{cls.__qualname__}", **dataclasses.asdict(value)}
        return value

    return {k: encode(v) for k, v in kwargs.items()}


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and _DATACLASS in value:
        fields = dict(value)
        return resolve(fields.pop(_DATACLASS))(**fields)
    return value


@record  # torchrun's failure summary (the end of the log) then names each process's exception
def main() -> None:
    """One process of a data-parallel run (``python -m ablate.core.execution.parallel SPEC``)."""
    spec = json.loads(Path(sys.argv[1]).read_text())
    init()
    try:
        kwargs, rep = {k: _decode(v) for k, v in spec["kwargs"].items()}, spec.get("reporters")
        if rep:
            kwargs["reporters"] = resolve(rep["call"])(**rep["kwargs"])
        resolve(spec["call"])(**kwargs)
        # nobody leaves the group before all are done: a process that exits while a peer still
        # reads its last message (a gather to process 0) can break that read (gloo: "Connection
        # closed by peer")
        barrier()
    except BaseException:
        # the cause first (nothing after this may run), then out without waiting for the peers:
        # torchrun sees this process fail and stops the others
        traceback.print_exc()
        sys.stderr.flush()
        # should leaving still hang: every thread's stack into the log, then exit
        faulthandler.dump_traceback_later(_EXIT_AFTER_ERROR_S, exit=True)
        abort()
        raise
    close()


if __name__ == "__main__":
    main()
