"""Frozen models' hidden states of a dataset, computed once and read memory-mapped.

Every grid entry sharing a cache's key (:mod:`ablate.bridge.caches`) reads one cache. A read batch
equals the live one: right padding leaves a causal model's states of the real tokens unchanged.
The file layout: docs/bridge.md ("Frozen work done once").
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablate.bridge import evaluate
from ablate.bridge.caches import FROZEN_SPLITS
from ablate.bridge.caches import SOURCE_LAYER as LAYER
from ablate.bridge.parallel import collect, shard
from ablate.core.execution import parallel
from ablate.core.outputs import io

_SHARD_BYTES = 1 << 30  # about 1 GiB per shard file
_INDEX = "index.json"


class StatesError(RuntimeError):
    pass


def _to_numpy(h: torch.Tensor) -> np.ndarray:
    h = h.detach().cpu().contiguous()
    if h.dtype == torch.bfloat16:
        return h.view(torch.uint16).numpy()
    return h.numpy()


def _to_torch(a: np.ndarray, dtype: str) -> torch.Tensor:
    t = torch.from_numpy(np.array(a))  # a copy: the memory map is read-only
    return t.view(torch.bfloat16) if dtype == "bfloat16" else t


class _Shards:
    """Rows cut into shard files; the index written last marks a finished split."""

    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.out, self.pending, self.n_rows, self.shard = out, [], 0, 0
        self.index: dict[str, Any] = {"ids": [], "shard": [], "start": [], "length": [],
                                      "layer": LAYER}  # fmt: skip

    def add(self, item_id: str, a: np.ndarray, dtype: str) -> None:
        self.index.setdefault("dtype", dtype)
        self.index.setdefault("width", int(a.shape[1]))
        n = a.shape[0]
        if self.n_rows and (self.n_rows + n) * a.shape[1] * a.itemsize > _SHARD_BYTES:
            self._flush()
        for key, value in (("ids", item_id), ("shard", self.shard), ("start", self.n_rows),
                           ("length", n)):  # fmt: skip
            self.index[key].append(value)
        self.pending.append(a)
        self.n_rows += n

    def _flush(self) -> None:
        if self.pending:
            arr = np.concatenate(self.pending)
            io.atomic_write(self.out / f"shard-{self.shard:05d}.npy", lambda tmp: _save(tmp, arr))
            self.shard, self.pending, self.n_rows = self.shard + 1, [], 0

    def close(self) -> dict[str, Any]:
        self._flush()
        io.write_json(self.out / _INDEX, self.index, indent=0)
        return self.index


def _rows(states_of, chunk) -> list[tuple[str, np.ndarray, str]]:
    """(id, its real tokens' states as stored, dtype) of each item of one batch."""
    h, mask = states_of(chunk)
    dtype = str(h.dtype).removeprefix("torch.")
    return [(it["id"], _to_numpy(h[r, : int(mask[r].sum())]), dtype) for r, it in enumerate(chunk)]


def write(
    states_of,
    items: list[dict[str, Any]],
    out_dir: str | os.PathLike,
    batch_size: int,
    lengths=None,
) -> dict[str, Any] | None:
    """``states_of(items)`` -> (states [B, T, d], mask [B, T]), sharded into ``out_dir``; the
    index on process 0, None on the others. Process r extracts batch r of each round of W, each
    the batch one process would run, so the files are byte-identical to one process's."""
    if lengths is not None:
        items = [items[i] for i in sorted(range(len(items)), key=lambda i: lengths[i])]
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    w = parallel.world_size()
    sink = _Shards(Path(out_dir)) if parallel.rank() == 0 else None
    for start in range(0, len(batches), w):
        mine = shard(batches[start : start + w])  # none in a short last round
        for rows in collect([_rows(states_of, b) for b in mine]):
            for row in rows:
                sink.add(*row)
    if w > 1:
        done = len(shard(batches))
        print(f"[states] {out_dir}: process {parallel.rank()} of {w} extracted {done} of "
              f"{len(batches)} batches", flush=True)  # fmt: skip
    return sink.close() if sink is not None else None


def _save(tmp: Path, arr: np.ndarray) -> None:
    with open(tmp, "wb") as f:  # a file object: np.save would add ".npy" to the temporary name
        np.save(f, arr)


@dataclass(frozen=True)
class StatesSpec:
    """A cache job as its rule passes it (``identity`` None: ``params``)."""

    what: str
    params: dict[str, Any]
    kind: str
    test_items: int = 0
    identity: Any = None
    role: str = "source"


def compute(
    spec: StatesSpec, *, model_card, train_file, eval_file, out_dir: str | os.PathLike
) -> dict[str, Any] | None:
    """The cache of one key from ``model_card`` and the data, written to ``out_dir``; data-parallel,
    process 0 writes the cache and its summary and returns it, the others None."""
    from ablate.bridge import models, world
    from ablate.bridge import params as bridge_params
    from ablate.bridge.pair import Pair, card_inputs, model_dtype
    from ablate.core.outputs import provenance

    started = time.time()
    what, params, dataset_kind, test_items = spec.what, spec.params, spec.kind, spec.test_items
    key = "source" if what == "source" else "target"  # the model's key in the cache's identity
    models.check_pinned({key: model_card}, (spec.identity or {}).get("key"))
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    # the key's params, the others at their defaults (as caches.teacher_key leaves them out)
    p = bridge_params.check(bridge_params.resolve(params, f"{what} states"))
    model, tok = models.load(model_card, dtype=model_dtype(p), device=dev)
    if what == "source":
        pair = Pair(model, tok, None, None, dataset_kind, p)
        states_of = pair.source_states
    else:
        pair = Pair(None, None, model, tok, dataset_kind, p)
        states_of = pair.teacher_states
    lengths = _lengths_of(pair, what, dev)
    out = Path(out_dir)
    counts, rates = {}, {}
    for split in FROZEN_SPLITS[what]:
        path, n = (train_file, None) if split == "train" else (eval_file, test_items)
        items = world.load_dataset(path, dataset_kind)[:n]
        t0 = time.perf_counter()
        index = write(states_of, items, out / split, p.eval_batch_size, lengths(items))
        if index is None:
            continue  # another data-parallel process: process 0 writes the cache
        tokens, seconds = sum(index["length"]), time.perf_counter() - t0  # real tokens, no padding
        rates[split] = dict(
            tokens=tokens, seconds=seconds, tokens_per_s=tokens / max(seconds, 1e-9)
        )
        counts[split] = len(items)
        print(f"[{what} states] {split}: {len(items)} items -> {out / split}", flush=True)
    if parallel.rank() != 0:
        return None
    summary = {
        "what": what,
        "items": counts,
        "throughput": rates,  # of the whole job: over its processes
        "processes": parallel.world_size(),
        "wall_s": time.time() - started,
        "provenance": provenance.collect(
            config_slice=spec.identity if spec.identity is not None else params,
            inputs={
                "train_file": train_file,
                "eval_file": eval_file,
                **card_inputs(model_card=model_card),
            },  # fmt: skip
            started=started,
        ),
    }
    io.write_json(out / "summary.json", summary)
    return summary


def _lengths_of(pair, what: str, device: str):
    """Each item's input length, to batch by length on a GPU; None on CPU, where the data's order
    keeps the embedded default's caches bit for bit (a batch shape changes the float rounding)."""
    if device != "cuda":
        return lambda items: None
    if what == "source":
        return lambda items: [len(pair.source_ids(i)) for i in items]
    tok, kind = pair.tgt_tok, pair.kind
    return lambda items: [
        len(pair.prompt_ids(i)) + len(evaluate.answer_ids(tok, kind, i)) for i in items
    ]


class Reader:
    """The cached states of one or more split folders, memory-mapped; looked up by item id."""

    def __init__(self, folders):
        self.rows: dict[str, tuple[np.ndarray, int, int]] = {}
        self.dtype = None
        for folder in folders:
            folder = Path(folder)
            if not (folder / _INDEX).exists():
                raise StatesError(
                    f"{folder} holds no {_INDEX}: the source-state cache is unfinished"
                )
            index = json.loads((folder / _INDEX).read_text())
            self.dtype = index["dtype"]
            shards = {
                s: np.load(folder / f"shard-{s:05d}.npy", mmap_mode="r")
                for s in sorted(set(index["shard"]))
            }
            for i, s, start, n in zip(
                index["ids"], index["shard"], index["start"], index["length"], strict=True
            ):
                self.rows[i] = (shards[s], start, n)

    def batch(self, items, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(states [B, S, d], mask [B, S]) of ``items``, right-padded, on ``device``."""
        missing = [it["id"] for it in items if it["id"] not in self.rows]
        if missing:
            raise StatesError(f"the source-state cache has no item {missing[0]!r}")
        rows = [self.rows[it["id"]] for it in items]
        width = max(n for _, _, n in rows)
        parts = [_to_torch(a[start : start + n], self.dtype) for a, start, n in rows]
        h = torch.zeros(len(items), width, parts[0].shape[-1], dtype=parts[0].dtype)
        mask = torch.zeros(len(items), width, dtype=torch.long)
        for r, t in enumerate(parts):
            h[r, : t.shape[0]] = t
            mask[r, : t.shape[0]] = 1
        return h.to(device, non_blocking=True), mask.to(device)


def open_cache(folder: str | os.PathLike, what: str = "source") -> Reader:
    """A cache written by :func:`compute` (every split it holds)."""
    return Reader([Path(folder) / s for s in FROZEN_SPLITS[what]])
