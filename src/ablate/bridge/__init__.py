"""The cross-model latent bridge study (the LatentWire study), as library functions.

A frozen *source* LM reads a question; a trained translator turns its last-layer hidden states into
K soft tokens; a frozen *target* LM of another family answers from them. docs/bridge.md describes
the method, every parameter and how each of the seed's faults is made impossible.

Module map:

- :mod:`~ablate.bridge.world`: generated GSM8K-format problems, multi-hop QA, pretraining corpus;
  the prompt format; dataset loading with field checks (``DatasetError``).
- :mod:`~ablate.bridge.families`: the embedded models' families, default architectures and
  pretraining, as plain data (no torch: the planner reads them).
- :mod:`~ablate.bridge.models`: the two tiny embedded LMs (Mistral / Llama families, tokenizers
  trained here), ``prepare_model``, loading through model cards, ``kv_cache_mb_per_token``.
- :mod:`~ablate.bridge.params`: every grid-entry parameter, defaults from
  ``params.schema.yaml`` (package data, beside the study's config part ``config.schema.yaml``);
  validation naming the config key.
- :mod:`~ablate.bridge.switches`: what the training loop's switches do given the other settings
  (the loop reads them there; the run identity keeps one setting per behaviour).
- :mod:`~ablate.bridge.hub`: the hub dataset ids the study knows (an offline list with its date),
  checked at parse time.
- :mod:`~ablate.bridge.translator`: ``BottleneckedGatedTranslator``, save/load with a manifest.
- :mod:`~ablate.bridge.pair`: the frozen model pair: what each model is fed, the losses,
  bridged generation.
- :mod:`~ablate.bridge.evaluate`: inputs, the gold-leak guard (``GoldLeakError``), generation.
- :mod:`~ablate.bridge.leak`: what gives a gold answer away (the guard's spellings; QA through
  the scorer's normalisation).
- :mod:`~ablate.bridge.scoring`: GSM8K extraction (``[invalid]`` never correct), EM/F1.
- :mod:`~ablate.bridge.train`: ``train_entry`` (one grid entry: training, early stopping,
  restore-best, summary, per-sample rows) on the core's training loop, its checkpoints at each
  evaluation and the resume from the newest complete one (a killed job, a lost Vast retry).
- :mod:`~ablate.bridge.infer`: ``benchmark`` (ablation 4: five baselines, batch 1).
- :mod:`~ablate.bridge.grid`: the grid resolved at parse time (no torch): entries, run ids.
- :mod:`~ablate.bridge.pins`: the models' and the data's identity, hub branches and tags pinned
  to the commits they name.
- :mod:`~ablate.bridge.caches`: the frozen-state caches the grid needs and what each depends on.
- :mod:`~ablate.bridge.layout`: the layout (its study part ``layout``): file patterns, the
  job list, the targets.
- :mod:`~ablate.bridge.data`: the study's data files (embedded world or hub rows, with provenance).
- :mod:`~ablate.bridge.states`: frozen models' hidden states, computed once, read memory-mapped.
- :mod:`~ablate.bridge.parallel`: the data split of data-parallel bridge jobs and a loss term's
  count over the processes (the process group is :mod:`ablate.core.execution.parallel`'s).
- :mod:`~ablate.bridge.cost`: tokens and FLOPs of bridge work (the benchmark and the planner).
- :mod:`~ablate.bridge.tables`, :mod:`~ablate.bridge.plots`, :mod:`~ablate.bridge.claims`: the
  summary / curves tables, the figures, the LatentWire study's claims.
- :mod:`~ablate.bridge.plan`, :mod:`~ablate.bridge.status`: the study's side of the planner and of
  STATUS.md.
"""

#: The planner forecasts the bridge only when ``plan.studies`` names it (ablate.studies).
PLAN_OPT_IN = True
#: The study's rule files, in the order the Snakefile includes them (ablate.studies).
RULES = tuple(
    f"rules/bridge/{name}.smk"
    for name in ("common", "data", "models", "states", "train", "infer", "tables")
)


def hub_free(config: dict) -> bool:
    """Its data and both models embedded: none of its jobs needs the hub (ablate.studies)."""
    from ablate.bridge.pins import ROLES

    bridge = config["bridge"]
    return all(bridge[key]["source"] == "embedded" for key in ("data", *ROLES))
