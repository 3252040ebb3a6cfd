"""The stall watchdog (ablate.core.training.watchdog): its bound, and a training job that hangs
mid-run is ended within it, saying which bound it crossed."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from helpers import FAST, causal_finetune, no_leak, synthetic_rows

from ablate.core.training import watchdog
from ablate.core.training.params import resolve_params
from ablate.core.training.watchdog import STALL_EXIT, stall_bound


def params(**kw):
    return resolve_params(kw, "finetune")


def test_bound_is_the_override_else_forecast_times_checkpoint_interval():
    assert stall_bound(params(stall_s=7, save_steps=400), [9.0] * 10)[0] == 7
    # not timed yet: the start bound
    bound, why = stall_bound(params(save_steps=400), [30.0, 1.0])
    assert bound == watchdog.STALL_START_S and "start bound" in why
    # 2 x the median of the timed steps (the first, compiling, left out) x save_steps
    times = [60.0, 1.0, 1.5, 1.4, 1.5]
    bound, why = stall_bound(params(save_steps=400, eval_steps=50), times)
    assert bound == pytest.approx(watchdog.STALL_FACTOR * 1.45 * 400)
    assert "save_steps 400" in why
    # no checkpoints: the eval interval; never under the floor
    bound, why = stall_bound(params(save_steps=0, eval_steps=50), times)
    assert bound == watchdog.STALL_MIN_S and "eval_steps 50 = 145 s" in why


# a finetune that hangs after step 2 (a data-loader or NCCL hang): a reporter whose log of step 2
# never returns (logging_steps 1), stall_s 4
HANGING = """
import json, sys, time
from ablate.mask.training.entries import FinetuneSpec, finetune

class Hang:
    def begin(self, step):
        pass

    def log(self, step, logs, tokens):
        if step == 2:
            print("hanging now", flush=True)
            time.sleep(3600)

    def end(self):
        pass

model, data, out, params, probe = sys.argv[1:6]
finetune(FinetuneSpec.parse("causal", json.loads(params)), model_path=model, data=data,
         out_dir=out, probe_result=json.loads(probe), reporters=[Hang()])
"""


@pytest.mark.slow
def test_a_hung_training_ends_within_its_bound_and_names_it(tiny_model_dir, tmp_path):
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows()))
    params = {**FAST, "max_steps": 20, "stall_s": 4, "logging_steps": 1}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HANGING,
            str(tiny_model_dir),
            str(data),
            str(tmp_path / "out"),
            json.dumps(params),
            json.dumps(no_leak("causal")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the hung training was not ended")
    assert "hanging now" in out, out + err[-3000:]
    assert proc.returncode == STALL_EXIT, err[-3000:]
    line = next(x for x in err.splitlines() if "stalled" in x)
    idle = float(line.split("no training progress for ")[1].split(" s")[0])
    assert 4 <= idle < 4 + 5, line  # within the bound and the watchdog's look interval
    assert "over the stall bound 4 s (stall_s: 4 (config))" in line, line
    # where it hung, in every thread's stack: the reporter's log (of the -c script, "<string>")
    hung = [x for x in err.splitlines() if x.strip().startswith('File "<string>"')]
    assert any(x.endswith(" in log") for x in hung), err[-3000:]
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.slow
def test_a_finished_training_leaves_no_watchdog_running(tiny_model_dir, tmp_path):
    """In-process: after training nothing may end this process (the bound, 6 s, is over a step's
    time on a busy 2-core box and under the time this test waits afterwards)."""
    import threading

    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows()))
    params = {**FAST, "max_steps": 2, "save_steps": 0, "eval_steps": 0, "stall_s": 6}
    causal_finetune(params, tiny_model_dir, data, tmp_path / "out")
    assert not [t for t in threading.enumerate() if t.name == "stall-watchdog"]
    time.sleep(8)  # a watchdog left running would have ended this process by now
    assert (tmp_path / "out" / "summary.json").exists()


def test_the_watchdog_starts_where_stderr_has_no_file_descriptor(monkeypatch):
    """Under a captured stderr (pytest's capsys, a notebook) faulthandler falls back to the
    process's own stderr instead of failing the training's start with UnsupportedOperation."""
    import io

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    dog = watchdog.StallWatchdog(params(stall_s=60), [], "t")
    dog.start()
    dog.progress()
    dog.stop()
