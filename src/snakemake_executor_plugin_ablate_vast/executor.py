"""Vast.ai executor: snakemake-executor-plugin-vastai 0.1.4 with this project's workarounds.

Registered as the executor plugin ``ablate-vast``; offer search, renting, SSH transfer and
teardown are the stock plugin's. The workarounds, pinned to ``PLUGIN_VERSION`` (another version
is refused at start; what each fixed: docs/profiles.md, docs/reliability.md):

1. Lost instance: when SSH fails the API is asked; a gone instance fails the job at once.
2. SIGTERM destroys every rented instance, then stops as Ctrl-C (Snakemake's scheduler replaced
   the plugin's handler with one that waits for the jobs).
3. A failed job's ``log:`` files are fetched before its instance is destroyed.
4. Group jobs: every product of every job of the group is fetched.
5. Cores: jobs get ``--cores all``, not the submit host's count.
6. Training checkpoints are copied off the instance while the job runs (``checkpoints.py``).
7. Detached start: the stock ``nohup ... &`` held the SSH session until the job ended.
8. Cancelled jobs: a failure once the job's cancel event is set is the cancel's.
9. Credentials go to an instance only with ``forward-credentials``.
10. Setup pip: the stock setup's ``pip install`` runs only when a pin is missing.
11. A Ctrl-C during a status check cancels its jobs too (``CancelsEveryJob``).

The API key is read from the environment only (``VAST_API_KEY``).
"""

# No `from __future__ import annotations`: Snakemake builds CLI options from the real field types.
import importlib.metadata
import json
import math
import os
import shlex
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Optional

import snakemake_executor_plugin_vastai as _stock
from snakemake_executor_plugin_vastai.sshtransfer import REMOTE_WORKDIR, SSHJobRunner, TransferError
from snakemake_interface_common.exceptions import WorkflowError

from ablate.core.execution import spend as spend_record
from ablate.upstream.executors import CancelsEveryJob
from snakemake_executor_plugin_ablate_vast.checkpoints import CheckpointCopies
from snakemake_executor_plugin_ablate_vast.spend import DEFAULT_FORECAST_H, SpendMeter

PLUGIN_VERSION = "0.1.4"
PLUGIN_NAME = "ablate-vast"
_API_KEY_ENV = "VAST_API_KEY"
# what Snakemake reads for the api_key setting of this plugin (the setting's env var)
_SETTING_KEY_ENV = "SNAKEMAKE_ABLATE_VAST_API_KEY"
# API states after which the instance cannot come back
_GONE_STATES = {None, "exited", "stopped", "destroyed"}


@dataclass
class ExecutorSettings(_stock.ExecutorSettings):
    lost_after: int = field(
        default=300,
        metadata={
            "help": "Seconds a running job's instance may stay unreachable by SSH (while the API "
            "does not report it destroyed or exited) before the job is failed and its instance "
            "destroyed, so that --retries resubmits it elsewhere.",
        },
    )
    poll_seconds: int = field(
        default=15,
        metadata={"help": "Seconds between two checks of a running job's exit code over SSH."},
    )
    bid: Optional[float] = field(  # noqa: UP045 - Snakemake parses typing.Optional
        default=None,
        metadata={
            "help": "Rent interruptible instances at this bid in USD per hour, capped by "
            "max-price (the on-demand price cap); offers whose minimum bid is above it are "
            "skipped. An outbid instance is stopped; its job moves to a new instance and resumes "
            "from its last copied checkpoint. Unset: on-demand instances.",
        },
    )
    max_spend: Optional[float] = field(  # noqa: UP045 - Snakemake parses typing.Optional
        default=None,
        metadata={
            "help": "Spending bound of the run in USD: an instance is rented only if the spend so "
            "far, the running instances' forecast cost and the new one's price x its job's "
            "runtime resource stay within it; the run stops (every instance destroyed) when the "
            "spend so far reaches it. Unset: no bound.",
        },
    )
    forward_credentials: bool = field(
        default=False,
        metadata={
            "help": "Forward the submitting shell's cloud credentials (AWS_*, AZURE_STORAGE_*, "
            "GOOGLE_CLOUD_PROJECT and the GOOGLE_APPLICATION_CREDENTIALS file's content) to "
            "every rented instance, for a default storage provider there. Unset: they stay "
            "here. A storage plugin's own settings and declared envvars are forwarded by "
            "Snakemake either way.",
        },
    )

    def __post_init__(self):
        # Workaround (9): the stock plugin reads only its opt-out, default off (so forwarding).
        self.no_forward_credentials = self.no_forward_credentials or not self.forward_credentials


# The status loop only reads what the runner threads recorded (no API call in SSH mode), so
# there is no reason to wait the stock 30 s before the first look.
common_settings = replace(_stock.common_settings, init_seconds_before_status_checks=5)


def plugin_version() -> str:
    return importlib.metadata.version("snakemake-executor-plugin-vastai")


# Run on the instance: exit 1 unless every requirement is installed (== pins at that version).
_CHECK_REQUIREMENTS = """\
import importlib.metadata as md, json, re, sys
for req in json.loads(sys.argv[1]):
    name, op, version = re.fullmatch(r"([A-Za-z0-9_.-]+)\\s*(==|>=|)\\s*(.*)", req).groups()
    try:
        found = md.version(name)
    except md.PackageNotFoundError:
        sys.exit(f"missing {name}")
    if op == "==" and found != version:
        sys.exit(f"{name} {found} != {version}")
"""


def remote_project_setup(requirements: list[str]) -> str:
    """Shell lines run on the instance before the job: the shipped src/ first on PYTHONPATH, pip
    only when a pin is missing; torch is the image's (its CUDA build matches the host's driver),
    installed at the pin only where the image has none."""
    torch = [r for r in requirements if r.replace(" ", "").startswith("torch")]
    pins = [r for r in requirements if r not in torch]
    quoted = " ".join(shlex.quote(p) for p in pins)
    lines = [
        'export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"',
        f"python -c {shlex.quote(_CHECK_REQUIREMENTS)} {shlex.quote(json.dumps(pins))} || {{",
        f"  echo '[ablate-vast] installing {len(pins)} pinned requirement(s)'",
        f"  python -m pip install --quiet {quoted}",
        "}",
    ]
    if torch:
        has_torch = "import importlib.util as u, sys; sys.exit(not u.find_spec('torch'))"
        lines.append(
            f"python -c {shlex.quote(has_torch)} || python -m pip install --quiet "
            f"{shlex.quote(torch[0])}"
        )
    return "\n".join(lines) + "\n"


def stock_bootstrap_pins(bootstrap: str) -> list[str]:
    """The packages the stock bootstrap (``snakemake_bootstrap_script``: an echo line, then
    ``python -m pip install --quiet "snakemake==X" ...``) installs, as its pip line names them."""
    pip = "python -m pip install --quiet "
    lines = [line for line in bootstrap.splitlines() if line.startswith(pip)]
    if len(lines) != 1:
        raise WorkflowError(
            f"executor {PLUGIN_NAME}: the stock job setup has {len(lines)} pip lines, not 1: "
            "re-check workaround (10) in snakemake_executor_plugin_ablate_vast/executor.py"
        )
    return shlex.split(lines[0][len(pip) :])


def project_requirements() -> list[str]:
    """The installed ablate's runtime requirements (the pins of pyproject.toml)."""
    reqs = importlib.metadata.requires("ablate") or []
    return [r.split(";")[0].strip() for r in reqs if "extra ==" not in r]


def offer_price(offer: dict, bid: float | None) -> float | None:
    """USD per hour an instance of ``offer`` costs at most: the bid, else its ``dph_total``
    (storage included). None, bid or not, when ``dph_total`` is no positive number: the spending
    bound cannot count it, so it is refused, never taken as free."""
    try:
        price = float(offer.get("dph_total"))
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(price) and price > 0):
        return None
    return price if bid is None else bid


def settings_error(settings) -> str | None:
    """One line naming executor settings that cannot work together; None when they can."""
    if settings.bid is not None and not settings.bid > 0:
        return f"{PLUGIN_NAME}-bid {settings.bid}: a bid is a price in USD per hour above 0"
    if settings.bid is not None and settings.max_price is not None:
        if settings.bid > settings.max_price:
            return (
                f"{PLUGIN_NAME}-bid {settings.bid} is above {PLUGIN_NAME}-max-price "
                f"{settings.max_price}: a bid is capped by the on-demand price cap"
            )
    if settings.forward_credentials and settings.no_forward_credentials:
        return (
            f"{PLUGIN_NAME}-forward-credentials and {PLUGIN_NAME}-no-forward-credentials are both "
            "set: keep one (credentials stay here unless forward-credentials is set)"
        )
    return None


class GuardedSSHJobRunner(SSHJobRunner):
    """The stock SSH runner with workarounds 1, 3, 4, 6 and 8."""

    copies = None  # the job's CheckpointCopies, once uploaded

    def _upload(self):
        super()._upload()
        self.copies = CheckpointCopies(self)
        self.copies.ship_newest()

    def _sync_checkpoints(self) -> None:
        if self.copies is not None:
            self.copies.sync()

    def _instance_status(self):
        """actual_status; None when the API says the instance is gone; False on API error."""
        try:
            inst = self.vast.show_instance(self.instance_id)
        except Exception:
            return False
        if isinstance(inst, list):
            inst = inst[0] if inst else None
        return inst.get("actual_status") if inst else None

    def _execute(self) -> int:
        # Start the job as the stock runner does (0.1.4 sshtransfer.SSHJobRunner._execute) ...
        self._check_cancelled()
        script = (
            f"cd {REMOTE_WORKDIR}\n{self.executor.job_setup_script()}"
            f"{self.exec_job}\necho $? > exit_code\n"
        )
        self._ssh(f"cat > {REMOTE_WORKDIR}/job.sh", input_text=script)
        # ... but detached for real (workaround 7) ...
        self._ssh(f"cd {REMOTE_WORKDIR} && (nohup sh job.sh > job.log 2>&1 < /dev/null &)")
        # ... and poll with a bound: ssh exits 255 when the host is unreachable.
        unreachable_since = None
        while True:
            self._check_cancelled()
            res = self._ssh(
                f"cat {REMOTE_WORKDIR}/exit_code 2>/dev/null || true", check=False, timeout=60
            )
            if res.returncode == 0:
                unreachable_since = None
                if res.stdout.strip():
                    code = int(res.stdout.strip())
                    if code != 0:  # e.g. interrupted after saving: keep that checkpoint too
                        self._sync_checkpoints()
                    return code
                self._sync_checkpoints()
            else:
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                status = self._instance_status()
                waited = now - unreachable_since
                if status in _GONE_STATES or waited > self.settings.lost_after:
                    raise TransferError(
                        f"instance lost mid-job (API status {status!r}, no SSH for {waited:.0f} s,"
                        f" limit --ablate-vast-lost-after {self.settings.lost_after} s): "
                        f"{res.stderr.strip()}"
                    )
                self.logger.warning(
                    f"Vast.ai instance {self.instance_id}: no SSH for {waited:.0f} s "
                    f"(API status {status!r}); failing the job after {self.settings.lost_after} s"
                )
            time.sleep(self.settings.poll_seconds)

    def _download_outputs(self):
        """Workaround (4): every product of every job of the group, not only its outputs."""
        job = self.job
        files = list(dict.fromkeys(f for j in getattr(job, "jobs", [job]) for f in j.products()))
        self.job = SimpleNamespace(output=files, log=[])
        try:
            super()._download_outputs()
        finally:
            self.job = job

    def _finish(self, outcome):
        if outcome[0] != "success" and self.cancel_event.is_set():  # workaround (8)
            self.executor._destroy_instance(self.instance_id)  # no-op: the canceller did
            return
        if outcome[0] != "success" and self.host and self.port and self.job.log:
            self._download_job_logs()
        if outcome[0] == "success" and self.copies is not None:
            self.copies.remove_local()
        super()._finish(outcome)

    def _download_job_logs(self) -> None:
        """Fetch the rule's log: files with the stock packer, which sends output + log files."""
        job = self.job
        self.job = SimpleNamespace(output=[], log=job.log)
        try:
            SSHJobRunner._download_outputs(self)
            self.logger.info(
                f"Vast.ai instance {self.instance_id}: fetched the failed job's "
                f"log(s): {', '.join(map(str, job.log))}"
            )
        except Exception as e:  # the instance may be gone: the job's error is what matters
            self.logger.warning(
                f"Vast.ai instance {self.instance_id}: could not fetch the failed job's log(s): {e}"
            )
        finally:
            self.job = job


def _cancel(jobs) -> None:
    """Set each job's cancel event: its runner stops quietly (workaround 8)."""
    for job_info in jobs:
        if (event := job_info.aux.get("cancel_event")) is not None:
            event.set()


class Executor(CancelsEveryJob, _stock.Executor):
    def __post_init__(self):
        found = plugin_version()
        if found != PLUGIN_VERSION:
            raise WorkflowError(
                f"executor {PLUGIN_NAME} patches snakemake-executor-plugin-vastai=={PLUGIN_VERSION}"
                f" internals but {found} is installed: pin {PLUGIN_VERSION} or re-check the "
                "workarounds in snakemake_executor_plugin_ablate_vast/executor.py against the new version"
            )
        settings = self.workflow.executor_settings
        if settings.api_key is not None and settings.api_key != os.environ.get(_SETTING_KEY_ENV):
            raise WorkflowError(
                f"the Vast.ai API key came from a profile or the command line: remove "
                f"{PLUGIN_NAME}-api-key there and export {_API_KEY_ENV} instead"
            )
        key = settings.api_key or os.environ.get(_API_KEY_ENV)
        if not key:
            raise WorkflowError(
                f"no Vast.ai API key: export {_API_KEY_ENV}=<your key> "
                "(cloud.vast.ai/manage-keys); it is never read from a file"
            )
        settings.api_key = key  # explicit, so the SDK does not fall back to its key files
        self._sigterm_installed = False
        self._spend_stopped = False  # the run stopped at the spending bound (status thread)
        if msg := settings_error(settings):
            raise WorkflowError(msg)
        self.spend = SpendMeter(settings.max_spend)
        super().__post_init__()

    @property
    def cores(self):
        """Workaround (5): the instance's cores, not the submit host's ``--cores``."""
        return "all"

    def job_setup_script(self) -> str:
        """Workaround (10): the stock setup, its pip line's pins checked with the project's."""
        stock = super().job_setup_script()
        bootstrap = _stock.snakemake_bootstrap_script(with_storage_plugins=not self.storage_mode)
        if not stock.endswith(bootstrap):
            raise WorkflowError(
                f"executor {PLUGIN_NAME}: the stock job setup no longer ends with its snakemake "
                "bootstrap: re-check workaround (10) in "
                "snakemake_executor_plugin_ablate_vast/executor.py"
            )
        pins = [*stock_bootstrap_pins(bootstrap), *project_requirements()]
        return stock[: -len(bootstrap)] + remote_project_setup(list(dict.fromkeys(pins)))

    def run_job(self, job):
        self._install_sigterm_teardown()
        # the stock run_job builds its runner from this module global: swapped for the call
        # (main thread only, so no other submission sees it)
        _stock.SSHJobRunner = GuardedSSHJobRunner
        try:
            with self._metered(job):
                super().run_job(job)
        finally:
            _stock.SSHJobRunner = SSHJobRunner

    @contextmanager
    def _metered(self, job):
        """The spending bound around the stock run_job: its offer search and instance creation
        (main thread only) go through the meter (spend.py)."""
        runtime = job.resources.get("runtime")
        forecast_h = float(runtime) / 60 if runtime else DEFAULT_FORECAST_H
        search, create = self.vast.search_offers, self.vast.create_instance
        bid = self.settings.bid
        prices = {}

        def metered_search(*args, **kwargs):
            if bid is not None:
                kwargs["type"] = "bid"
            offers = search(*args, **kwargs) or []
            if bid is not None:  # offers this bid can win
                offers = [o for o in offers if float(o.get("min_bid") or 0) <= bid]
            unpriced = [o for o in offers if offer_price(o, bid) is None]
            if unpriced:
                self.logger.warning(
                    f"job {job.name}: {len(unpriced)} Vast.ai offer(s) without a positive price "
                    f"skipped (dph_total {', '.join(repr(o.get('dph_total')) for o in unpriced)}): "
                    "the spending bound cannot count them"
                )
            offers = [o for o in offers if o not in unpriced]
            prices.update({o["id"]: offer_price(o, bid) for o in offers})
            fitting = [o for o in offers if self.spend.admits(prices[o["id"]], forecast_h)]
            if offers and not fitting:
                cheapest = min(prices[o["id"]] for o in offers)
                self._stop_for_spend(
                    f"job {job.name} would add ${cheapest * forecast_h:.4f} "
                    f"(${cheapest:.3f}/h x {forecast_h:.3g} h forecast) to "
                    f"${self.spend.committed():.4f} committed"
                )
            return fitting

        def metered_create(*args, **kwargs):
            price = prices[kwargs["id"]]  # an offer the metered search priced, before renting
            if bid is not None:
                kwargs["price"] = price
            response = create(*args, **kwargs)
            if response.get("success"):
                iid = response["new_contract"]
                self.spend.rented(iid, price, forecast_h)
                self._write_spend()
            return response

        self.vast.search_offers, self.vast.create_instance = metered_search, metered_create
        try:
            yield
        finally:
            del self.vast.search_offers, self.vast.create_instance  # the methods again

    def _stop_for_spend(self, why: str):
        message = self.spend.message(why)
        self.logger.error(message)
        self._write_spend()
        raise WorkflowError(message)

    def _write_spend(self) -> None:
        try:
            spend_record.write(".", self.spend.record())
        except OSError as e:  # the record is for reading; renting goes on
            self.logger.warning(f"could not write {spend_record.SPEND_FILE}: {e}")

    def _destroy_instance(self, instance_id: int):
        super()._destroy_instance(instance_id)
        if instance_id in self._destroyed_instances:
            self.spend.ended(instance_id)
            self._write_spend()

    async def check_active_jobs(self, active_jobs):
        if self.spend.reached() and not self._spend_stopped:
            self._stop_running_for_spend(active_jobs)
        if self._spend_stopped:  # the scheduler is shutting down: nothing left to look at
            return
        self._write_spend()
        async for job_info in super().check_active_jobs(active_jobs):
            yield job_info

    def _stop_running_for_spend(self, active_jobs) -> None:
        """The bound reached while jobs run: they are cancelled, every instance destroyed, and
        the scheduler told once. The error is handed over, not raised: a raise from this status
        thread is printed twice, with this module's traceback."""
        self._spend_stopped = True
        _cancel(active_jobs)
        for instance_id in sorted(self._rented_instances - self._destroyed_instances):
            self._destroy_instance(instance_id)
        error = WorkflowError(self.spend.message("the spend so far reached the bound"))
        self._write_spend()
        if self.workflow.scheduler is None:
            raise error
        self.workflow.scheduler.executor_error_callback(error)

    def _install_sigterm_teardown(self) -> None:
        """Workaround (2), at the first submission: after the scheduler's own handler."""
        if self._sigterm_installed or threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)

        def teardown(signum, frame):
            signal.signal(signal.SIGTERM, previous)  # a second SIGTERM gets Snakemake's handler
            self.logger.warning(
                "SIGTERM: destroying every rented Vast.ai instance, then stopping as on Ctrl-C"
            )
            _cancel(list(self.active_jobs))
            self._emergency_cleanup()
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, teardown)
        self._sigterm_installed = True
