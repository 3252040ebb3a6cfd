"""ablate.core.training.driver: the last good checkpoint restored after a non-finite loss, the
summary a run writes. The whole run (resume, train, outputs) through each study's entry:
tests/mask/test_training.py and tests/bridge/training/test_entries.py."""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from ablate.core.outputs import checkpoint_integrity
from ablate.core.outputs.phases import Phases
from ablate.core.training import driver, saving
from ablate.core.training.loop import State
from ablate.core.training.params import resolve_params
from ablate.core.training.recipe import Recipe


def _saved(ckpts, steps) -> SimpleNamespace:
    """A one-process trainer whose checkpoints at ``steps`` hold the weight ``step`` everywhere."""
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    p = resolve_params({"save_total_limit": 5}, "finetune")
    trainer = SimpleNamespace(
        spec=SimpleNamespace(checkpoints=ckpts, recipe=Recipe(p)), model=net, optimizer=opt,
        scheduler=torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), sharded=False,
        state=State(), params=p, losses=[],
        master=None, device=torch.device("cpu"),
    )  # fmt: skip
    for step in steps:
        with torch.no_grad():
            net.weight.fill_(step)
        trainer.state.step = step
        saving.save(trainer)
    return trainer


def test_a_non_finite_loss_restores_the_last_checkpoint_before_it(tmp_path, capsys):
    ckpts = tmp_path / "checkpoints"
    trainer = _saved(ckpts, [2, 4, 6])
    (ckpts / "checkpoint-5").mkdir()  # incomplete: never restored
    with torch.no_grad():
        trainer.model.weight.fill_(float("nan"))
    stop = {"reason": "nonfinite", "step": 6, "detail": {}}
    assert driver.restore_last_good(trainer, stop, ckpts, "run")
    assert torch.equal(trainer.model.weight, torch.full((2, 3), 4.0))  # not step 6's own
    assert stop["detail"] == {"restored_from_step": 4}
    assert (
        "[run] non-finite loss at step 6: final = checkpoint checkpoint-4"
        in capsys.readouterr().out
    )


def test_a_non_finite_loss_before_any_checkpoint_restores_nothing(tmp_path):
    ckpts = tmp_path / "checkpoints"
    trainer = _saved(ckpts, [2])
    stop = {"reason": "nonfinite", "step": 2, "detail": {}}
    assert not driver.restore_last_good(trainer, stop, ckpts, "run")
    assert stop["detail"] == {}


def test_the_summary_holds_the_curves_the_losses_and_the_segments(tmp_path):
    params = resolve_params({"max_steps": 10}, "finetune")
    run = driver.TrainRun(
        kind="finetune", recipe=Recipe(params), out_dir=tmp_path, run_key={},
        summary_extra={"study": "s"}, config_slice=None, inputs={}, phases=Phases(),
        record={"policy": "causal"},
    )  # fmt: skip
    log = [
        {"step": 2, "loss": 3.0, "learning_rate": 0.1, "grad_norm": 1.0, "epoch": 0.5},
        {"step": 2, "eval_loss": 2.5},
        {"step": 6, "loss": 2.0, "learning_rate": 0.05},
        {"step": 6, "eval_loss": 2.75},
    ]
    segments = [{"from_step": 0, "world_size": 1}, {"from_step": 3, "world_size": 2}]
    stop = {"reason": "nonfinite", "step": 7, "detail": {}}
    ended = SimpleNamespace(  # what the summary reads of the trainer, its training ended
        state=State(step=6, tokens_seen=99, log_history=log, segments=segments),
        stop=stop,
        throughput=SimpleNamespace(summary=lambda: {"tokens_per_s": 8.0}),
        train_s=1.5,
        resumed_from_step=3,
    )
    written = run.record_failure(ended)
    assert written == tmp_path / checkpoint_integrity.SUMMARY_NAME
    summary = json.loads(written.read_text())
    assert summary["curves"] == {
        "train": [
            {"step": 2, "loss": 3.0, "learning_rate": 0.1, "grad_norm": 1.0},
            {"step": 6, "loss": 2.0, "learning_rate": 0.05},
        ],
        "eval": [{"step": 2, "eval_loss": 2.5}, {"step": 6, "eval_loss": 2.75}],
    }
    assert (summary["final_train_loss"], summary["final_eval_loss"]) == (2.0, 2.75)
    assert summary["best_eval_loss"] == 2.5
    assert summary["kind"] == "finetune" and summary["policy"] == "causal"
    assert summary["study"] == "s" and summary["stop"] == stop and summary["checkpoint"] is None
    assert (summary["steps_done"], summary["max_steps"], summary["tokens_seen"]) == (6, 10, 99)
    assert summary["resumed_from_step"] == 3
    assert summary["throughput"] == {"tokens_per_s": 8.0, "train_runtime_s": 1.5}
    assert summary["provenance"]["config"] == {"policy": "causal", "params": params.as_dict()}
    assert summary["provenance"]["training_segments"] == [
        {"steps": [1, 3], "world_size": 1},
        {"steps": [4, 6], "world_size": 2},
    ]
    assert isinstance(summary["phases"], dict)


def test_a_summary_without_logs_has_no_losses(tmp_path):
    run = driver.TrainRun(
        "finetune",
        Recipe(resolve_params({}, "finetune")),
        tmp_path,
        {},
        {},
        {"job": 1},
        {},
        Phases(),
    )
    ended = SimpleNamespace(
        state=State(),
        stop={"reason": "max_steps"},
        throughput=SimpleNamespace(summary=dict),
        train_s=None,
        resumed_from_step=None,
    )
    summary = json.loads(run.record_failure(ended).read_text())
    assert summary["curves"] == {"train": [], "eval": []}
    assert summary["final_train_loss"] is summary["final_eval_loss"] is None
    assert summary["best_eval_loss"] is None and summary["provenance"]["config"] == {"job": 1}
