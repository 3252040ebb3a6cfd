"""Live curves and run tracking (:mod:`ablate.core.reports.tracking`): the MLflow store's address,
MLflow asked for but missing refused in one line, the TensorBoard reporter's event files (a fresh
run empties the folder, the curves and the token rate), and one MLflow run per record (its curves,
params and tags; a record logged again keeps its run; a failing store loses only the copy and
says its error's type alone). Through the pipeline: tests/pipeline/test_status.py."""

from __future__ import annotations

import json
import sys

import pytest

from ablate.core.reports import tracking


def test_the_mlflow_store_is_the_configs_else_the_environments_else_a_file_in_results(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.mlflow_uri({}, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert tracking.mlflow_uri({}, tmp_path) == "http://env:5000"
    assert tracking.mlflow_uri({"mlflow_uri": "http://cfg:5000"}, tmp_path) == "http://cfg:5000"


def test_mlflow_asked_for_but_missing_is_refused_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    tracking.check(None)
    tracking.check({"mlflow": False, "tensorboard": True})
    with pytest.raises(ImportError) as refused:
        tracking.check({"mlflow": True})
    assert str(refused.value) == (
        "config tracking.mlflow is true but MLflow is not installed: "
        "pip install 'ablate[mlflow]' (or set tracking.mlflow: false)"
    )
    assert refused.value.__suppress_context__  # the one error shown, not the import's too


def _scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def test_tensorboard_writes_the_curves_and_a_fresh_run_empties_the_folder(tmp_path):
    assert (
        tracking.reporters(None, tmp_path) == ()
        and tracking.reporters({"mlflow": True}, tmp_path) == ()
    )
    (board,) = tracking.reporters({"tensorboard": True}, tmp_path)
    assert board.log_dir == tmp_path / tracking.TENSORBOARD_DIR
    board.log_dir.mkdir()
    (board.log_dir / "events.out.tfevents.old").write_text("a replaced run's curves")
    board.begin(0)
    assert [p.name for p in board.log_dir.iterdir() if p.name.endswith(".old")] == []
    board.log(1, {"step": 1, "loss": 2.5, "learning_rate": 1e-3}, tokens=100)
    board.log(2, {"step": 2, "loss": 2.0, "eval_loss": 2.2}, tokens=300)
    board.end()
    board.log(3, {"loss": 9.0}, tokens=400)  # after the end: nothing written
    got = _scalars(board.log_dir)
    assert got["train/loss"] == [(1, 2.5), (2, 2.0)]
    assert got["eval/loss"] == [(2, pytest.approx(2.2))]
    assert [s for s, _ in got["train/tokens_per_second"]] == [2]  # a rate needs two points
    assert got["train/tokens_per_second"][0][1] > 0 and "train/step" not in got


def _record(path, run_id="run-1"):
    record = {
        "curves": {"train": [{"step": 1, "loss": 2.5, "grad_norm": 1.0}, {"step": 2, "loss": 2.0}],
                   "eval": [{"step": 2, "eval_loss": 2.2}]},
        "provenance": {"run_id": run_id, "config_hash": "h", "config": {"lr": 1e-3, "opt": {"b": 0.9}},
                       "git": {"commit": "abc", "dirty": False}, "hardware": {"hostname": "box"}},
    }  # fmt: skip
    path.write_text(json.dumps(record))
    return path


def test_one_mlflow_run_per_record_and_a_record_logged_again_keeps_its_run(tmp_path, capsys):
    pytest.importorskip("mlflow")
    import mlflow

    rec = _record(tmp_path / "summary.json")
    assert tracking.log_record(rec, "finetune", "finetune/3A", {"mlflow": False}, tmp_path) is None
    track = {"mlflow": True, "mlflow_experiment": "lr"}
    rid = tracking.log_record(rec, "finetune", "finetune/3A", track, tmp_path)
    assert tracking.log_record(rec, "finetune", "finetune/3A", track, tmp_path) == rid
    client = mlflow.MlflowClient(tracking.mlflow_uri(track, tmp_path))
    (run,) = client.search_runs([client.get_experiment_by_name("lr").experiment_id])
    assert run.info.run_id == rid and run.info.run_name == "finetune/3A run-1"
    assert run.data.params == {"lr": "0.001", "opt.b": "0.9"}
    tags = run.data.tags
    assert (tags["ablate.run_id"], tags["ablate.job"], tags["ablate.hardware.hostname"]) == (
        "run-1", "finetune/3A", "box"
    )  # fmt: skip
    assert [(m.step, m.value) for m in client.get_metric_history(rid, "loss")] == [
        (1, 2.5),
        (2, 2.0),
    ]
    assert [m.value for m in client.get_metric_history(rid, "eval_loss")] == [2.2]
    assert "is there already" in capsys.readouterr().out


def test_a_failing_store_loses_only_the_copy_and_names_no_address(tmp_path, capsys):
    pytest.importorskip("mlflow")
    rec = _record(tmp_path / "summary.json")
    (tmp_path / "a-file").write_text("not a folder")  # the store's folder cannot be made
    track = {"mlflow": True, "mlflow_uri": f"sqlite:///{tmp_path}/a-file/user:secret@host/x.db"}
    assert tracking.log_record(rec, "finetune", "finetune/3A", track, tmp_path) is None
    out = capsys.readouterr().out
    assert (
        out.startswith("[tracking] MLflow logging of finetune/3A failed (") and "secret" not in out
    )
