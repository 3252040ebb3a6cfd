# The mask study's claims table: each claim of the study (config `claims:`, docs/claims.md)
# computed from the evaluations' per-item results as supported / not supported / inconclusive /
# not run, with the numbers, the paired test and its p-value.
from snakemake.exceptions import WorkflowError

from ablate.core.config import ConfigError
from ablate.mask.study import claims_evaluations, resolve_claims

try:
    MASK_CLAIMS = resolve_claims(config["claims"], VARIANTS)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

# the evaluations the claims read: the base model and each variant a role names
MASK_CLAIMS_EVALS = [
    out(f"eval/{m}/{p}") for m, p in claims_evaluations(MASK_CLAIMS, ABLATED)
]


localrules:
    mask_claims,


rule mask_claims:
    input:
        metrics=[f"{d}/metrics.json" for d in MASK_CLAIMS_EVALS],
        samples=[f"{d}/samples.parquet" for d in MASK_CLAIMS_EVALS],
    output:
        csv=report(
            out("claims/mask.csv"),
            caption="../../workflow/report/claims.rst",
            category="Claims",
            labels={"table": "mask study claims"},
        ),
        md=out("claims/mask.md"),
    log:
        out("logs/mask_claims/mask.log"),
    conda:
        "../../environment.yml"
    params:
        claims=MASK_CLAIMS,
        ablated_policy=ABLATED,
        tasks=[t["name"] for t in config["eval"]["tasks"]],
    script:
        "../../workflow/scripts/mask_claims.py"
