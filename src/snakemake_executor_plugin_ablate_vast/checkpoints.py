"""Training checkpoints that outlive the instance.

Each new complete one is streamed to the submit host while the job runs, and a retry gets the
newest copy shipped up before it starts (docs/profiles.md, "Checkpoints that outlive the
instance").

A copy lands in ``checkpoints/.incoming`` and is moved into place only once the stream ended, its
marker is inside and its files match its manifest, so a copy cut off or altered on the way is
never resumed from; the previous copy goes only after the next one is in place.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from ablate.core.outputs import checkpoint_integrity
from ablate.core.outputs.checkpoint_integrity import step_of

REMOTE_WORKDIR = "/snakemake-workdir"
_INCOMING = ".incoming"
# a dead peer ends the stream after ~60 s instead of blocking the runner thread forever
_KEEPALIVE = ("-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4")

# Run on the instance: {checkpoint dir: newest complete step} for the dirs given.
_NEWEST = """\
import json, pathlib, sys
marker, found = sys.argv[1], {}
for d in json.loads(sys.argv[2]):
    steps = [int(c.name.rsplit("-", 1)[1]) for c in pathlib.Path(d).glob("checkpoint-*")
             if c.name.rsplit("-", 1)[1].isdigit() and (c / marker).is_file()]
    if steps:
        found[d] = max(steps)
print(json.dumps(found))
"""
# Run on the instance: the paths given as one tar stream on stdout, each under its base name.
_PACK = """\
import os, sys, tarfile
with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as t:
    for p in sys.argv[1:]:
        t.add(p, arcname=os.path.basename(p))
"""
# Run on the instance: the tar stream on stdin extracted into the directory given.
_UNPACK = """\
import sys, tarfile
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as t:
    t.extractall(sys.argv[1], filter="data")
"""


def _checkpoint_dirs(job) -> list[str]:
    """The checkpoints folder beside each output of ``job`` (a group job: of each of its jobs)."""
    outputs = (Path(str(f)) for j in getattr(job, "jobs", [job]) for f in j.output)
    return sorted({str(p.parent / checkpoint_integrity.CHECKPOINTS_DIR) for p in outputs})


def _python(script: str, *args: str) -> str:
    """A shell command running ``script`` with the instance's python."""
    quoted = " ".join(shlex.quote(a) for a in (script, *args))
    return f"cd {REMOTE_WORKDIR} && . ./env.sh && python -c {quoted}"


class CheckpointCopies:
    """The copies of one job's checkpoints, driven by its SSH runner."""

    def __init__(self, runner):
        self.runner = runner
        self.dirs = _checkpoint_dirs(runner.job)
        # what the submit host holds already (an earlier attempt's copies)
        self.copied = {
            d: step_of(c) for d in self.dirs if (c := checkpoint_integrity.newest_complete(d))
        }
        self.refused: dict[str, int] = {}  # {folder: step} whose copy failed its manifest

    def _argv(self, command: str) -> list[str]:
        r = self.runner
        return ["ssh", "-p", str(r.port), *r._ssh_options(), *_KEEPALIVE, f"root@{r.host}", command]

    def _label(self) -> str:
        return f"Vast.ai instance {self.runner.instance_id}"

    # ---- up: before the job starts
    def ship_newest(self) -> dict[str, int]:
        """Ship the newest good copy of each folder (with its run key) to the instance; returns
        {folder: step}. Raises on a failed transfer (the job is retried)."""
        shipped = {}
        for d in sorted(self.copied):
            ckpt = self._newest_good(d)
            if ckpt is None:
                del self.copied[d]
                continue
            step = self.copied[d] = step_of(ckpt)
            run_key = Path(d) / checkpoint_integrity.RUN_KEY_FILE
            paths = [ckpt, run_key] if run_key.is_file() else [ckpt]
            t0 = time.monotonic()
            proc = subprocess.Popen(
                self._argv(
                    f"mkdir -p {shlex.quote(f'{REMOTE_WORKDIR}/{d}')} && " + _python(_UNPACK, d)
                ),
                stdin=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                with tarfile.open(fileobj=proc.stdin, mode="w|") as tar:
                    for p in paths:
                        tar.add(p, arcname=p.name)
            finally:
                proc.stdin.close()
            err = proc.stderr.read().decode(errors="replace")
            if proc.wait() != 0:
                raise RuntimeError(f"could not ship {ckpt} to the instance: {err.strip()}")
            shipped[d] = step
            self.runner.logger.info(
                f"{self._label()}: resuming from step {step}: shipped the copy of {ckpt} "
                f"({_size(ckpt)} in {time.monotonic() - t0:.1f} s)"
            )
        return shipped

    def _newest_good(self, d: str) -> Path | None:
        """The newest complete copy in ``d`` matching its manifest; each newer one is set aside."""
        for ckpt in reversed(checkpoint_integrity.complete_checkpoints(d)):
            try:
                checkpoint_integrity.verify(ckpt)
            except checkpoint_integrity.CheckpointError as exc:
                aside = checkpoint_integrity.set_aside(ckpt)
                self.runner.logger.warning(
                    f"{self._label()}: not shipping {ckpt}, set aside as {aside.name}: {exc}"
                )
                continue
            return ckpt
        return None

    # ---- down: while the job runs
    def sync(self) -> list[int]:
        """Copy every checkpoint newer than the last copy; returns the steps copied."""
        if not self.dirs:
            return []
        res = self.runner._ssh(
            _python(_NEWEST, checkpoint_integrity.CHECKPOINT_MARKER, json.dumps(self.dirs)),
            check=False,
            timeout=120,
        )
        if res.returncode != 0:
            return []
        try:
            newest = json.loads(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return []
        steps = []
        for d, step in sorted(newest.items()):
            if (
                step > self.copied.get(d, -1)
                and step != self.refused.get(d)
                and self._pull(d, step)
            ):
                steps.append(step)
        return steps

    def _pull(self, d: str, step: int) -> bool:
        name = f"checkpoint-{step}"
        local = Path(d)
        incoming = local / _INCOMING
        shutil.rmtree(incoming, ignore_errors=True)
        incoming.mkdir(parents=True)
        t0 = time.monotonic()
        remote = [f"{d}/{name}", f"{d}/{checkpoint_integrity.RUN_KEY_FILE}"]
        proc = subprocess.Popen(
            self._argv(_python(_PACK, *remote)), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                tar.extractall(incoming, filter="data")
            ok = proc.wait() == 0
        except (tarfile.TarError, OSError) as e:  # stream cut off
            proc.kill()
            proc.wait()
            ok, err = False, str(e)
        else:
            err = proc.stderr.read().decode(errors="replace").strip()
        if not ok or not (incoming / name / checkpoint_integrity.CHECKPOINT_MARKER).is_file():
            # rotated away by the training loop meanwhile, or the instance is going: the next look decides
            self.runner.logger.warning(f"{self._label()}: copy of {d}/{name} failed: {err[-300:]}")
            shutil.rmtree(incoming, ignore_errors=True)
            return False
        try:
            checkpoint_integrity.verify(incoming / name)
        except checkpoint_integrity.CheckpointError as exc:
            # not retried: the instance's copy is the same
            aside = checkpoint_integrity.set_aside(incoming / name, into=local)
            self.runner.logger.warning(
                f"{self._label()}: copy of {d}/{name} set aside as {aside.name}: {exc}"
            )
            shutil.rmtree(incoming, ignore_errors=True)
            self.refused[d] = step
            return False
        os.replace(incoming / name, local / name)
        os.replace(
            incoming / checkpoint_integrity.RUN_KEY_FILE, local / checkpoint_integrity.RUN_KEY_FILE
        )
        shutil.rmtree(incoming, ignore_errors=True)
        for old in checkpoint_integrity.complete_checkpoints(local):
            if step_of(old) != step:
                shutil.rmtree(old, ignore_errors=True)
        self.copied[d] = step
        self.runner.logger.info(
            f"{self._label()}: copied {d}/{name} to the submit host "
            f"({_size(local / name)} in {time.monotonic() - t0:.1f} s)"
        )
        return True

    def remove_local(self) -> None:
        """After the job succeeded."""
        for d in self.copied:
            shutil.rmtree(d, ignore_errors=True)
        self.copied = {}


def _size(path: Path) -> str:
    n = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"
