"""A one-node SLURM cluster on localhost for tests (munged, slurmctld, slurmd; Debian's slurm-wlm).

Every daemon runs in the foreground (-F/-D) as a child of this process and is stopped by the PID
recorded at start; nothing is left behind. Fake GPUs (char devices made with mknod, as 22.05
drops file-less GPUs) let `--gpus=N` jobs schedule. Usable by hand:

    python tests/cluster/slurm_local.py start /tmp/slurm-local   # prints partitions, PIDs
    python tests/cluster/slurm_local.py stop /tmp/slurm-local
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# slurmstepd's inner srun drops SLURM_CONF, so the config must sit at the default path.
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
APT_PACKAGES = ["slurm-wlm", "munge"]
PARTITION = "debug"  # the default partition
EXTRA_PARTITION = "gpu"  # not the default: a job lands there only when asked (-p)
GPU_TYPE = "fake"
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")


def missing_tools() -> list[str]:
    return [
        t
        for t in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")
        if shutil.which(t) is None and not Path("/usr/sbin", t).exists()
    ]


def apt_install(packages: list[str]) -> None:
    """apt-get install (CI: a fresh Debian machine, root); ~12 s for slurm-wlm + munge."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"apt-get install {' '.join(packages)}", file=sys.stderr, flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def ensure_packages() -> None:
    """Debian's slurm-wlm and munge, installed when missing."""
    if not missing_tools():
        return
    apt_install(APT_PACKAGES)
    if missing_tools():
        raise RuntimeError(f"still missing after apt-get: {missing_tools()}")


def _mem_mb() -> int:
    with open("/proc/meminfo") as f:
        total_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return total_kb // 1024 * 9 // 10


def write_config(root: Path, gpus: int) -> Path:
    etc = root / "etc"
    for d in ("etc", "ctld", "spool", "log"):
        (root / d).mkdir(parents=True, exist_ok=True)
    devs = []
    for i in range(gpus):
        dev = etc / f"fakegpu{i}"
        if not dev.exists():
            subprocess.run(["mknod", str(dev), "c", "1", "3"], check=True)  # a /dev/null twin
        devs.append(dev)
    if gpus:
        (etc / "gres.conf").write_text(
            f"Name=gpu Type={GPU_TYPE} File={etc}/fakegpu[0-{gpus - 1}]\n"
        )
    node_gres = f"Gres=gpu:{GPU_TYPE}:{gpus}" if gpus else ""
    conf = etc / "slurm.conf"
    conf.write_text(f"""\
ClusterName=ablate-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation={root}/ctld
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
{"GresTypes=gpu" if gpus else ""}
ReturnToService=2
MinJobAge=7200
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
SchedulerParameters=sched_interval=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={_mem_mb()} {node_gres} \
State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName={EXTRA_PARTITION} Nodes=ALL Default=NO MaxTime=INFINITE State=UP
""")
    return conf


def _wait(check, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"slurm_local: {what} not ready after {timeout:.0f} s")


def _munge_works() -> bool:
    if not MUNGE_SOCKET.exists():
        return False
    cred = subprocess.run(["munge", "-n"], capture_output=True)
    return cred.returncode == 0 and _ok_input(["unmunge"], cred.stdout)


def _ok_input(cmd: list[str], data: bytes) -> bool:
    return subprocess.run(cmd, input=data, capture_output=True).returncode == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_link() -> str | None:
    """Remove the config link a killed test session left (its cluster's teardown never ran): a
    link into the temporary folder to a cluster whose daemons are gone. While it is there every
    `scontrol` waits 9 s for that controller, and the SLURM executor plugin runs one at each
    snakemake start (snakemake_executor_plugin_slurm.job_status_query.get_min_job_age): every
    snakemake call of the suite paid it. A real configuration (a file, or a link elsewhere) is
    never touched. Says what it removed."""
    if not DEFAULT_CONF.is_symlink():
        return None
    target = Path(os.readlink(DEFAULT_CONF))
    root = target.parent.parent
    if target.name != "slurm.conf" or not target.is_relative_to(tempfile.gettempdir()):
        return None
    try:
        pids = json.loads((root / "pids.json").read_text())["pids"].values()
    except (OSError, ValueError, KeyError, AttributeError):
        pids = []
    if any(_alive(int(p)) for p in pids):
        return None
    DEFAULT_CONF.unlink(missing_ok=True)  # another process of the session may have been first
    return f"removed {DEFAULT_CONF} -> {target}: a test cluster's link that a killed session left"


def start(root: Path, gpus: int = 2) -> dict:
    """Start the cluster; returns {"partition", "root", "pids"} (also written to root/pids.json)."""
    root = Path(root).resolve()
    remove_stale_link()
    if DEFAULT_CONF.exists() and not (
        DEFAULT_CONF.is_symlink() and Path(os.readlink(DEFAULT_CONF)).is_relative_to(root)
    ):
        raise RuntimeError(
            f"{DEFAULT_CONF} exists and is not ours: refusing to replace a real SLURM configuration"
        )
    ensure_packages()
    conf = write_config(root, gpus)
    DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
    DEFAULT_CONF.unlink(missing_ok=True)
    DEFAULT_CONF.symlink_to(conf)
    pids: dict[str, int] = {}
    state = {
        "partition": PARTITION,
        "extra_partition": EXTRA_PARTITION,
        "root": str(root),
        "pids": pids,
        "gpu_type": GPU_TYPE,
    }

    def spawn(name: str, argv: list[str], **kw) -> None:
        with open(root / "log" / f"{name}.fg.log", "w") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kw
            )
        pids[name] = proc.pid
        (root / "pids.json").write_text(json.dumps(state))

    try:
        if not _munge_works():  # a munged that is already running (not ours) is reused
            run = Path("/run/munge")
            run.mkdir(parents=True, exist_ok=True)
            shutil.chown(run, "munge", "munge")
            if not Path("/etc/munge/munge.key").exists():
                subprocess.run(["mungekey", "--create"], check=True)
                shutil.chown("/etc/munge/munge.key", "munge", "munge")
            spawn("munged", ["/usr/sbin/munged", "-F"], user="munge", group="munge")
            _wait(_munge_works, "munged", 10)
        env = dict(os.environ, SLURM_CONF=str(conf))
        spawn("slurmctld", ["/usr/sbin/slurmctld", "-D", "-f", str(conf)], env=env)
        _wait(
            lambda: (
                b"UP" in subprocess.run(["scontrol", "ping"], capture_output=True, env=env).stdout
            ),
            "slurmctld",
            20,
        )
        spawn("slurmd", ["/usr/sbin/slurmd", "-D", "-N", "localhost", "-f", str(conf)], env=env)
        _wait(
            lambda: (
                set(
                    subprocess.run(
                        ["sinfo", "-h", "-o", "%T"], capture_output=True, env=env
                    ).stdout.split()
                )
                == {b"idle"}
            ),
            "slurmd (node idle)",
            30,
        )
    except BaseException:
        stop(root)
        raise
    return state


def alive(pid: int) -> bool:
    """True while pid runs; a zombie (exited, parent gone or not reaping) counts as stopped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _stop_pid(name: str, pid: int, timeout: float = 10) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # reap our own child; for a PID from another process (CLI stop) just poll
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            if not alive(pid):
                return
        time.sleep(0.1)
    print(f"slurm_local: {name} ({pid}) ignored SIGTERM, sending SIGKILL", file=sys.stderr)
    os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def stop(root: Path) -> None:
    """Cancel all jobs; stop slurmd, slurmctld, munged (ours only) by PID; drop the config link."""
    root = Path(root).resolve()
    state_file = root / "pids.json"
    pids = json.loads(state_file.read_text())["pids"] if state_file.exists() else {}
    if "slurmctld" in pids:
        subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True, timeout=30)
        # give slurmd a moment to reap the job steps it started before it goes down
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline
            and subprocess.run(["squeue", "-h"], capture_output=True).stdout.strip()
        ):
            time.sleep(0.2)
    for name in ("slurmd", "slurmctld", "munged"):
        if name in pids:
            _stop_pid(name, pids[name])
    if DEFAULT_CONF.is_symlink() and Path(os.readlink(DEFAULT_CONF)).is_relative_to(root):
        DEFAULT_CONF.unlink()
    state_file.unlink(missing_ok=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: slurm_local.py start|stop ROOT")
    if sys.argv[1] == "start":
        print(json.dumps(start(Path(sys.argv[2]))))
    else:
        stop(Path(sys.argv[2]))
