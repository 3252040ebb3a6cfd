"""ablate.executor_standin: the executor a plugin registers when its dependency is missing imports
and registers fine, and refuses with the plugin's one-line message only when it is used."""

from __future__ import annotations

import asyncio

import pytest
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor

from ablate.executor_standin import refusing_executor

MESSAGE = "the ablate-vast executor needs vastai: pip install vastai"


def test_starting_submitting_and_checking_each_refuse_with_the_message():
    executor = refusing_executor(MESSAGE)
    assert issubclass(executor, RemoteExecutor)
    stand_in = object.__new__(executor)  # RemoteExecutor's __init__ needs a running workflow
    with pytest.raises(WorkflowError, match=MESSAGE):
        stand_in.__post_init__()
    with pytest.raises(WorkflowError, match=MESSAGE):
        stand_in.run_job(job=None)
    with pytest.raises(WorkflowError, match=MESSAGE):
        asyncio.run(anext(stand_in.check_active_jobs([])))


def test_cancelling_has_nothing_to_cancel():
    stand_in = object.__new__(refusing_executor(MESSAGE))
    assert stand_in.cancel_jobs([]) is None


def test_each_message_makes_its_own_class():
    assert refusing_executor("a") is not refusing_executor("b")
