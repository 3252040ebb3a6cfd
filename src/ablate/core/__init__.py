"""What both studies share and no study is named in, in subpackages by what they do.

``outputs`` (atomic files, provenance, records, checkpoints' integrity), ``reruns`` (the run cache,
stale jobs), ``trees`` (results trees, experiments, what differs between runs), ``execution``
(GPUs, launching, interrupts, preflight), ``reports`` (STATUS, claims, statistics, results trees
side by side, tracking), ``models`` (the model loader, generation), ``training`` (the loop and its
parts) and ``planner`` (runtime and cost); at the top the config helpers (``config``) and the job
type and study parts every group imports (``jobs``), and ``module_map`` (``ablate map``: the
module map of docs/design.md).
"""
