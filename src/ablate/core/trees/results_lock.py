"""The results folder's lock: one running Snakemake per results folder.

Snakemake locks its working directory, not the results folder: two checkouts with one
``results:`` took over each other's checkpoints and records (docs/reliability.md, [F48]). An
experiment's tree shares its base's lock (a run of it writes the base's tree too). A holder on
another host cannot be checked from here. Pure Python: the Snakefile imports it at parse time.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ablate.core.execution.warm import alive, ancestors
from ablate.core.outputs import io
from ablate.core.trees.experiments import base_of

LOCK_NAME = ".run.lock"


class ResultsLocked(RuntimeError):
    """Another running Snakemake holds the results folder; the message is one line."""


def lock_path(results: str | os.PathLike) -> Path:
    """The lock of a results folder: in it, or in its base's for an experiment's tree."""
    return Path(base_of(results) or results) / LOCK_NAME


def start_time(pid: int) -> str | None:
    """The process's start time in ticks since boot (tells a reused pid), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: count after its end
    return stat[stat.rindex(")") + 2 :].split()[19]


def this_holder() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "cwd": os.getcwd(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "started": start_time(os.getpid()),
        "command": " ".join(sys.argv),
    }


def read(results: str | os.PathLike) -> dict[str, Any] | None:
    """The holder in the folder's lock file ({} if unreadable); None without one."""
    return _holder_in(lock_path(results))


def _holder_in(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        holder = io.parse_json(text, path)
    except ValueError:
        holder = None
    return holder if isinstance(holder, dict) else {}


def running(holder: dict[str, Any]) -> bool | None:
    """Whether the holder's process runs: on this host True or False, else None."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return None
    if not alive(holder["pid"]):
        return False
    recorded, now = holder.get("started"), start_time(holder["pid"])
    return recorded is None or now is None or recorded == now


def is_ours(holder: dict[str, Any] | None) -> bool:
    me = (os.getpid(), socket.gethostname())
    return bool(holder) and (holder.get("pid"), holder.get("host")) == me


def _describe(holder: dict[str, Any]) -> str:
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, working directory "
        f"{holder.get('cwd', '?')}, since {holder.get('since', '?')}"
    )


def _held_message(
    results: str | os.PathLike, holder: dict[str, Any], deleting: bool = False
) -> str:
    """One line: the folder is held, by whom, and what to do."""
    gone = (
        f"; if that run has ended (its host is down, it was killed), delete {lock_path(results)}"
        if running(holder) is None
        else ""
    )
    why = (
        "deleting outputs now removes files that run writes and reads; wait until it ends (or "
        "stop it)"
        if deleting
        else "two runs on one results folder take over each other's checkpoints and records; "
        "wait until it ends (or stop it), or give this configuration its own `results:`"
    )
    return f"{results}/ is in use by another Snakemake run ({_describe(holder)}): {why}{gone}"


def acquire(results: str | os.PathLike, deleting: bool = False) -> str | None:
    """Take the folder's lock for this process, released at its exit (and by :func:`release`).
    Raises :class:`ResultsLocked` when a running process holds it (or one on another host);
    takes over a stale lock, returning one line saying so. ``deleting``: for Snakemake's delete
    commands."""
    path = lock_path(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = this_holder()
    note = None
    for _ in range(3):
        # written whole beside it, then linked in: the lock never exists half written, and the
        # link fails if another run's lock is there (atomic on NFS too, unlike O_EXCL on old ones)
        tmp = path.with_name(f"{LOCK_NAME}.{mine['host']}.{mine['pid']}")
        tmp.write_text(json.dumps(mine) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        else:
            atexit.register(release, results)
            return note
        finally:
            tmp.unlink(missing_ok=True)
        holder = read(results)
        if holder is None:
            continue  # released meanwhile: try again
        if is_ours(holder):
            return note
        if running(holder) is not False:
            raise ResultsLocked(_held_message(results, holder, deleting))
        # stale: moved aside under this process's name, so that of two runs taking it over at
        # once only one gets it, and a live lock that replaced it meanwhile is put back
        aside = path.with_name(f"{LOCK_NAME}.{mine['host']}.{mine['pid']}.stale")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            continue
        if _holder_in(aside) != holder:  # a live lock: back in place, unless one is there now
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
            aside.unlink()
            continue
        aside.unlink()
        note = (
            f"{results}/: took over the lock of a run that ended without releasing it "
            f"({_describe(holder)})"
        )
    raise ResultsLocked(f"{results}/: could not take its lock {path}: retry")


def release(results: str | os.PathLike) -> None:
    """Give the lock back if this process holds it (a run's end, also on error or interrupt)."""
    if is_ours(read(results)):
        lock_path(results).unlink(missing_ok=True)


def status_line(results: str | os.PathLike) -> str | None:
    """One line for ``ablate status`` while a run holds the folder (or a stale lock lies there);
    None when it is free, or held by the run that asks (its status job: STATUS.md written at a
    run's end would name the run that wrote it as holding the folder after it ended)."""
    holder = read(results)
    if holder is None:
        return None
    if holder.get("host") == socket.gethostname() and holder.get("pid") in ancestors():
        return None
    alive = running(holder)
    if alive is False:
        return (
            f"a stale lock ({lock_path(results)}): its run ({_describe(holder)}) ended without "
            "releasing it; the next run takes it over"
        )
    where = "" if alive else " (on another host: not checked from here)"
    return f"a Snakemake run holds {results}/: {_describe(holder)}{where}"
