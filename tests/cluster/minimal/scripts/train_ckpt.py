"""A real finetune of a tiny model with Trainer checkpoints, paced at `step_s` seconds a step: the
test's clock, so that an instance can be lost between two saves. Pacing changes no number.
`hang_at` > 0: step `hang_at` never ends (a hung job)."""

import json
import sys
import time

import torch
from transformers import TrainerCallback

from ablate.mask.training.run import FinetuneSpec, finetune

model, data, probe, params, out, step_s, hang_at = sys.argv[1:8]


class Paced(TrainerCallback):
    def on_step_begin(self, args, state, control, **kw):
        if state.global_step + 1 == int(hang_at):
            print(f"hanging in step {hang_at}", flush=True)
            time.sleep(3600)

    def on_step_end(self, args, state, control, **kw):
        time.sleep(float(step_s))


torch.set_num_threads(1)  # the reference run's thread count: the same numbers
with open(probe) as f, open(params) as g:
    probe_result, p = json.load(f), json.load(g)
finetune(
    FinetuneSpec.parse("prefix_bidir", p),
    model_path=model,
    data=data,
    out_dir=out,
    probe_result=probe_result,
    callbacks=[Paced()],
)
