"""The cross-model latent bridge study (the LatentWire study), as library functions.

A frozen *source* LM reads a question; a trained translator turns its last-layer hidden states into
K soft tokens; a frozen *target* LM of another family answers from them (docs/bridge.md).
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
