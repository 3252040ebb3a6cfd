# The mask study's claims table: each claim of the study (config `mask.claims:`, docs/claims.md)
# computed from the evaluations' per-item results as supported / not supported / inconclusive /
# not run, with the numbers, the paired test and its p-value (each model's own, in its folder,
# for a multi-model config; then each claim counted over the models).
from ablate.mask.variants import resolve_claims

try:
    MASK_CLAIMS = resolve_claims(MASK["claims"], VARIANTS)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


localrules:
    mask_claims,


rule mask_claims:
    input:
        unpack(claims_evals),
    output:
        csv=mout("claims_csv"),
        md=mout("claims_md"),
        # the report opens HTML from its icon (a CSV or .md is only offered as a download)
        html=report(
            mout("claims_html"),
            caption="../../workflow/report/claims.rst",
            category="Claims",
            subcategory=REPORT_MODEL,
            labels={"table": "mask study claims"},
        ),
        tex=mout("claims_tex"),
    log:
        mout("claims_log"),
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


if LMS:

    localrules:
        models_claims,

    # A multi-model config: each claim counted over the models, each model's verdicts beside it.
    rule models_claims:
        input:
            tables=expand(mout("claims_csv"), lm=LMS),
        output:
            csv=out(P["claims_csv"]),
            md=out(P["claims_md"]),
            html=report(
                out(P["claims_html"]),
                caption="../../workflow/report/claims.rst",
                category="Claims",
                labels={"table": "mask study claims, every model"},
            ),
            tex=out(P["claims_tex"]),
        log:
            out(P["models_claims_log"]),
        conda:
            "../../environment.yml"
        params:
            models=LMS,
        script:
            "../../workflow/scripts/models_claims.py"
