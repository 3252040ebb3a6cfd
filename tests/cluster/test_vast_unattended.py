"""`--profile vast` left unattended, against the fake Vast API (fake_vast.py): a real finetune of
the tiny model whose instance is lost or outbid mid-training resumes on a new instance from the
newest checkpoint copied off the old one and ends with the weights of an uninterrupted run; after
every scenario no instance is alive."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import ROOT, git_add_all, stop_process, wait_for
from test_training import FAST, no_leak, synthetic_rows, weights
from test_vast import destroyed, minimal_checkout, start_snakemake

from ablate.core import checkpoint
from ablate.mask.training.run import finetune

pytestmark = pytest.mark.cluster

SAVE_STEPS, MAX_STEPS, STEP_S = 3, 9, 1.0
PARAMS = {**FAST, "max_steps": MAX_STEPS, "save_steps": SAVE_STEPS, "eval_steps": SAVE_STEPS}
CKPTS = Path("results/train_ckpt/checkpoints")
LABEL = "[finetune prefix_bidir]"


@pytest.fixture(scope="module")
def train_inputs(tmp_path_factory, tiny_model_dir) -> dict:
    """The training job's inputs, and the same training uninterrupted, in this process, at the
    job's one thread (the reference)."""
    d = tmp_path_factory.mktemp("train_inputs")
    (d / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows()))
    (d / "probe.json").write_text(json.dumps(no_leak("prefix_bidir")))
    (d / "params.json").write_text(json.dumps(PARAMS))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = finetune(
            model_path=tiny_model_dir,
            data=d / "sft.jsonl",
            policy="prefix_bidir",
            params=PARAMS,
            out_dir=d / "ref",
            probe_result=no_leak("prefix_bidir"),
        )
    finally:
        torch.set_num_threads(threads)
    return {"dir": d, "model": tiny_model_dir, "ref": ref, "ref_final": d / "ref" / "final"}


def training_checkout(tmp_path: Path, inputs: dict) -> Path:
    """The minimal workflow with this checkout's library (shipped as the pipeline's is) and the
    training job's inputs."""
    wd = minimal_checkout(tmp_path)
    shutil.copytree(ROOT / "src", wd / "src", ignore=shutil.ignore_patterns("__pycache__"))
    if (ROOT / "workflow" / "schemas").is_dir():  # where the library reads its defaults
        shutil.copytree(ROOT / "workflow" / "schemas", wd / "workflow" / "schemas")
    shutil.copytree(inputs["model"], wd / "data" / "tiny_model")
    for name in ("sft.jsonl", "probe.json", "params.json"):
        shutil.copy(inputs["dir"] / name, wd / "data" / name)
    git_add_all(wd)
    return wd


def steps_logged(log: Path) -> list[int]:
    return [
        int(line.split("step ")[1].split("/")[0])
        for line in log.read_text().splitlines()
        if line.startswith(f"{LABEL} step ")
    ]


@pytest.mark.parametrize("ending", ["lost", "outbid"])
def test_lost_or_outbid_instance_resumes_from_the_copied_checkpoint(
    vast, tmp_path, train_inputs, ending
):
    wd = training_checkout(tmp_path, train_inputs)
    proc = start_snakemake(
        wd,
        vast,
        "results/train_ckpt/summary.json",
        "--ablate-vast-lost-after",
        "5",
        "--retries",
        "1",
        "--config",
        f"step_s={STEP_S}",
    )
    log = wd / "snakemake.log"
    try:
        copied = wait_for(
            lambda: checkpoint.complete_checkpoints(wd / CKPTS),
            "a checkpoint copied to the submit host",
            300,
            proc,
            log,
            interval=0.1,
        )
        (first,) = vast.alive()
        (vast.preempt if ending == "lost" else vast.outbid)(first)
        at_kill = int(copied[-1].name.split("-")[1])
        assert proc.wait(timeout=300) == 0, log.read_text()[-5000:]
    finally:
        stop_process(proc)
    out = log.read_text()
    summary = json.loads((wd / "results/train_ckpt/summary.json").read_text())
    resumed = summary["resumed_from_step"]
    # the retry started from the newest complete copy, and both logs say from which step
    assert resumed is not None and resumed >= at_kill, out[-4000:]
    assert f"resuming from step {resumed}: shipped the copy of {CKPTS}/checkpoint-{resumed}" in out
    job_log = (wd / "logs/train_ckpt.log").read_text()
    assert f"resuming from {CKPTS}/checkpoint-{resumed}" in job_log, job_log[-3000:]
    # work lost: at most one checkpoint interval past the step resumed from
    reached = max(steps_logged(vast.workdir(first) / "logs/train_ckpt.log"))
    assert reached < MAX_STEPS and reached - resumed <= SAVE_STEPS, (reached, resumed)
    # the same run as without the loss: losses step by step, final weights
    ref = train_inputs["ref"]
    assert summary["steps_done"] == ref["steps_done"] == MAX_STEPS
    for a, b in zip(summary["curves"]["train"], ref["curves"]["train"], strict=True):
        assert a["step"] == b["step"] and a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-4)
    got, want = weights(wd / "results/train_ckpt/final"), weights(train_inputs["ref_final"])
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5)
    assert not (wd / CKPTS).exists()  # the copies went once the job succeeded
    assert len(vast.instances) == 2 and first in destroyed(vast)
    assert destroyed(vast) == set(vast.instances) and vast.alive() == []
