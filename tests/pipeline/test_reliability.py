"""Bad input and faults, library level: each case fails with a message naming the bad
task, file, column, row or model, before a model is trained or scored, and leaves nothing that a
later stage would trust. docs/reliability.md maps every case to its test (here or elsewhere).

Pipeline-level cases (SIGKILL then `snakemake` rerun, Ctrl-C mid-eval, secrets in a whole run):
tests/pipeline/test_reliability_pipeline.py.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ablate.core.execution import interrupts
from ablate.core.models.modeling import ModelLoadError, load_causal_lm
from ablate.core.outputs import checkpoint_integrity, model_card, provenance
from ablate.core.outputs.checkpoint_integrity import CheckpointError
from ablate.core.reports import tracking
from ablate.core.training import saving
from ablate.core.trees import diff
from ablate.mask import embedded, evaluation, lm_tasks, sft_data
from ablate.mask.lm_tasks import TaskFileError, TaskNotFoundError
from ablate.mask.training.entries import FinetuneSpec, finetune

# Fake secrets: long and unique, so a hit in any file can only be a leak.
SECRETS = {
    "VAST_API_KEY": "vastFAKEsecret-7f3a9c1e5b2d4a60",
    "HF_TOKEN": "hf_FAKEsecretToken8c2e4b6a0d1f3e57",
    "AWS_SECRET_ACCESS_KEY": "awsFAKEsecretKey+9b1d3f5a7c2e4g6h",
    "AWS_ACCESS_KEY_ID": "AKIAFAKESECRET0123XY",
}

FAST = dict(
    max_steps=2,
    batch_size=4,
    grad_accum=1,
    learning_rate=1e-3,
    lr_scheduler="constant",
    optim="adamw_torch",
    warmup_ratio=0.0,
    max_seq_len=64,
    eval_size=0,
    eval_steps=0,
    save_steps=1,
    logging_steps=1,
    no_learning_steps=0,
    plateau_patience=0,
)
NO_LEAK = {
    "policy": "causal",
    "leaks": False,
    "loss_causal": 2.0,
    "loss_policy": 2.0,
    "ratio": 1.0,
    "threshold": 0.5,
    "n_examples": 4,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks")
    embedded.write_tasks(out, seed=0, n_docs=4)
    return out


@pytest.fixture()
def tasks_copy(task_dir, tmp_path):
    return Path(shutil.copytree(task_dir, tmp_path / "tasks"))


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory):
    return embedded.write_sft(tmp_path_factory.mktemp("sft") / "sft.jsonl", seed=0, n=16)


# ---------------------------------------------------------------- lm-eval tasks


@pytest.mark.slow
def test_unknown_lm_eval_task_is_named_with_close_matches():
    """A typo of a built-in lm-eval task (test_evaluation.py covers local ones)."""
    with pytest.raises(TaskNotFoundError, match=r"'hellaswagg' \(did you mean hellaswag"):
        lm_tasks.load_tasks(["hellaswagg"])


@pytest.mark.parametrize(
    "case, expected",
    [
        ("yaml_syntax", r"task config .*emb_repeat5\.yaml:\d+:\d+: not valid YAML"),
        ("no_task_key", r"emb_repeat5\.yaml is not an lm-eval task config \(no 'task' key\)"),
        ("missing_data", r"data file .*missing\.jsonl does not exist"),
        ("bad_json_row", r"JSON parse error.*in row 4.*emb_repeat5\.jsonl"),
        ("no_gold", r"task emb_repeat5 \(.*emb_repeat5\.jsonl\): doc 0 has no valid gold answer"),
    ],
)
def test_malformed_local_task_file_is_named(tasks_copy, tiny_model_dir, tmp_path, case, expected):
    yaml_file, data = tasks_copy / "emb_repeat5.yaml", tasks_copy / "emb_repeat5.jsonl"
    if case == "yaml_syntax":
        yaml_file.write_text(yaml_file.read_text() + "\n  bad: [unclosed\n")
    elif case == "no_task_key":
        yaml_file.write_text("dataset_path: json\n")
    elif case == "missing_data":
        yaml_file.write_text(yaml_file.read_text().replace("emb_repeat5.jsonl", "missing.jsonl"))
    elif case == "bad_json_row":
        data.write_text(data.read_text() + "{not json\n")
    else:  # rows without their answer: would be scored against a wrong gold, silently
        rows = [json.loads(line) for line in data.read_text().splitlines()]
        data.write_text(
            "".join(json.dumps({k: v for k, v in r.items() if k != "label"}) + "\n" for r in rows)
        )
    out = tmp_path / "out"
    with pytest.raises((TaskFileError, FileNotFoundError), match=expected):
        evaluation.evaluate(
            evaluation.EvalSpec.parse(["emb_repeat5"]),
            model=tiny_model_dir,
            policy="causal",
            out_dir=out,
            task_dirs=[tasks_copy],
        )
    assert not out.exists()  # failed before the model was loaded; nothing written


# ---------------------------------------------------------------- models


def test_model_path_errors(tmp_path):
    with pytest.raises(ModelLoadError, match=r"model path .*nowhere/model does not exist"):
        load_causal_lm(tmp_path / "nowhere" / "model")
    with pytest.raises(
        model_card.ModelCardError, match=r"model.path .*nowhere/model does not exist"
    ):
        model_card.register_pretrained(
            tmp_path / "card.json", model=str(tmp_path / "nowhere" / "model")
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"empty has no config.json"):
        load_causal_lm(tmp_path / "empty")
    with pytest.raises(model_card.ModelCardError, match="has no config.json"):
        model_card.register_pretrained(tmp_path / "card.json", model=str(tmp_path / "empty"))
    assert not (tmp_path / "card.json").exists()


def test_hub_id_offline_fails_at_the_model_card(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE and the id not cached: prepare_model (before any GPU job) refuses it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        model_card.ModelCardError,
        match=r"'mistralai/Nope-1B' \(revision 'main'\) is not in the local Hugging Face cache",
    ):
        model_card.register_pretrained(
            tmp_path / "card.json", model="mistralai/Nope-1B", revision="main"
        )
    assert not (tmp_path / "card.json").exists()
    with pytest.raises(
        ModelLoadError, match=r"(?s)cannot load model 'mistralai/Nope-1B'.*Offline\?"
    ):
        load_causal_lm("mistralai/Nope-1B")


def test_hub_id_without_network_fails_at_the_model_card(tmp_path):
    """Not marked offline, but no route to the hub (a closed local port stands for it)."""
    code = (
        "from ablate.core.outputs import model_card\n"
        f"model_card.register_pretrained({str(tmp_path / 'card.json')!r}, model='mistralai/Nope-1B')\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "0",
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HUB_ETAG_TIMEOUT": "2",
        "HF_HUB_DOWNLOAD_TIMEOUT": "2",
    }
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode != 0
    assert "ModelCardError: cannot resolve model.path 'mistralai/Nope-1B'" in r.stderr, r.stderr[
        -2000:
    ]
    assert "Offline?" in r.stderr
    assert not (tmp_path / "card.json").exists()


def test_model_without_tokenizer_fails_before_training(tiny_model_dir, sft_file, tmp_path):
    """test_evaluation.py covers eval; here the finetune stage (tokenizer is loaded before the model)."""
    model_only = tmp_path / "model_only"
    load_causal_lm(tiny_model_dir).save_pretrained(model_only)
    with pytest.raises(ModelLoadError, match=r"cannot load a tokenizer from .*model_only"):
        finetune(
            FinetuneSpec.parse("causal", FAST),
            model_path=model_only,
            data=sft_file,
            out_dir=tmp_path / "o",
            probe_result=NO_LEAK,
        )
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- SFT data


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_sft_dataset_without_alpaca_columns(tiny_model_dir, tmp_path):
    bad = _jsonl(tmp_path / "chat.jsonl", [{"question": "hi", "response": "there"}] * 3)
    with pytest.raises(
        sft_data.SFTDataError,
        match=r"chat\.jsonl lacks column\(s\) instruction, output \(has: question, response\)",
    ):
        sft_data.load_rows(bad)
    # a plain row (prompt + continuation) names its own missing column
    plain = _jsonl(tmp_path / "plain.jsonl", [{"prompt": "hi", "response": "there"}] * 3)
    with pytest.raises(sft_data.SFTDataError, match=r"lacks column\(s\) output .*plain"):
        sft_data.load_rows(plain)
    with pytest.raises(sft_data.SFTDataError, match="lacks column"):
        finetune(
            FinetuneSpec.parse("causal", FAST),
            model_path=tiny_model_dir,
            data=bad,
            out_dir=tmp_path / "o",
            probe_result=NO_LEAK,
        )
    assert not (tmp_path / "o").exists()


def test_sft_dataset_with_empty_responses(tiny_model_dir, tmp_path):
    rows = [{"instruction": f"q{i}", "input": "", "output": "a"} for i in range(5)]
    rows[2]["output"], rows[4]["output"] = "   ", None
    bad = _jsonl(tmp_path / "empty.jsonl", rows)
    with pytest.raises(
        sft_data.SFTDataError,
        match=r"empty\.jsonl: 2 row\(s\) have an empty 'output' response \(first at row 2\)",
    ):
        finetune(
            FinetuneSpec.parse("causal", FAST),
            model_path=tiny_model_dir,
            data=bad,
            out_dir=tmp_path / "o",
            probe_result=NO_LEAK,
        )
    assert not (tmp_path / "o").exists()
    with pytest.raises(sft_data.SFTDataError, match=r"empty\.jsonl is empty"):
        sft_data.load_rows(_jsonl(tmp_path / "empty.jsonl", []))


# ---------------------------------------------------------------- checkpoints


@pytest.fixture()
def pipeline_checkpoint(tiny_model_dir, tmp_path):
    """A checkpoint as the pipeline writes one: writer marker, files, rename, hash manifest last."""

    def save(tmp: Path) -> str:
        for f in tiny_model_dir.iterdir():
            shutil.copy(f, tmp / f.name)
        return "save_pretrained"

    return Path(checkpoint_integrity.write_final(tmp_path / "ft", save)["path"])


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("truncate", r"file model\.safetensors has \d+ bytes, manifest says \d+ \(truncated\?\)"),
        ("alter", r"file model\.safetensors does not match its recorded sha256 \(altered\)"),
        ("delete", r"file tokenizer\.json is missing"),
        ("no_manifest", r"has no checkpoint_manifest\.json: the checkpoint was never completed"),
    ],
)
def test_damaged_checkpoint_is_refused_by_eval(
    pipeline_checkpoint, task_dir, tmp_path, damage, expected
):
    weights = pipeline_checkpoint / "model.safetensors"
    if damage == "truncate":
        with open(weights, "r+b") as f:
            f.truncate(weights.stat().st_size // 2)
    elif damage == "alter":  # same size, one byte flipped deep inside the tensor data
        with open(weights, "r+b") as f:
            f.seek(weights.stat().st_size - 100)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))
    elif damage == "delete":
        (pipeline_checkpoint / "tokenizer.json").unlink()
    out = tmp_path / "out"
    if damage == "no_manifest":
        # a checkpoint cut off before its manifest: foreign (manifest-less) model dirs load, but
        # one this pipeline wrote (its writer marker) does not, so the eval refuses it too
        (pipeline_checkpoint / checkpoint_integrity.MANIFEST_NAME).unlink()
        with pytest.raises(CheckpointError, match=expected):
            checkpoint_integrity.verify(pipeline_checkpoint)
    with pytest.raises(CheckpointError, match=expected):
        evaluation.evaluate(
            evaluation.EvalSpec.parse(["emb_repeat5"]),
            model=pipeline_checkpoint,
            policy="causal",
            out_dir=out,
            task_dirs=[task_dir],
        )
    assert not out.exists()


# ---------------------------------------------------------------- disk full at save


def _enospc(monkeypatch):
    """Every save (save_pretrained and the state_dict fallback) writes part of a file, then the disk is full."""
    import safetensors.torch
    from transformers import PreTrainedModel

    def full(*args, **kwargs):
        target = next((a for a in args if isinstance(a, (str, os.PathLike))), None) or kwargs.get(
            "save_directory"
        )
        if target is not None:
            p = Path(target)
            p = p / "model.safetensors" if p.suffix != ".safetensors" else p
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"\0" * 1000)  # the half-written file a full disk leaves
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", lambda self, *a, **k: full(*a, **k))
    monkeypatch.setattr(
        safetensors.torch, "save_model", lambda model, filename, **k: full(filename)
    )


def test_disk_full_at_save_leaves_no_checkpoint_to_trust(
    tiny_model_dir, sft_file, tmp_path, monkeypatch
):
    out = tmp_path / "ft"
    _enospc(monkeypatch)
    disk = rf"{out / 'checkpoints' / 'checkpoint-1'} \([\d.]+ GB free of [\d.]+ GB\)"
    with pytest.raises(
        CheckpointError,
        match=f"saving checkpoint-1 failed: no space left on the disk holding {disk}",
    ):
        finetune(
            FinetuneSpec.parse("causal", FAST),
            model_path=tiny_model_dir,
            data=sft_file,
            out_dir=out,
            probe_result=NO_LEAK,
        )
    monkeypatch.undo()
    assert not (out / "final").exists() and not (out / "summary.json").exists()
    # the half-written checkpoint has no completion marker: a rerun never resumes from it
    assert checkpoint_integrity.complete_checkpoints(out / "checkpoints") == []


@pytest.mark.slow
def test_disk_full_keeps_the_previous_final_checkpoint(
    tiny_model_dir, sft_file, tmp_path, monkeypatch
):
    """A rerun (other params) whose final save fails: the previous final stays whole and verified."""
    out = tmp_path / "ft"
    finetune(
        FinetuneSpec.parse("causal", {**FAST, "max_steps": 1}),
        model_path=tiny_model_dir,
        data=sft_file,
        out_dir=out,
        probe_result=NO_LEAK,
    )
    before = checkpoint_integrity.verify(out / "final")
    summary_before = (out / "summary.json").read_text()

    real_save_final = saving.save_final

    def save_final_on_full_disk(trainer, out_dir, **kw):
        _enospc(monkeypatch)  # training went fine; the disk fills at the final save
        return real_save_final(trainer, out_dir, **kw)

    monkeypatch.setattr(saving, "save_final", save_final_on_full_disk)
    disk = rf"{out / 'final'} \([\d.]+ GB free of [\d.]+ GB\)"
    with pytest.raises(
        CheckpointError,
        match=f"saving the final weights failed: no space left on the disk holding {disk}",
    ):
        finetune(
            FinetuneSpec.parse("causal", {**FAST, "save_steps": 0}),
            model_path=tiny_model_dir,
            data=sft_file,
            out_dir=out,
            probe_result=NO_LEAK,
        )
    monkeypatch.undo()
    assert checkpoint_integrity.verify(out / "final") == before
    assert (out / "summary.json").read_text() == summary_before


# ---------------------------------------------------------------- TensorBoard of a rerun


def causal_finetune(model_dir: Path, sft: Path, out: Path, steps: int, **kw) -> None:
    """A few causal steps, save_steps 0 (the default's: no intermediate checkpoint)."""
    finetune(
        FinetuneSpec.parse("causal", {**FAST, "max_steps": steps, "save_steps": 0}),
        model_path=model_dir,
        data=sft,
        out_dir=out,
        probe_result=NO_LEAK,
        **kw,
    )


def tensorboard_steps(folder: Path) -> tuple[int, list[int]]:
    """(event files, the train/loss steps TensorBoard shows) of a finetune's folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_dir = folder / tracking.TENSORBOARD_DIR
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return len(list(log_dir.glob("events.*"))), [e.step for e in events.Scalars("train/loss")]


@pytest.mark.slow
def test_rerun_starts_an_empty_tensorboard_folder(tiny_model_dir, sft_file, tmp_path):
    """A rerun with other params (a fresh run: no checkpoint of its configuration) leaves only its
    own event file; before, the old run's curves stayed beside it (3 files after one edit)."""
    out = tmp_path / "o"
    for steps in (3, 2):
        reporters = tracking.reporters({"tensorboard": True}, out)
        causal_finetune(tiny_model_dir, sft_file, out, steps, reporters=reporters)
    assert tensorboard_steps(out) == (1, [1, 2])


def test_resumed_run_keeps_its_curves_up_to_the_resumed_step(tmp_path):
    """A resumed run (resumed at step 4) keeps the folder and hides what the killed run logged
    after step 4 (TensorBoard's purge_step); a fresh one (step 0) empties it."""

    def start(step: int, losses: dict[int, float]) -> None:
        (reporter,) = tracking.reporters({"tensorboard": True}, tmp_path)
        reporter.begin(step)
        for at, loss in losses.items():
            reporter.log(at, {"step": at, "loss": loss}, tokens=100 * at)
        reporter.end()

    start(0, {1: 3.0, 2: 2.9, 4: 2.8, 5: 2.7, 6: 2.6})  # killed after step 6, saved at 4
    start(4, {5: 2.5, 6: 2.4})
    files, steps = tensorboard_steps(tmp_path)
    assert files == 2 and sorted(set(steps)) == [1, 2, 4, 5, 6]
    start(0, {1: 1.0})
    assert tensorboard_steps(tmp_path) == (1, [1])


# ---------------------------------------------------------------- diff of a superseded run


@pytest.mark.slow
def test_diff_finds_the_run_a_rerun_replaced(tiny_model_dir, sft_file, tmp_path, capsys):
    """A rerun with an edit replaces summary.json; `ablate diff OLD_ID NEW_ID` still finds the old
    record (its copy in history/ beside it) and names the changed key. Before: `no record with
    run_id ...`."""
    out = tmp_path / "finetune" / "3A"
    ids = []
    for steps in (3, 2):
        causal_finetune(tiny_model_dir, sft_file, out, steps)
        ids.append(json.loads((out / "summary.json").read_text())["provenance"]["run_id"])
    assert ids[0] != ids[1]
    capsys.readouterr()  # the finetunes' progress
    assert diff.main([*ids, "--in", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"A: {out / 'history'}") and f"run {ids[0]}" in printed[0]
    assert printed[1].startswith(f"B: {out / 'summary.json'}"), printed[1]
    assert "  params.max_steps 3 -> 2" in printed


# ---------------------------------------------------------------- interrupt during training


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.slow
def test_interrupt_saves_a_checkpoint_and_the_rerun_resumes(
    tiny_model_dir, sft_file, tmp_path, capsys, signum
):
    """With the default save_steps 0 (no intermediate checkpoints), a SIGINT or SIGTERM during
    step 2 of 4: the step ends, checkpoint-2 is saved complete, training stops with
    TrainingInterrupted and no result is written; the rerun resumes from it. Before: the signal
    killed it at once (SIGINT) and the rerun started from step 0."""

    class SignalAtStep2:  # a reporter: step 1's log is the last thing before step 2
        def begin(self, step):
            pass

        def log(self, step, logs, tokens):
            if step == 1:
                os.kill(os.getpid(), signum)

        def end(self):
            pass

    out = tmp_path / "o"
    # as in a terminal: a background (nohup) test run has SIGINT ignored, and that is respected
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(interrupts.TrainingInterrupted, match=f"{signum.name} after step 2"):
            causal_finetune(tiny_model_dir, sft_file, out, 4, reporters=[SignalAtStep2()])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, before)
    assert [c.name for c in checkpoint_integrity.complete_checkpoints(out / "checkpoints")] == [
        "checkpoint-2"
    ]
    assert not (out / "summary.json").exists() and not (out / "final").exists()
    capsys.readouterr()
    causal_finetune(tiny_model_dir, sft_file, out, 4)
    assert f"resuming from {out / 'checkpoints' / 'checkpoint-2'}" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == 2 and summary["steps_done"] == 4


# ---------------------------------------------------------------- secrets


@pytest.mark.slow
def test_secrets_never_reach_outputs_or_logs(
    tiny_model_dir, task_dir, sft_file, tmp_path, monkeypatch, capfd
):
    """Fake keys in the environment; finetune, evaluate and write a model card; grep everything."""
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "run"
    finetune(
        dataclasses.replace(
            FinetuneSpec.parse("causal", {**FAST, "keep_checkpoints": True}), variant="x"
        ),
        model_path=tiny_model_dir,
        data=sft_file,
        out_dir=out / "ft",
        probe_result=NO_LEAK,
    )
    evaluation.evaluate(
        evaluation.EvalSpec.parse(["emb_repeat5"], limit=2),
        model=out / "ft" / "final",
        policy="prefix_bidir",
        out_dir=out / "eval",
        task_dirs=[task_dir],
    )
    model_card.write(
        out / "card.json", source="embedded", model=tiny_model_dir, config_slice={"a": 1}
    )
    block = provenance.collect(config_slice={"a": 1}, inputs={"sft": sft_file})
    captured = capfd.readouterr()
    blobs = {
        "stdout": captured.out.encode(),
        "stderr": captured.err.encode(),
        "provenance": json.dumps(block).encode(),
    }
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 10 and any(p.name == "optimizer.pt" for p in files)  # pickles too
    blobs.update({str(p): p.read_bytes() for p in files})
    leaks = [
        (name, k) for name, data in blobs.items() for k, v in SECRETS.items() if v.encode() in data
    ]
    assert not leaks, leaks
