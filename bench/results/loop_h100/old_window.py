"""The old tree's bench_finetune (HF Trainer path) timed as the new bench times the loop: one
interval from a device sync after the warm-up steps to one after the last (the old bench reported
the mean of the Trainer's unsynced per-step host times). Run in the old tree's root:
    PYTHONPATH=src:bench python old_window.py --only B6-adamw-compile \
        --policies causal prefix_bidir --passes 1 --warmup 3 --timed 8
"""

import sys
import time

import bench_finetune as bf
import torch
from transformers import TrainerCallback

warmup = int(sys.argv[sys.argv.index("--warmup") + 1])
timed = int(sys.argv[sys.argv.index("--timed") + 1])


class Window(TrainerCallback):
    def __init__(self):
        self.t0 = self.t1 = None

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == warmup:
            torch.cuda.synchronize()
            self.t0 = time.perf_counter()
        if state.global_step == warmup + timed:
            torch.cuda.synchronize()
            self.t1 = time.perf_counter()


windows = []
original = bf.bench_trainer


def with_window(model, data, policy, p, label, callbacks):
    w = Window()
    windows.append((label, w))
    return original(model, data, policy, p, label, [*callbacks, w])


bf.bench_trainer = with_window
bf.main(sys.argv[1:])
for label, w in windows:
    print(f"window {label}: {(w.t1 - w.t0) / timed:.4f} s/step over {timed} steps")
