"""Full-weight training under a mask policy: SFT (stages 3/5) and the tiny model's pretraining, on
the core's training (:mod:`ablate.core.training`).

Two entry points share the policy's recipe for the core's loop:

- :func:`finetune`: instruction/response pairs, loss on response tokens only, every forward built by
  ``masks.policy_forward_kwargs`` (so ``prefix_bidir`` trains a real prefix-LM), a leakage gate
  before the first step, eval loss on held-out pairs.
- :func:`pretrain`: the embedded tiny model's causal pretraining on a text corpus (packed into
  ``max_seq_len`` blocks, loss on every token), starting from a fresh tiny Ministral-3.

Modules (import from the one that defines a name): ``policy``, ``packing``, ``params``
(``MaskParams``), ``gate`` (the leakage gate), ``entries`` (``finetune``, ``pretrain``), ``cli``
(``ablate train``); each module's docstring says what it holds.
"""
