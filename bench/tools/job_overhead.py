"""Where a finetune's and an evaluation's seconds go outside their steps: one model built and
pretrained for a step, finetuned for a few steps, evaluated on a few documents, each through the
pipeline's own entry points, then the ``phases`` each wrote printed side by side.

    python bench/tools/job_overhead.py --shape tiny                      # CPU, seconds
    python bench/tools/job_overhead.py --shape medium --out bench/results/job_overhead_cpu_medium.json
    python bench/tools/job_overhead.py --shape 3b                        # GPU: the Ministral-3-3B shape

Needs the embedded data of a finished run (``--data``: its results/data folder) for the corpus,
the SFT pairs and the task folders. Start-up (imports) is not in these numbers: the jobs run in
one process; the pipeline's jobs record it as ``phases.startup``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from ablate.mask.tiny import MINISTRAL3_3B

SHAPES = {
    "tiny": dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16),
    # ~0.3 B parameters (134 M of them the tied 131k-token embedding): the CPU profile shape
    "medium": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=12,
                   num_attention_heads=16, num_key_value_heads=4, head_dim=64),
    # the real shape; the vocabulary and the tied embedding come with the embedded model
    "3b": {k: v for k, v in MINISTRAL3_3B.items() if k not in ("vocab_size", "tie_word_embeddings")},
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=SHAPES, default="tiny")
    ap.add_argument("--data", default="results/data", help="a finished run's results/data folder")
    ap.add_argument("--steps", type=int, default=3, help="finetune steps")
    ap.add_argument("--docs", type=int, default=20, help="documents per eval task")
    ap.add_argument("--work", help="scratch folder (default: a temporary one)")
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args(argv)

    from ablate.mask import evaluation, tiny
    from ablate.mask.training.entries import FinetuneSpec, finetune, pretrain
    from ablate.mask.training.params import resolve_params

    data = Path(args.data)
    work = Path(args.work or tempfile.mkdtemp(prefix="job_overhead_"))
    tok = work / "tokenizer"
    tiny.prepare_tekken_tokenizer(tok)
    gpu = __import__("torch").cuda.is_available()
    dtype = "bfloat16" if gpu else "float32"
    t0 = time.time()
    pre = pretrain(
        corpus=data / "corpus.jsonl",
        tokenizer_dir=tok,
        arch=SHAPES[args.shape],
        params=resolve_params(
            dict(max_steps=1, max_seq_len=64, batch_size=2, eval_size=0, save_steps=0), "pretrain"
        ),
        out_dir=work / "base",
    )
    rows = [("prepare_model", "pretrain 1 step", time.time() - t0, pre.get("phases") or {})]
    t0 = time.time()
    ft = finetune(
        FinetuneSpec.parse("causal", dict(max_steps=args.steps, max_seq_len=128, batch_size=2, grad_accum=1,
                    eval_size=8, eval_steps=args.steps, save_steps=0)),
        model_path=work / "base" / "final",
        data=data / "sft.jsonl",
        out_dir=work / "ft",
        probe_result={"policy": "causal", "leaks": False},
    )  # fmt: skip
    rows.append(("finetune", f"{args.steps} steps", time.time() - t0, ft.get("phases") or {}))
    tasks = sorted(p.stem for p in (data / "tasks").glob("*.yaml"))
    t0 = time.time()
    ev = evaluation.evaluate(
        evaluation.EvalSpec.parse(tasks, limit=args.docs, dtype=dtype, bootstrap_iters=0),
        model=work / "ft" / "final",
        policy="causal",
        out_dir=work / "eval",
        task_dirs=[data / "tasks"],
    )
    rows.append(("eval_model", f"{len(tasks)} tasks x {args.docs} docs", time.time() - t0,
                 ev.get("phases") or {}))  # fmt: skip

    weights = sum(f.stat().st_size for f in (work / "ft" / "final").glob("*.safetensors"))
    print(f"shape {args.shape}: {weights / 1e9:.2f} GB of weights per checkpoint, "
          f"{'GPU ' + dtype if gpu else 'CPU fp32'}, {os.cpu_count()} cores")  # fmt: skip
    print("| job | work | wall s | phases (s) |\n|---|---|---:|---|")
    for rule, what, wall, ph in rows:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in ph.items() if v is not None and k != "total")
        print(f"| {rule} | {what} | {wall:.1f} | {parts} |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(
            {"shape": args.shape, "weights_bytes": weights, "gpu": gpu,
             "rows": [dict(rule=r, work=w, wall_s=s, phases=p) for r, w, s, p in rows]},
            indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
