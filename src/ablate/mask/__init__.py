"""The attention-mask ablation study: mask policies, evaluation, finetuning, recovery."""

#: attn_implementation of the split-sdpa backend (``sdpa`` plus a fast prefix-LM path).
PREFIX_SDPA = "sdpa_prefix_split"
#: its config keys that were top-level before they moved under ``mask:`` (ablate.studies)
MOVED_CONFIG_KEYS = ("model", "data", "eval", "leakage", "finetune", "resources", "claims")
#: the attention backends this study adds to transformers (read through ``ablate.studies``)
ATTENTION_BACKENDS = {PREFIX_SDPA: "ablate.mask.split_sdpa"}
#: The study's rule files, in the order the Snakefile includes them (ablate.studies).
RULES = tuple(
    f"rules/mask/{name}.smk"
    for name in "common model data leakage finetune eval recovery report claims".split()
)


def hub_free(config: dict) -> bool:
    """Its model and data both embedded: none of its jobs needs the hub (ablate.studies)."""
    mask = config["mask"]
    return mask["model"]["source"] == "embedded" and mask["data"]["source"] == "embedded"
