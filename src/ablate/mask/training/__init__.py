"""Full-weight training under a mask policy: SFT (stages 3/5) and the tiny model's pretraining, on
the core's training (:mod:`ablate.core.training`).

Two entry points share the policy's recipe for the core's loop:

- :func:`finetune`: instruction/response pairs, loss on response tokens only, every forward built by
  ``masks.policy_forward_kwargs`` (so ``prefix_bidir`` trains a real prefix-LM), a leakage gate
  before the first step, eval loss on held-out pairs.
- :func:`pretrain`: the embedded tiny model's causal pretraining on a text corpus (packed into
  ``max_seq_len`` blocks, loss on every token), starting from a fresh tiny Ministral-3.

Modules (import from the one that defines a name): ``policy`` (the policy's recipe: its forward
kwargs, packed steps as rows), ``packing`` (packed SFT steps:
collator, per-example mask), ``params`` (the study's training params, ``MaskParams``: the core's keys, its own and the
probe's), ``gate`` (the leakage gate: its refusal and error), ``entries``
(``finetune``, ``pretrain``), ``cli`` (``main``, ``ablate train``).
"""
