"""A local stand-in for the Vast.ai REST API whose instances are real sshd processes.

The vastai SDK talks to it when VAST_URL=http://127.0.0.1:<port> (read when the SDK is
imported). Each rented "instance" is `sshd -D` inside its own mount + PID namespace (unshare): the
instance's directory is bind-mounted on /snakemake-workdir and its key folder on /root/.ssh, so
parallel instances do not collide and destroying one (SIGKILL of the namespace's init) kills
everything that ran on it, like a container teardown. The instance's files stay on the host under
<state>/inst<ID>/workdir for the test to inspect.

Endpoints used by snakemake-executor-plugin-vastai 0.1.4 (paths under /api/v0): search offers
POST /bundles/, create PUT /asks/<offer>/, show GET /instances/<id>/, attach key POST
/instances/<id>/ssh/, destroy DELETE /instances/<id>/, reboot, request_logs. Every API call is
recorded in `calls`. Test controls (Python): preempt(id), outbid(id), fail_next_creates(n),
price_h (the offers' and instances' $/h).

Run by hand: python tests/cluster/fake_vast.py STATE_DIR  (prints the port; Ctrl-C stops all).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

MOUNTPOINT = "/snakemake-workdir"
API_KEY = "test-key"  # what the fake accepts as "Authorization: Bearer <key>"


def sshd_path() -> str:
    path = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(path).exists():
        raise RuntimeError("sshd not found: apt-get install openssh-server")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeVast:
    """The fake API server plus its instances. `remote_path` is PATH inside an instance."""

    def __init__(self, state_dir: Path, remote_path: str, boot_seconds: float = 0.0):
        self.state = Path(state_dir)
        self.state.mkdir(parents=True, exist_ok=True)
        self.remote_path = remote_path
        self.boot_seconds = boot_seconds
        self.price_h = 0.30  # on-demand $/h of the cheapest offer (and of every instance)
        self.lock = threading.Lock()
        self.instances: dict[int, dict] = {}
        self.calls: list[dict] = []
        self._next_id = 1000
        self._create_failures = 0
        self.host_key = self.state / "ssh_host_ed25519_key"
        if not self.host_key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key)],
                check=True,
            )
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeVast:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Kill every instance namespace still alive, then the server."""
        for inst in list(self.instances.values()):
            self._kill(inst)
        self.server.shutdown()
        self.server.server_close()

    # ---- test controls ---------------------------------------------------------------------
    def fail_next_creates(self, n: int) -> None:
        """The next n create calls answer 'offer no longer available' (offer taken meanwhile)."""
        with self.lock:
            self._create_failures = n

    def preempt(self, iid: int) -> None:
        """The host vanishes mid-job: its processes die, the API says 'offline' (not gone)."""
        inst = self.instances[iid]
        self._kill(inst)
        with self.lock:
            inst["actual_status"] = "offline"
            inst["status_msg"] = "host offline (preempted by the fake)"

    def outbid(self, iid: int) -> None:
        """An interruptible instance outbid: Vast stops its container (its processes die, its
        disk stays) and the API says 'stopped' until it is destroyed or wins the bid again."""
        inst = self.instances[iid]
        self._kill(inst)
        with self.lock:
            inst["actual_status"] = inst["intended_status"] = "stopped"
            inst["status_msg"] = "outbid (stopped by the fake)"

    def alive(self) -> list[int]:
        """Instances whose namespace still runs (billing, on the real service)."""
        return [
            i
            for i, inst in self.instances.items()
            if inst.get("_proc") is not None and inst["_proc"].poll() is None
        ]

    def workdir(self, iid: int) -> Path:
        return self.state / f"inst{iid}" / "workdir"

    # ---- instances -------------------------------------------------------------------------
    def _boot(self, inst: dict) -> None:
        """sshd in a fresh mount+PID namespace; the plugin's onstart script runs first, as on
        Vast, and writes the per-run key into the instance's /root/.ssh."""
        idir = self.state / f"inst{inst['id']}"
        for d in ("workdir", "dotssh"):
            (idir / d).mkdir(parents=True, exist_ok=True)
        (idir / "dotssh").chmod(0o700)
        (idir / "empty_bashrc").write_text("")
        (idir / "onstart.sh").write_text(inst.get("onstart") or "")
        port = _free_port()
        cfg = idir / "sshd_config"
        cfg.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile none
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
Subsystem sftp internal-sftp
SetEnv PATH={self.remote_path}
""")
        os.makedirs(MOUNTPOINT, exist_ok=True)  # empty mount points on the host
        os.makedirs("/root/.ssh", mode=0o700, exist_ok=True)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        binds = [
            f"mount --bind {idir}/workdir {MOUNTPOINT}",
            f"mount --bind {idir}/dotssh /root/.ssh",
        ]
        if os.path.exists("/root/.bashrc"):  # a login shell's rc must not put host shims on PATH
            binds.append(f"mount --bind {idir}/empty_bashrc /root/.bashrc")
        inner = (
            "set -e; export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            + "; "
            + "; ".join(binds)
            + f"; HOME=/root sh {idir}/onstart.sh > {idir}/onstart.log 2>&1 || true"
            + f"; exec {sshd_path()} -D -e -f {cfg}"
        )
        with open(idir / "sshd.log", "w") as log:
            proc = subprocess.Popen(
                [
                    "unshare",
                    "-m",
                    "-p",
                    "-f",
                    "--kill-child",
                    "--mount-proc",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    inner,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        inst["_proc"], inst["_dir"] = proc, idir
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(
                f"fake instance {inst['id']}: sshd not listening, see {idir}/sshd.log"
            )
        with self.lock:
            inst["ssh_port"] = port
            if inst["actual_status"] == "loading":
                inst["actual_status"], inst["status_msg"] = "running", "success, running"

    def _boot_later(self, inst: dict) -> None:
        time.sleep(self.boot_seconds)
        if inst["actual_status"] == "loading":
            self._boot(inst)
            if inst["actual_status"] != "running":  # destroyed while booting
                self._kill(inst)

    @staticmethod
    def _kill(inst: dict) -> None:
        proc = inst.get("_proc")
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)  # --kill-child: the whole namespace goes
            proc.wait()

    def create(self, offer: int, body: dict) -> tuple[int, dict]:
        with self.lock:
            if self._create_failures > 0:
                self._create_failures -= 1
                return 400, {
                    "success": False,
                    "error": "no_such_ask",
                    "msg": "Instance type no longer available.",
                }
            iid = self._next_id
            self._next_id += 1
            inst = {
                "id": iid,
                "ask_id": offer,
                "machine_id": 77,
                "actual_status": "loading",
                "intended_status": "running",
                "status_msg": "pulling image",
                "ssh_host": "127.0.0.1",
                "ssh_port": None,
                "public_ipaddr": "127.0.0.1",
                "start_date": time.time(),
                "label": body.get("label"),
                "image_uuid": body.get("image"),
                "onstart": body.get("onstart"),
                "runtype": body.get("runtype"),
                "disk": body.get("disk"),  # env as the real API lists it
                "extra_env": [[k, v] for k, v in (body.get("env") or {}).items()],
                "num_gpus": 1,
                "gpu_name": "RTX 4090",
                "dph_total": self.price_h,
            }
            self.instances[iid] = inst
        if self.boot_seconds <= 0:
            self._boot(inst)  # running before the create call returns: no boot-poll wait
        else:
            threading.Thread(target=self._boot_later, args=(inst,), daemon=True).start()
        return 200, {"success": True, "new_contract": iid}

    def destroy(self, iid: int) -> tuple[int, dict]:
        inst = self.instances.get(iid)
        if inst is None or inst.get("destroyed"):
            return 404, {"success": False, "error": "no_such_instance"}
        with self.lock:
            inst["destroyed"] = True
            inst["actual_status"] = "destroyed"
        self._kill(inst)
        return 200, {"success": True}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeVast
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: calls are recorded in fake.calls
        pass

    def _send(self, code, obj, ctype="application/json"):
        data = obj.encode() if isinstance(obj, str) else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method):
        fake = self.fake
        url = urlsplit(self.path)
        path = url.path
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode(errors="replace")}
        if path.startswith("/_logs/"):
            return self._send(200, "fake container log\n", "text/plain")
        with fake.lock:
            fake.calls.append(
                {
                    "t": time.time(),
                    "method": method,
                    "path": path,
                    "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                    "body": body,
                    "auth": self.headers.get("Authorization"),
                }
            )
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._send(401, {"success": False, "error": "invalid_key"})
        m = re.fullmatch
        if method == "POST" and path == "/api/v0/bundles/":
            offers = [
                {
                    "id": 500 + i,
                    "ask_contract_id": 500 + i,
                    "machine_id": 77 + i,
                    "num_gpus": 1,
                    "gpu_name": "RTX 4090",
                    "gpu_ram": 24564,
                    "dph_total": fake.price_h + 0.01 * i,
                    "min_bid": 0.10 + 0.01 * i,  # interruptible offers
                    "reliability2": 0.995,
                    "rentable": True,
                    "cpu_cores_effective": 16,
                    "cpu_ram": 64000,
                    "disk_space": 200,
                    "verified": True,
                }
                for i in range(int(body.get("limit") or 5))
            ]
            return self._send(200, {"offers": offers})
        if method == "PUT" and (mm := m(r"/api/v0/asks/(\d+)/", path)):
            return self._send(*fake.create(int(mm.group(1)), body))
        if method == "GET" and (mm := m(r"/api/v0/instances/(\d+)/", path)):
            inst = fake.instances.get(int(mm.group(1)))
            if inst is None or inst.get("destroyed"):
                return self._send(200, {"instances": None})
            return self._send(
                200, {"instances": {k: v for k, v in inst.items() if not k.startswith("_")}}
            )
        if method == "POST" and (mm := m(r"/api/v0/instances/(\d+)/ssh/", path)):
            inst = fake.instances.get(int(mm.group(1)))
            if inst is None:
                return self._send(404, {"success": False, "error": "no_such_instance"})
            if inst.get("_dir"):  # already booted: append to its authorized_keys
                with open(inst["_dir"] / "dotssh" / "authorized_keys", "a") as f:
                    f.write(body.get("ssh_key", "") + "\n")
            return self._send(200, {"success": True, "msg": "key attached"})
        if method == "DELETE" and (mm := m(r"/api/v0/instances/(\d+)/", path)):
            return self._send(*fake.destroy(int(mm.group(1))))
        if method == "PUT" and m(r"/api/v0/instances/reboot/(\d+)/", path):
            return self._send(200, {"success": True})
        if method == "PUT" and (mm := m(r"/api/v0/instances/request_logs/(\d+)/", path)):
            return self._send(
                200, {"success": True, "result_url": f"{fake.url}/_logs/{mm.group(1)}"}
            )
        return self._send(404, {"success": False, "error": f"fake: no route {method} {path}"})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: fake_vast.py STATE_DIR")
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # delivered to sigwait, not fatal
    fake = FakeVast(
        Path(sys.argv[1]), os.environ.get("FAKE_VAST_REMOTE_PATH", os.environ["PATH"])
    ).start()
    print(fake.url, flush=True)
    try:
        signal.sigwait(stop_signals)
    finally:
        fake.stop()  # kills every instance still alive
