"""Full-weight training under a mask policy: SFT (stages 3/5) and the tiny model's pretraining, on
the core's training (:mod:`ablate.core.training`).

A finetune's loss is on response tokens only, every forward under its policy (so ``prefix_bidir``
trains a real prefix-LM), with a leakage gate before the first step; the tiny model's pretraining
is causal, on text packed into ``max_seq_len`` blocks. Import a name from the module that defines it.
"""
