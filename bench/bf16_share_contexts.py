"""How exactly `mask.eval.softmax_dtype: model` reproduces the original study's bf16 sums on the
embedded tasks (docs/differences.md, "What agrees"), with `share_contexts` on (the default) and
off: per request, the pipeline's summed log-likelihood (the original protocol: no BOS, the whole
continuation in the row) against ``eval_mcq.py``'s (bench/references.py's ``eval_mcq_logprob``:
one forward per request, bf16 log-softmax, bf16 sum).

    PYTHONPATH=src python bench/bf16_share_contexts.py MODEL_DIR TASK_DIR [--out FILE.md]

MODEL_DIR: a pretrained tiny model (a run's ``results/model/base/final``), loaded in bf16 with
sdpa; TASK_DIR: the embedded tasks (``results/data/tasks``), every doc, through lm-eval's task
machinery (the requests an evaluation scores). Policy ``causal`` only: ``share_contexts`` acts
under ``causal`` and ``prefix_bidir`` (the original has no ``prefix_bidir`` evaluation) and never
under ``prefill_bidir``. One thread. A bf16 step is the spacing of bf16 numbers at the
original's sum (1/4 for a sum between -32 and -64).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from references import eval_mcq_logprob  # noqa: E402

from ablate.mask.lm_tasks import load_tasks, local_tasks  # noqa: E402
from ablate.mask.policy_lm import PROTOCOLS, MaskPolicyLM  # noqa: E402
from ablate.mask.scoring import score_requests  # noqa: E402


def bf16_step(value: float) -> float:
    """The spacing of bf16 numbers at ``value`` (8 significant bits)."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    return 2.0 ** (math.frexp(abs(value))[1] - 8)


def task_requests(lm, task_dir: Path) -> list[tuple[str, list[int], list[int]]]:
    """(task, context tokens, continuation tokens) of every request, encoded as ``lm`` does."""
    names = sorted(local_tasks(task_dir))
    tasks, _, _ = load_tasks(names, task_dirs=[task_dir])
    out = []
    for name in names:
        task = tasks[name]
        task.build_all_requests(rank=0, world_size=1)
        for inst in task.instances:
            ctx, cont = lm._encode_pair(*inst.args)
            out.append((name, ctx, cont))
    return out


def measure(model, reqs, share: bool, refs: list[float]) -> dict:
    got = score_requests(
        model,
        [(c, x) for _, c, x in reqs],
        "causal",
        share_contexts=share,
        whole_continuation=PROTOCOLS["original"]["whole_continuation"],
        softmax_in_model_dtype=True,
    )
    gaps = [abs(g - r) for (g, _), r in zip(got, refs, strict=True)]
    steps = [gap / bf16_step(r) for gap, r in zip(gaps, refs, strict=True)]
    differ = [i for i, gap in enumerate(gaps) if gap > 0]
    return {
        "share_contexts": share,
        "requests": len(refs),
        "sums that differ": len(differ),
        "max |diff| (nats)": max(gaps),
        "max |diff| (bf16 steps)": max(steps),
        "differing in bf16 steps": ", ".join(
            f"{k:g}: {n}"
            for k, n in sorted(pd.Series([steps[i] for i in differ]).value_counts().items())
        )
        or "-",
        "differing by task": ", ".join(
            f"{t}: {n}"
            for t, n in sorted(pd.Series([reqs[i][0] for i in differ]).value_counts().items())
        )
        or "-",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("tasks", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    lm = MaskPolicyLM(
        str(args.model), "causal", dtype="bfloat16", device="cpu", protocol="original"
    )
    reqs = task_requests(lm, args.tasks)
    refs = [eval_mcq_logprob(lm.model, c, c + x) for _, c, x in reqs]
    table = pd.DataFrame([measure(lm.model, reqs, share, refs) for share in (True, False)])
    text = (
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"ATen CPU capability {torch.backends.cpu.get_cpu_capability()}, 1 thread, "
        f"{time.perf_counter() - t0:.0f} s\n\n{table.to_markdown(index=False)}\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
