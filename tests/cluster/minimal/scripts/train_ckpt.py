"""A real finetune of a tiny model with Trainer checkpoints, paced at `step_s` seconds a step: the
test's clock, so that an instance can be lost between two saves. Pacing changes no number."""

import json
import sys
import time

import torch
from transformers import TrainerCallback

from ablate.mask.training.run import finetune

model, data, probe, params, out, step_s = sys.argv[1:7]


class Paced(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        time.sleep(float(step_s))


torch.set_num_threads(1)  # the reference run's thread count: the same numbers
with open(probe) as f, open(params) as g:
    probe_result, p = json.load(f), json.load(g)
finetune(
    model_path=model,
    data=data,
    policy="prefix_bidir",
    params=p,
    out_dir=out,
    probe_result=probe_result,
    callbacks=[Paced()],
)
