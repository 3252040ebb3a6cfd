"""A real finetune of a tiny model with checkpoints, paced at `step_ms` milliseconds a step: the
test's clock, so that an instance can be lost between two saves. Pacing changes no number.
`hang_at` > 0: step `hang_at` never begins (a hung job). Both act in a reporter of the training
loop, which reports every step's loss (the params' ``logging_steps: 1``)."""

import json
import sys
import time

import torch

from ablate.mask.training.entries import FinetuneSpec, finetune

model, data, probe, params, out, step_ms, hang_at = sys.argv[1:8]


class Paced:
    """The loop's reporter: after each step's loss is reported, wait `step_ms`; after step
    `hang_at` - 1, hang."""

    def begin(self, step):
        pass

    def log(self, step, logs, tokens):
        if "loss" not in logs:  # an evaluation's entry: the step was paced already
            return
        if step + 1 == int(hang_at):
            print(f"hanging in step {hang_at}", flush=True)
            time.sleep(3600)
        time.sleep(int(step_ms) / 1000)

    def end(self):
        pass


torch.set_num_threads(1)  # the reference run's thread count: the same numbers
with open(probe) as f, open(params) as g:
    probe_result, p = json.load(f), json.load(g)
if p.get("logging_steps") != 1:  # the config's default is 10
    sys.exit(
        f"train_ckpt.py paces every step: logging_steps must be 1, not {p.get('logging_steps')}"
    )
finetune(
    FinetuneSpec.parse("prefix_bidir", p),
    model_path=model,
    data=data,
    out_dir=out,
    probe_result=probe_result,
    reporters=[Paced()],
)
