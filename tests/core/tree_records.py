"""Records of small results trees written by the trees tests: a job record with its provenance
block, as a run writes one."""

from __future__ import annotations

from pathlib import Path

from ablate.core.outputs.io import write_json

EVAL = "eval/base/causal/metrics.json"
EVAL_SLICE = {"seed": 0, "tasks": ["emb_count"], "dtype": "float32"}


def record(
    tree: Path, rel: str, config: dict, *, host="box", when="2026-11-26T10:00:00+0000", gpus=()
):
    """A job record with its provenance block (as ablate.core.outputs.provenance.collect writes it);
    ``tree`` becomes a results tree (its logs folder)."""
    (tree / "logs").mkdir(parents=True, exist_ok=True)
    path = tree / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    prov = {
        "run_id": f"run-{host}",
        "config": config,
        "config_hash": "h",
        "finished_at": when,
        "git": {"commit": "abcdef0123456789", "dirty": False},
        "hardware": {
            "hostname": host,
            "cpu_model": "Intel Xeon",
            "torch_cpu_capability": "AVX512",
            **({"gpus": list(gpus)} if gpus else {}),
        },
    }
    write_json(path, {"macro": {"score": 0.9}, "provenance": prov})  # and its history copy
