"""The local GPU pool (ablate.core.execution.gpus) with fake device ids, on CPU: concurrent jobs
never share a device, a killed job's device returns, a job asking for every device waits for all of
them, and through Snakemake (--resources gpu=2) each GPU job sees its own device only."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ablate.core.execution import gpus

HOLD = """
import json, sys, time
from ablate.core.execution import gpus
t0 = time.time()
ids = gpus.claim(int(sys.argv[1]), label=sys.argv[2])
t1 = time.time()
time.sleep(float(sys.argv[3]))
print(json.dumps({"ids": ids, "start": t1, "end": time.time(), "asked": t0}), flush=True)
"""


def _env(tmp_path, ids="0,1"):
    env = {k: v for k, v in os.environ.items() if k not in ("SLURM_JOB_ID", gpus.CLAIMED_ENV)}
    env.update({gpus.IDS_ENV: ids, gpus.LOCK_DIR_ENV: str(tmp_path / "locks")})
    env.pop(gpus.SWITCH_ENV, None)
    return env


def _start(tmp_path, n, label, hold_s, ids="0,1"):
    return subprocess.Popen(
        [sys.executable, "-c", HOLD, str(n), label, str(hold_s)],
        env=_env(tmp_path, ids),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc):
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out), err


def _overlaps(records):
    """Pairs of records that held one device at overlapping times."""
    bad = []
    for i, a in enumerate(records):
        for b in records[i + 1 :]:
            shared = set(a["ids"]) & set(b["ids"])
            if shared and a["start"] < b["end"] and b["start"] < a["end"]:
                bad.append((a, b))
    return bad


def test_concurrent_jobs_never_share_a_device(tmp_path):
    procs = [_start(tmp_path, 1, f"job{i}", 1.0) for i in range(4)]
    records = [_result(p)[0] for p in procs]
    assert all(len(r["ids"]) == 1 and r["ids"][0] in ("0", "1") for r in records)
    assert not _overlaps(records)
    # 4 jobs on 2 devices: some waited, and said so
    assert max(r["start"] - r["asked"] for r in records) > 0.5


def test_killed_job_device_returns(tmp_path):
    holder = _start(tmp_path, 2, "holder", 60)
    lock = tmp_path / "locks" / "gpu-1.lock"
    for _ in range(200):
        if lock.exists() and lock.read_text().strip() == str(holder.pid):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the holder never took the devices")
    waiter = _start(tmp_path, 1, "waiter", 0)
    time.sleep(1.5)
    assert waiter.poll() is None  # both devices held: it waits
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    record, err = _result(waiter)
    assert len(record["ids"]) == 1
    assert "waiter waits for 1 free GPU(s)" in err


def test_two_of_two_waits_for_both(tmp_path):
    one = _start(tmp_path, 1, "one", 2.0)
    time.sleep(0.7)
    both = _start(tmp_path, 2, "both", 0)
    r_one, _ = _result(one)
    r_both, _ = _result(both)
    assert sorted(r_both["ids"]) == ["0", "1"]
    assert r_both["start"] >= r_one["end"]  # never held one device while waiting for the other


def test_off_under_slurm_and_without_gpus(tmp_path, monkeypatch):
    for k, v in _env(tmp_path).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    assert gpus.claim(1) is None and os.environ["CUDA_VISIBLE_DEVICES"] == "7"
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setenv(gpus.IDS_ENV, "")
    assert gpus.claim(1) is None  # no device at all: a CPU host
    monkeypatch.setenv(gpus.IDS_ENV, "0,1")
    with pytest.raises(RuntimeError, match="asks gpu=3"):
        gpus.claim(3)
    try:
        assert gpus.claim(0) == [] and os.environ["CUDA_VISIBLE_DEVICES"] == ""
    finally:
        gpus.release()


SNAKEFILE = """
rule all:
    input: expand("out/{i}.json", i=range(5)), "out/cpu.json", "out/both.json"

rule one:
    output: "out/{i}.json"
    resources: gpu=1
    script: "job.py"

rule cpu:
    output: "out/cpu.json"
    resources: gpu=0
    script: "job.py"

rule both:
    output: "out/both.json"
    resources: gpu=2
    script: "job.py"
"""

JOB = """
import json, time
from ablate.core.execution import gpus
gpus.claim_for(snakemake)
start = time.time()
time.sleep(1.0)
import os
rec = {"ids": os.environ["CUDA_VISIBLE_DEVICES"], "start": start, "end": time.time()}
open(snakemake.output[0], "w").write(json.dumps(rec))
"""


@pytest.mark.slow
@pytest.mark.parametrize("limit", [["--resources", "gpu=2"], []])
def test_snakemake_jobs_get_their_own_devices(tmp_path, limit):
    """Through Snakemake with more cores than GPUs, with --resources gpu=2 and with no gpu limit
    (then only the pool keeps jobs apart): 5 one-GPU jobs, a CPU job and a two-GPU job each
    record the devices they saw; none overlaps."""
    (tmp_path / "Snakefile").write_text(textwrap.dedent(SNAKEFILE))
    (tmp_path / "job.py").write_text(JOB)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "4", *limit, "-q"]
    subprocess.run(cmd, cwd=tmp_path, env=_env(tmp_path), check=True, timeout=300)
    recs = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")}
    for r in recs.values():
        r["ids"] = [i for i in r["ids"].split(",") if i]
    assert recs["cpu"]["ids"] == [] and sorted(recs["both"]["ids"]) == ["0", "1"]
    assert all(len(recs[str(i)]["ids"]) == 1 for i in range(5))
    assert not _overlaps(list(recs.values()))


def test_gpu_pool_smoke_report_flags_a_job_on_a_gpu_it_was_not_given(tmp_path, capsys):
    """bench/tools/gpu_pool_smoke.py's table, from the pool's log lines and nvidia-smi samples."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench" / "tools"))
    import gpu_pool_smoke

    logs = tmp_path / "results/smoke/logs/finetune"
    logs.mkdir(parents=True)
    for variant, gpu, pid in (("3A", "0", 101), ("3B", "1", 102)):
        label = f"finetune {{'variant': '{variant}'}}"
        gpus_line = f"[gpus] {label}: CUDA_VISIBLE_DEVICES='{gpu}' (pid {pid}, pool ['0', '1'], waited 2.5 s)"
        (logs / f"{variant}.log").write_text(gpus_line + "\n")
    uuid = ["GPU-00000000-0000-0000-0000-00000000000a", "GPU-00000000-0000-0000-0000-00000000000b"]
    listing = "".join(f"GPU {i}: NVIDIA H200 (UUID: {u})\n" for i, u in enumerate(uuid))
    apps = "pid, gpu_uuid, used_memory [MiB]\n101, {0}, 9000 MiB\n102, {1}, 9100 MiB\n"
    (tmp_path / "nvidia_smi.log").write_text(listing + apps.format(*uuid))
    assert gpu_pool_smoke.report(tmp_path) == 0
    table = capsys.readouterr().out
    assert "| finetune/3A | 0 | 101 | GPU 0 (9000) | - | 2.5 |" in table and "finetune/3B" in table
    # 3B's process also on GPU 0 (the DataParallel failure): flagged
    (tmp_path / "nvidia_smi.log").write_text(
        listing + apps.format(*uuid) + f"102, {uuid[0]}, 8000 MiB\n"
    )
    assert gpu_pool_smoke.report(tmp_path) == 1


START = """
import gc, json, os, sys
from types import SimpleNamespace
from ablate import job_script
from ablate.core.execution import gpus
cfg = {"mask": {"model": {"source": "embedded"}, "data": {"source": "embedded"}}}
smk = SimpleNamespace(log=[sys.argv[1]], input=[], output=[sys.argv[1] + ".out"], config=cfg,
                      rule="eval_model", wildcards={}, resources=SimpleNamespace(gpu=1), threads=1)
job_script.start(smk, "mask", imports=["heavy_probe"])
import heavy_probe
print(json.dumps({"claimed_at_import": heavy_probe.CLAIMED,
                  "visible": os.environ["CUDA_VISIBLE_DEVICES"],
                  "nvml_check": os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK"),
                  "gc": gc.isenabled(), "frozen": gc.get_freeze_count() > 0}), file=sys.__stdout__)
"""


def test_job_loads_its_modules_before_it_waits_for_a_gpu(tmp_path):
    """A job's heavy imports run before its GPU claim (a job waiting for a device has loaded its
    libraries when the device frees) and CUDA stays uninitialised for the claim; what the imports
    made is frozen out of Python's collections, which are on again."""
    (tmp_path / "heavy_probe.py").write_text(
        "import os\nfrom ablate.core.execution import gpus\nCLAIMED = bool(os.environ.get(gpus.CLAIMED_ENV))\n"
    )
    env = _env(tmp_path, ids="0")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    env.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    out = subprocess.run(
        [sys.executable, "-c", START, str(tmp_path / "job.log")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr + (tmp_path / "job.log").read_text()
    rec = json.loads(out.stdout)
    assert rec == {
        "claimed_at_import": False, "visible": "0", "nvml_check": "1", "gc": True, "frozen": True
    }  # fmt: skip
    assert "waited 0.0 s" in (tmp_path / "job.log").read_text()


def test_claim_refuses_after_cuda_initialised(tmp_path, monkeypatch):
    """CUDA_VISIBLE_DEVICES set after CUDA initialised would be ignored: the claim says so."""
    import torch

    for k, v in _env(tmp_path, ids="0").items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.raises(RuntimeError, match="CUDA was initialised before"):
        gpus.claim(1, label="late job")
    assert gpus.CLAIMED_ENV not in os.environ
