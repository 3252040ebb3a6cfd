"""ablate.upstream.executors: Snakemake's remote executor loses a cancel that comes during a
status check (the pinned snakemake-interface-executor-plugins' ``RemoteExecutor``); the mixin both
executor plugins put first in their bases cancels the jobs of that check too."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor

from ablate.upstream.executors import CancelsEveryJob


class StockLike:
    """What the mixin and the stock loop read of a remote executor; its status check is where a
    Ctrl-C lands: it cancels (``cancel``) while the check is under way."""

    def __init__(self, jobs):
        self.lock = threading.Lock()
        self.active_jobs = list(jobs)
        self.wait = True
        self.cancelled = None
        self.workflow = SimpleNamespace(
            executor_plugin=SimpleNamespace(
                common_settings=SimpleNamespace(init_seconds_before_status_checks=0)
            )
        )

    async def check_active_jobs(self, active_jobs):
        self.cancel()  # the signal, mid-check
        for job in active_jobs:
            yield job  # still running

    def cancel(self):
        RemoteExecutor.cancel(self)

    def cancel_jobs(self, jobs):
        self.cancelled = list(jobs)

    def shutdown(self):
        self.wait = False

    async def sleep(self):
        pass


class Patched(CancelsEveryJob, StockLike):
    def cancel(self):
        CancelsEveryJob.cancel(self)


def test_a_cancel_during_a_status_check_cancels_its_jobs():
    jobs = [SimpleNamespace(name="a"), SimpleNamespace(name="b")]
    stock = StockLike(jobs)
    asyncio.run(RemoteExecutor._wait_for_jobs(stock))  # the stock status loop, one round
    assert stock.cancelled == []  # the upstream fault: the check had taken the jobs out
    patched = Patched(jobs)
    asyncio.run(RemoteExecutor._wait_for_jobs(patched))
    assert patched.cancelled == jobs


class Finished(StockLike):
    """A check that finds ``done`` finished (not yielded) and the others running; no signal."""

    async def check_active_jobs(self, active_jobs):
        for job in active_jobs:
            if job.name != "done":
                yield job


class PatchedFinished(CancelsEveryJob, Finished):
    def cancel(self):
        CancelsEveryJob.cancel(self)


def test_a_cancel_after_a_check_cancels_the_running_jobs_once_and_not_the_finished():
    running, done, new = (SimpleNamespace(name=n) for n in ("running", "done", "new"))
    ex = PatchedFinished([running, done])
    ex.shutdown = lambda: None  # one round: the loop's own end is not what this checks
    ex.sleep = lambda: _stop(ex)
    asyncio.run(RemoteExecutor._wait_for_jobs(ex))
    assert ex.active_jobs == [running] and ex.jobs_in_check == (running,)
    ex.active_jobs.append(new)  # submitted since
    ex.cancel()
    assert ex.cancelled == [running, new]


async def _stop(ex):
    ex.wait = False


def test_both_executor_plugins_put_the_mixin_first():
    import pytest

    from snakemake_executor_plugin_ablate_vast.executor import Executor as Vast

    assert Vast.__mro__[1] is CancelsEveryJob
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from snakemake_executor_plugin_ablate_slurm import Executor as Slurm

    assert Slurm.__mro__[1] is CancelsEveryJob
