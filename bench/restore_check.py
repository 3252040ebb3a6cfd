"""What the run cache's input check costs before a restore
(ablate.core.reruns.runcache.check_inputs): every checkpoint folder under a results folder, hashed
as its loader would, best of three.

    python bench/restore_check.py results        # prints one line per checkpoint
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ablate.core.outputs import checkpoint_integrity, provenance
from ablate.core.reruns import runcache


def main(results: str) -> None:
    cpu = provenance.cpu_info()
    avx512 = (cpu["cpu_flags"] or {}).get("avx512f")
    print(f"CPU: {cpu['cpu_model']}, AVX-512 {'yes' if avx512 else 'no'}")
    for manifest in sorted(Path(results).rglob(checkpoint_integrity.MANIFEST_NAME)):
        folder = manifest.parent
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            runcache.check_inputs([folder])
            best = min(best, time.perf_counter() - t)
        print(f"{folder}: {size / 1e6:.1f} MB in {best:.3f} s ({size / 1e6 / best:.0f} MB/s)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results")
