# The mask study's claims table: each claim of the study (config `mask.claims:`, docs/claims.md)
# computed from the evaluations' per-item results as supported / not supported / inconclusive /
# not run, with the numbers, the paired test and its p-value.
from ablate.mask.study import resolve_claims

try:
    MASK_CLAIMS = resolve_claims(MASK["claims"], VARIANTS)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

# the evaluations the claims read: the upstream of the job list's claims job (the base model
# and each variant a role names), so STATUS and the planner see the inputs Snakemake does
_CLAIMS_JOB = next(j for j in MASK_JOBS if j.rule == "mask_claims")
MASK_CLAIMS_EVALS = [j for j in MASK_JOBS if j.name in _CLAIMS_JOB.upstream]


localrules:
    mask_claims,


rule mask_claims:
    input:
        metrics=[j.outputs["metrics"] for j in MASK_CLAIMS_EVALS],
        samples=[j.outputs["samples"] for j in MASK_CLAIMS_EVALS],
    output:
        csv=out(P["claims_csv"]),
        md=out(P["claims_md"]),
        # the report opens HTML from its icon (a CSV or .md is only offered as a download)
        html=report(
            out(P["claims_html"]),
            caption="../../workflow/report/claims.rst",
            category="Claims",
            labels={"table": "mask study claims"},
        ),
        tex=out(P["claims_tex"]),
    log:
        out(P["claims_log"]),
    conda:
        "../../environment.yml"
    params:
        claims=MASK_CLAIMS,
        ablated_policy=MASK["eval"]["ablated_policy"],
        tasks=[t["name"] for t in MASK["eval"]["tasks"]],
        # named under the table (the evaluations' protocol is read from their records)
        sft_formats=sorted({v["params"]["sft_format"] for v in VARIANTS.values()}),
    script:
        "../../workflow/scripts/mask_claims.py"
