"""The bridge study's data files: the embedded world, or hub datasets as jsonl in the world's fields.

Each file is checked before the provenance record is written, so a dataset without the expected
fields stops here with the field named.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ablate.bridge import world
from ablate.core.outputs import io, provenance

_SPLITS = ("train", "test")


def _hotpot_row(row: dict[str, Any]) -> dict[str, Any]:
    ctx = row["context"]
    titles, sentences = ctx["title"], ctx["sentences"]
    return {
        "id": row["id"],
        "question": row["question"],
        "context": [f"{t}: {''.join(s).strip()}" for t, s in zip(titles, sentences, strict=True)],
        "answer": row["answer"],
    }


def _gsm8k_row(row: dict[str, Any], n: int, split: str) -> dict[str, Any]:
    return {"id": f"gsm8k-{split}-{n:05d}", "question": row["question"], "answer": row["answer"]}


def fetch_hub(dataset: str, spec: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """datasets.load_dataset(spec.path, spec.name, revision) -> <kind>_train/test.jsonl."""
    import datasets

    files = []
    for split in _SPLITS:
        ds = datasets.load_dataset(
            spec["path"],
            spec.get("name"),
            split=spec[f"{split}_split"],
            revision=spec.get("revision"),
        )
        if split == "train" and spec.get("n_train"):
            ds = ds.select(range(min(spec["n_train"], len(ds))))
        if dataset == "hotpotqa":
            missing = {"id", "question", "context", "answer"} - set(ds.column_names)
            rows = [] if missing else [_hotpot_row(r) for r in ds]
        else:
            missing = {"question", "answer"} - set(ds.column_names)
            rows = [] if missing else [_gsm8k_row(r, n, split) for n, r in enumerate(ds)]
        if missing:
            raise world.DatasetError(
                f"bridge.data.{dataset}: {spec['path']} ({spec.get('name')}, split "
                f"{spec[f'{split}_split']}) lacks the field(s) {', '.join(sorted(missing))} "
                f"(has: {', '.join(ds.column_names)})"
            )
        kind = world.DATASET_KIND[dataset]
        files.append(io.write_jsonl(Path(out_dir) / f"{kind}_{split}.jsonl", rows))
    return files


def write(
    data: dict[str, Any], datasets: list[str], out_dir: str | os.PathLike, record: str | os.PathLike
) -> dict[str, Any]:
    """Write the data files of ``bridge.data``, check each, record their provenance in ``record``."""
    started = time.time()
    out = Path(out_dir)
    if data["source"] == "embedded":
        files = world.write_world(out, seed=data["seed"], **data["embedded"])
    else:
        files = {Path(f).stem: f for d in datasets for f in fetch_hub(d, data[d], out)}
    for name, path in files.items():
        if name != "corpus":
            world.check_dataset(path, name.rsplit("_", 1)[0])
    block = provenance.collect(
        config_slice=data, inputs={k: str(v) for k, v in files.items()}, started=started
    )
    io.write_json(record, block)
    print(f"[bridge data] {data['source']}: {', '.join(sorted(files))}", flush=True)
    return block
