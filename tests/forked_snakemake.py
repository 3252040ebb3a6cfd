"""`python -m snakemake ARGS` without its 2-3 s of imports: each command is a child forked from one
server process (multiprocessing's forkserver) that imported Snakemake and its third-party stack
once. The child is the command: its own working folder, environment, stdout and stderr (files,
read back), exit status; the project's modules (``ablate``, its Snakemake plugins) are dropped from
the child's imports and its plugin registries collected again, so the command imports the project
from the checkout's own src/ first, as a fresh interpreter with that PYTHONPATH does.

Its exit is an interpreter's: the atexit handlers run (those the server registered too), then
the process ends with the command's status. What a forked command does not have of a fresh
interpreter: the interpreter's own start-up (``sys.flags``, ``-X`` options; the server's are this
process's), and the third-party modules already imported (their import-time reads of the
environment are the server's).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: what the server imports once: Snakemake's command line and what it pulls in (pandas,
#: sqlalchemy, smart_open, jsonschema ... through Snakemake and the installed plugins)
PRELOAD = ["snakemake.cli", "snakemake.report", "yaml"]

#: the project's top-level modules: imported again in each command, from its checkout
OWN = (
    "ablate",
    "snakemake_executor_plugin_ablate_slurm",
    "snakemake_executor_plugin_ablate_vast",
    "snakemake_logger_plugin_ablate",
)

_context = None


def context():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _own(name: str) -> bool:
    return name.split(".")[0] in OWN


def _command(wd: str, args: list[str], env: dict[str, str], out: str, err: str) -> None:
    """The child: the command in wd under env, its output into the files out and err."""
    for fd, path in ((1, out), (2, err)):  # first: the project's imports may print
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.stdin = open(os.devnull)
    os.chdir(wd)
    os.environ.clear()
    os.environ.update(env)
    # sys.path as `python -m` builds it: the working folder, PYTHONPATH, then the interpreter's own
    base = [p for p in sys.path if p]
    own = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [wd, *own, *base]
    for name in [m for m in sys.modules if _own(m)]:
        del sys.modules[name]
    from snakemake_interface_common.plugin_registry import PluginRegistryBase

    for registry in _registries(PluginRegistryBase):
        if registry._instance is not None and hasattr(registry._instance, "plugins"):
            registry._instance.collect_plugins()
    import snakemake
    from snakemake.cli import main
    from snakemake.workflow import Workflow

    sys.argv = [str(Path(snakemake.__file__).with_name("__main__.py")), *args]
    Workflow._rundir = wd  # read once, at import, by the server
    code = 1
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    finally:
        # what an interpreter does at its exit: the workflow's own atexit handlers (a dry run's
        # stale lines, rules/stale.smk), then logging's
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _registries(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _registries(sub)


def snakemake(wd: Path, args: list[str], env: dict[str, str], timeout: float):
    """`python -m snakemake ARGS` in wd under env (the whole environment), as a CompletedProcess."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        child = context().Process(target=_command, args=(str(wd), list(args), env, out, err))
        child.start()
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired(["snakemake", *args], timeout)
        stdout = out.read_text(errors="replace") if out.exists() else ""
        stderr = err.read_text(errors="replace") if err.exists() else ""
    return subprocess.CompletedProcess(
        [sys.executable, "-m", "snakemake", *args], child.exitcode, stdout, stderr
    )
