"""Live curves and run tracking where researchers look (config ``tracking:``).

TensorBoard event files in a finetune's folder, holding one run; with the ``mlflow`` extra, an
MLflow run per finetune and evaluation once its record is written, once per store
(config/README.md, ``tracking``). Nothing from the environment is logged (tags and params come
only from the record and its provenance block, which records none), so no secret reaches either.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from ablate.core.execution import gpu_watch
from ablate.core.outputs.records import provenance_of

TENSORBOARD_DIR = "tensorboard"  # under a finetune's folder
_MLFLOW_DB = "mlflow.db"  # under the results folder: the default store


def mlflow_uri(tracking: dict[str, Any], results: str | os.PathLike) -> str:
    return (
        tracking.get("mlflow_uri")
        or os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{Path(results).resolve() / _MLFLOW_DB}"
    )


def check(tracking: dict[str, Any] | None) -> None:
    """Before a job's work: MLflow switched on must be importable (not found after an hour)."""
    if (tracking or {}).get("mlflow"):
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise ImportError(
                "config tracking.mlflow is true but MLflow is not installed: "
                "pip install 'ablate[mlflow]' (or set tracking.mlflow: false)"
            ) from None


class TensorBoard:
    """The training loop's reporter into a finetune's event files; process 0 alone writes."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.writer = None
        self._last: tuple[float, int] | None = None

    def begin(self, step: int) -> None:
        # a fresh run (step 0) starts an empty folder, so a rerun's curves never overlay the run
        # it replaces; a resumed run (its checkpoints are of the same configuration) keeps its
        # events and hides those logged after the step it resumes from
        from torch.utils.tensorboard import SummaryWriter

        from ablate.core.execution import parallel

        if parallel.rank() != 0:
            return
        if step == 0 and self.log_dir.is_dir():
            shutil.rmtree(self.log_dir)
        self.writer = SummaryWriter(
            log_dir=str(self.log_dir), purge_step=step + 1 if step else None
        )

    def log(self, step: int, logs: dict[str, float], tokens: int) -> None:
        if self.writer is None:
            return
        for key, value in logs.items():
            if key != "step":
                split = key.split("_", 1)
                tag = f"eval/{split[1]}" if split[0] == "eval" else f"train/{key}"
                self.writer.add_scalar(tag, value, step)
        if "loss" in logs:
            now = time.perf_counter()
            if self._last and now > self._last[0]:
                rate = (tokens - self._last[1]) / (now - self._last[0])
                self.writer.add_scalar("train/tokens_per_second", rate, step)
            self._last = (now, tokens)
        if sample := gpu_watch.latest():  # a GPU job: how busy its GPUs are
            n = len(sample.util_pct)
            self.writer.add_scalar("gpu/util_pct", sum(sample.util_pct) / n, step)
            self.writer.add_scalar("gpu/mem_mib", max(sample.mem_mib), step)
        self.writer.flush()  # readable while the run goes on

    def end(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def reporters(tracking: dict[str, Any] | None, out_dir: str | os.PathLike) -> tuple:
    """The training loop's reporters ``tracking`` asks for (none when it is None or off)."""
    if not (tracking or {}).get("tensorboard"):
        return ()
    return (TensorBoard(Path(out_dir) / TENSORBOARD_DIR),)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


def _metrics(kind: str, record: dict[str, Any]) -> list[tuple[str, float, int]]:
    """(name, value, step) of a record: a finetune's curves, an evaluation's scores."""
    out: list[tuple[str, float, int]] = []
    if kind == "finetune":
        curves = record.get("curves") or {}
        for e in curves.get("train", []):
            out += [(k, e[k], e["step"]) for k in ("loss", "learning_rate", "grad_norm") if k in e]
        out += [("eval_loss", e["eval_loss"], e["step"]) for e in curves.get("eval", [])]
    else:
        for task, t in (record.get("tasks") or {}).items():
            if isinstance(t.get("score"), (int, float)):
                out.append((f"score.{task}", t["score"], 0))
        macro = (record.get("macro") or {}).get("score")
        if isinstance(macro, (int, float)):
            out.append(("score.macro", macro, 0))
    out += gpu_watch.mlflow_metrics(provenance_of(record).get("gpu_use"))
    return [(k, float(v), int(s)) for k, v, s in out if isinstance(v, (int, float))]


def log_record(
    record_path: str | os.PathLike,
    kind: str,
    name: str,
    tracking: dict[str, Any] | None,
    results: str | os.PathLike,
) -> str | None:
    """An MLflow run of a finished job's record: its id; None when off or the store failed."""
    if not (tracking or {}).get("mlflow"):
        return None
    import json

    check(tracking)
    record = json.loads(Path(record_path).read_text())
    try:
        return _log_run(record, kind, name, tracking, results, record_path)
    except Exception as exc:  # the record is the result; a store that fails only loses a copy
        # the type only: a message may carry the tracking URI, credentials included
        print(f"[tracking] MLflow logging of {name} failed ({type(exc).__name__})", flush=True)
        return None


def _log_run(record, kind, name, tracking, results, record_path) -> str:
    import mlflow

    prov = provenance_of(record)
    git = prov.get("git") or {}
    tags = {
        "ablate.kind": kind,
        "ablate.job": name,
        "ablate.run_id": prov.get("run_id"),
        "ablate.record": str(record_path),
        "ablate.config_hash": prov.get("config_hash"),
        "ablate.git_commit": git.get("commit"),
        "ablate.git_dirty": git.get("dirty"),
        "ablate.finished_at": prov.get("finished_at"),
        **{f"ablate.packages.{k}": v for k, v in (prov.get("packages") or {}).items()},
        **{f"ablate.hardware.{k}": v for k, v in _flat(prov.get("hardware") or {}).items()},
        **{f"ablate.inputs.{k}": v for k, v in (prov.get("inputs") or {}).items()},
    }
    params = {k: str(v)[:500] for k, v in _flat(prov.get("config") or {}).items()}
    client = mlflow.MlflowClient(mlflow_uri(tracking, results))
    experiment = tracking.get("mlflow_experiment") or "ablate"
    found = client.get_experiment_by_name(experiment)
    exp_id = found.experiment_id if found else client.create_experiment(experiment)
    # a record logged before (a run cache restore of an edit reverted): its run, not a second
    same = f"tags.`ablate.run_id` = '{prov.get('run_id')}' and tags.`ablate.job` = '{name}'"
    for earlier in client.search_runs([exp_id], same, max_results=1) if prov.get("run_id") else ():
        print(f"[tracking] MLflow run {earlier.info.run_id} ({name}) is there already", flush=True)
        return earlier.info.run_id
    run = client.create_run(
        exp_id,
        run_name=f"{name} {prov.get('run_id', '')}".strip(),
        tags={k: str(v) for k, v in tags.items() if v is not None},
    )
    rid = run.info.run_id
    items = list(params.items())
    for i in range(0, len(items), 100):  # the store takes at most 100 params per batch
        client.log_batch(rid, params=[mlflow.entities.Param(k, v) for k, v in items[i : i + 100]])
    stamp = int(time.time() * 1000)
    metrics = [mlflow.entities.Metric(k, v, stamp, s) for k, v, s in _metrics(kind, record)]
    for i in range(0, len(metrics), 1000):
        client.log_batch(rid, metrics=metrics[i : i + 1000])
    client.set_terminated(rid)
    print(f"[tracking] MLflow run {rid} ({name}) in experiment {experiment!r}", flush=True)
    return rid
