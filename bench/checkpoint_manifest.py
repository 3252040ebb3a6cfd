"""What a Trainer checkpoint's hash manifest costs at save and at resume: a checkpoint-sized
folder of safetensors-sized shards is written, then ``checkpoint_integrity.write_manifest`` (the save's last
step before its completion marker) and ``checkpoint_integrity.verify`` (a resume's check) are timed.

    python3 bench/checkpoint_manifest.py --gb 21 --shard-gb 2 --dir /tmp/ckpt

21 GB is a Trainer checkpoint at the 3.43 B shape (bf16 weights and fp32 masters,
docs/training.md, "Disk"). Prints a markdown table; ``--out`` writes its rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ablate.core.outputs import checkpoint_integrity  # noqa: E402

CHUNK = 64 << 20


def write_shards(folder: Path, gb: float, shard_gb: float) -> list[Path]:
    """ceil(gb / shard_gb) files of shard_gb GB (the last one smaller), of non-constant bytes."""
    folder.mkdir(parents=True)
    block = os.urandom(CHUNK)
    left, paths = int(gb * 1e9), []
    for i in range(math.ceil(gb / shard_gb)):
        size = min(left, int(shard_gb * 1e9))
        path = folder / f"model-{i:05d}.safetensors"
        with open(path, "wb") as f:
            for start in range(0, size, CHUNK):
                f.write(block[: min(CHUNK, size - start)])
        paths.append(path)
        left -= size
    return paths


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gb", type=float, default=21.0, help="checkpoint size (default 21: 3.43 B)")
    ap.add_argument("--shard-gb", type=float, default=2.0, help="file size (safetensors shards)")
    ap.add_argument("--dir", default="/tmp/ckpt_manifest_bench", help="scratch folder (removed)")
    ap.add_argument("--out", help="JSON rows")
    args = ap.parse_args(argv)
    folder = Path(args.dir)
    shutil.rmtree(folder, ignore_errors=True)
    write_s = timed(lambda: write_shards(folder, args.gb, args.shard_gb))
    manifest_s = timed(lambda: checkpoint_integrity.write_manifest(folder))
    verify_s = timed(lambda: checkpoint_integrity.verify(folder))
    files = len(list(folder.glob("*.safetensors")))
    shutil.rmtree(folder)
    row = {
        "gb": args.gb,
        "files": files,
        "hash_threads": min(files, os.cpu_count() or 1, 8),
        "cpus": os.cpu_count(),
        "write_s": round(write_s, 2),
        "manifest_s": round(manifest_s, 2),
        "manifest_gb_s": round(args.gb / manifest_s, 2),
        "verify_s": round(verify_s, 2),
    }
    print("| " + " | ".join(row) + " |")
    print("|" + "---|" * len(row))
    print("| " + " | ".join(str(v) for v in row.values()) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps(row, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
