"""The stand-in executor this project's Snakemake executor plugins register when what they need is
not installed. Snakemake imports every installed executor plugin at every start, whichever
executor runs, so a plugin must import without its dependency; its stand-in refuses in one line
only when it is selected."""

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor


def refusing_executor(message: str) -> type[RemoteExecutor]:
    """An executor class whose every use raises ``message`` (cancelling has nothing to cancel)."""

    class Executor(RemoteExecutor):
        def __post_init__(self):
            raise WorkflowError(message)

        def run_job(self, job):
            raise WorkflowError(message)

        async def check_active_jobs(self, active_jobs):
            raise WorkflowError(message)
            yield

        def cancel_jobs(self, active_jobs):
            pass

    return Executor
