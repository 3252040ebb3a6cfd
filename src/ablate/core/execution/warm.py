"""Warm job starts: a local run's model jobs forked from a process that imported torch once.

How it works and what it saves: docs/profiles.md, "Warm job starts". What a job computes does not
depend on it: the server is keyed by everything an import may read (:func:`server_key`) and
imports nothing of the project (each child imports ``ablate`` fresh, so an edit between two jobs
is the code the second one runs); a job whose key has no server runs cold.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import threading
from pathlib import Path

#: The run's folder of warm servers (set by the Snakefile's onstart for the run's jobs).
RUN_ENV = "ABLATE_WARM_RUN"
#: A user's switch: ``0`` runs every job cold.
SWITCH_ENV = "ABLATE_WARM_JOBS"
#: Set in a warm job's processes (its record says so: its benchmark file measures the waiting
#: process's memory, CPU and I/O, not the job's).
STARTED_ENV = "ABLATE_STARTED_WARM"
#: What a server imports before it forks jobs: the model jobs' imports from outside the project.
PRELOAD = (
    "torch",
    "transformers",
    "transformers.modeling_utils",
    "lm_eval.evaluator",
    "lm_eval.models.huggingface",
    "lm_eval.tasks",
    "snakemake.script",
)
#: Signals a waiting job's process passes on to the child that runs the job.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)
HEADER = struct.Struct("!I")


def start_run(pid: int) -> str | None:
    """A folder for this run's servers, named in its environment; None when switched off."""
    if os.environ.get(SWITCH_ENV, "1") == "0":
        return None
    run = Path(f"/tmp/ablate-warm-{os.getuid()}") / str(pid)
    try:
        run.parent.mkdir(mode=0o700, exist_ok=True)
        run.mkdir(mode=0o700, exist_ok=True)
        for stale in run.iterdir():  # of a killed run that had this process id
            stale.unlink()
    except OSError:  # no /tmp to write: every job starts cold
        return None
    os.environ[RUN_ENV] = str(run)
    return str(run)


def stop_run() -> None:
    """The run's end (onsuccess, onerror): each server of the run stopped, its folder removed."""
    run = os.environ.pop(RUN_ENV, None)
    if not run or not os.path.isdir(run):
        return
    for pidfile in Path(run).glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
    for path in Path(run).iterdir():
        path.unlink(missing_ok=True)
    os.rmdir(run)


def started_warm() -> bool:
    """Whether this process is (or was started by) a job that started warm."""
    return os.environ.get(STARTED_ENV) == "1"


def server_key() -> str:
    """What a server shares with the jobs it runs: what imports read (the interpreter, the working
    folder, the environment) and the preloaded packages' files (an install rewrites them)."""
    import importlib.util

    installed = []
    for top in sorted({name.split(".")[0] for name in PRELOAD}):
        spec = importlib.util.find_spec(top)  # a top-level name: imports nothing
        origin = spec.origin if spec else None
        installed.append([top, origin, os.stat(origin).st_mtime_ns if origin else None])
    facts = [sys.executable, os.getcwd(), sorted(os.environ.items()), installed]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:20]


def ancestors() -> set[int]:
    """This process and the processes above it (Linux ``/proc``; without it, the parent alone)."""
    found, pid = {os.getpid(), os.getppid()}, os.getppid()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat[stat.rindex(")") + 2 :].split()[1])
        found.add(pid)
    return found


def this_run() -> str | None:
    """The folder of the local warm run this process is a job of; None: no warm run."""
    run = os.environ.get(RUN_ENV)
    if not run or not os.path.isdir(run) or not Path(run).name.isdigit():
        return None
    return run if int(Path(run).name) in ancestors() else None


def hand_off() -> str | None:
    """Run the job in a warm child of this run's server and end as it ends (never returns), or
    return what the job's log says of its cold start; None for a job of no warm run."""
    if started_warm():
        return f"started warm: forked from the run's server (pid {os.getppid()})"
    if (run := this_run()) is None:
        return None
    key = server_key()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(os.path.join(run, f"{key}.sock"))
    except OSError:
        conn.close()
        # the environment the key was made of: the job sets more of its own after this point
        _cold.update(run=run, key=key, env=dict(os.environ))
        return f"started cold: no warm server for its environment (yet: {run}/{key}.log)"
    ignored = [s for s in FORWARDED if signal.getsignal(s) is signal.SIG_IGN]
    request = dict(argv=sys.argv, cwd=os.getcwd(), env=dict(os.environ), path=sys.path)
    request["ignored"] = [int(s) for s in ignored]
    body = json.dumps(request).encode()
    socket.send_fds(conn, [HEADER.pack(len(body))], [0, 1, 2])
    conn.sendall(body)
    sys.stdout.flush()
    os._exit(wait_for_child(conn, ignored))


def wait_for_child(conn: socket.socket, ignored: list[signal.Signals]) -> int:
    """The job's process while its child runs: signals passed on, the child's end returned (a
    signal that killed it is raised here, so Snakemake sees the job end as it ended)."""
    child: list[int] = []
    early: list[int] = []  # signals that came before the child's pid: sent once it is known

    def forward(signum, frame):
        if child:
            os.kill(child[0], signum)
        else:
            early.append(signum)

    for s in FORWARDED:
        if s not in ignored:
            signal.signal(s, forward)
    buffer = b""
    while True:
        data = conn.recv(4096)
        if not data:
            print("[warm] the job's warm server ended before the job: failed", file=sys.stderr)
            return 1
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            kind, _, value = line.decode().partition(" ")
            if kind == "pid":
                child.append(int(value))
                for signum in early:
                    os.kill(child[0], signum)
            elif kind == "exit":
                return int(value)
            elif kind == "status":
                if os.WIFSIGNALED(int(value)):
                    sig = os.WTERMSIG(int(value))
                    signal.signal(sig, signal.SIG_DFL)
                    os.kill(os.getpid(), sig)
                    return 128 + sig
                return os.waitstatus_to_exitcode(int(value))


#: This process's start when :func:`hand_off` found no server: its run, key and environment then.
_cold: dict = {}


def start_for_next_jobs() -> bool:
    """A job that started cold and computes: a server for the next jobs of its environment as
    :func:`hand_off` saw it (the job's own variables set since are no part of it); whether it
    started one."""
    if not _cold:
        return False
    return _start_server(_cold["run"], _cold["key"], _cold["env"])


def _start_server(run: str, key: str, env: dict) -> bool:
    """A server for ``key``, once per run and key (False: started already), its output in
    ``<key>.log``. Started through a process that ends at once, so the server is no process of this
    job's (its benchmark file measures the job alone)."""
    import subprocess

    try:
        fd = os.open(os.path.join(run, f"{key}.pid"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except OSError:
        return False  # started already, or starting
    middle = os.fork()
    if middle == 0:
        try:
            with open(os.path.join(run, f"{key}.log"), "w") as log:
                server = subprocess.Popen(
                    [sys.executable, "-m", __name__, os.path.join(run, f"{key}.sock")],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    start_new_session=True,  # a Ctrl-C in the terminal reaches the jobs, not it
                )
            os.write(fd, str(server.pid).encode())
        finally:
            os._exit(0)
    os.close(fd)
    os.waitpid(middle, 0)
    return True


def serve(sock_path: str) -> None:
    """The server: imports :data:`PRELOAD`, then forks one child per job that connects, and
    tells each job's process how its child ended; stops on SIGTERM or once its run is gone."""
    import gc
    import importlib
    import time

    owner = int(Path(sock_path).parent.name)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    for name in PRELOAD:
        importlib.import_module(name)
    gc.freeze()  # the children share these pages; a collection in one would copy them
    if threading.active_count() > 1:
        raise RuntimeError(f"threads after the imports: {threading.enumerate()}; not forking")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path + ".new")
    listener.listen(16)
    os.rename(sock_path + ".new", sock_path)  # connectable only once ready
    print(f"[warm] serving from {time.strftime('%H:%M:%S')}", flush=True)
    try:
        loop(listener, owner)
    finally:  # (not in a child: a child ends with os._exit)
        Path(sock_path).unlink(missing_ok=True)


def loop(listener: socket.socket, owner: int) -> None:
    """The server's loop; returns once its run (``owner``) is gone and no job runs."""
    import select

    jobs: dict[int, socket.socket] = {}
    while True:
        if select.select([listener], [], [], 0.5)[0]:
            conn, _ = listener.accept()
            pid = _fork_job(conn, listener, jobs)
            if pid:
                jobs[pid] = conn
        while jobs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if not pid:
                break
            conn = jobs.pop(pid)
            with contextlib.suppress(OSError):
                conn.sendall(f"status {status}\n".encode())
            conn.close()
        if not jobs and not alive(owner):
            return


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _fork_job(conn: socket.socket, listener: socket.socket, jobs: dict) -> int:
    """Fork a child to run one job's request (never returns in it): its pid, 0 for a bad one."""
    conn.settimeout(10)
    try:
        head, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
        (size,) = HEADER.unpack(head)
        body = b""
        while len(body) < size:
            if not (chunk := conn.recv(size - len(body))):
                raise OSError("request cut short")
            body += chunk
    except (OSError, struct.error):
        conn.close()
        return 0
    conn.settimeout(None)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            listener.close()
            for other in jobs.values():
                other.close()
            code = _run_child(conn, fds, json.loads(body))
        finally:  # the child never returns to the server's loop
            os._exit(code)
    for fd in fds:
        os.close(fd)
    with contextlib.suppress(OSError):  # its job's process gone: the child's watch ends it
        conn.sendall(f"pid {pid}\n".encode())
    print(f"[warm] pid {pid}: {' '.join(json.loads(body)['argv'])}", flush=True)
    return pid


def _run_child(conn: socket.socket, fds: list[int], request: dict) -> int:
    """In the forked child: become the job's process, run its script; its exit status."""
    import random
    import runpy

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update({k: v for k, v in request["env"].items() if k != RUN_ENV})
    os.environ[STARTED_ENV] = "1"
    sys.argv[:] = request["argv"]
    sys.path[:] = request["path"]
    for s in FORWARDED:
        signal.signal(s, signal.SIG_IGN if int(s) in request["ignored"] else signal.SIG_DFL)
    if int(signal.SIGINT) not in request["ignored"]:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in [m for m in sys.modules if m == "ablate" or m.startswith("ablate.")]:
        del sys.modules[name]
    random.seed()  # a fresh process's seed, not the server's (os.urandom)
    tty = os.isatty(1)
    sys.stdin = sys.__stdin__ = open(0, closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", buffering=1 if tty else -1, closefd=False)
    sys.stderr = sys.__stderr__ = open(
        2, "w", buffering=1, errors="backslashreplace", closefd=False
    )

    def watch():  # the job's process gone (killed): so is its job
        if not conn.recv(1):
            os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()
    code, interrupted = 0, False
    try:
        runpy.run_path(request["argv"][0], run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int | None):
            print(e.code, file=sys.stderr)
    except BaseException as e:  # as the interpreter ends on an uncaught exception
        sys.excepthook(type(e), e, e.__traceback__)
        code, interrupted = 1, isinstance(e, KeyboardInterrupt)
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    if interrupted:  # an interpreter ends an uncaught KeyboardInterrupt with SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    conn.sendall(f"exit {code}\n".encode())
    return code


if __name__ == "__main__":
    serve(sys.argv[1])
