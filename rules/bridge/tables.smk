# Bridge tables, claims and plots: what the study found, computed from its runs.
# summary.csv: one row per grid entry (an entry declared same_as points at its twin's run id);
# claims.csv: the LatentWire study's claims with a paired test each. Per job done / stale / to run: STATUS.md.


localrules:
    bridge_summary,
    bridge_claims,
    bridge_plots,


BRIDGE_RUN_SUMMARIES = [bout("run_summary", run_id=r) for r in BRIDGE_RUN_IDS]
BRIDGE_RUN_SAMPLES = [bout("run_samples", run_id=r) for r in BRIDGE_RUN_IDS]
BRIDGE_INFER_SAMPLES = [bout("infer_samples", run_id=r) for r in BRIDGE_INFER_IDS]
BRIDGE_INFER_SUMMARIES = [bout("infer_summary", run_id=r) for r in BRIDGE_INFER_IDS]


rule bridge_summary:
    input:
        summaries=BRIDGE_RUN_SUMMARIES,
    output:
        csv=report(
            bout("summary"),
            caption="../../workflow/report/bridge_summary.rst",
            category="Bridge",
            labels={"table": "per-entry summary"},
        ),
        curves=bout("curves"),
    log:
        bout("log", folder="tables", stem="summary"),
    conda:
        "../../environment.yml"
    params:
        entries=bridge_entries_table(),
        run_ids=BRIDGE_RUN_IDS,  # the order of input.summaries
        benchmarks={
            r: bout("benchmark", folder="train", stem=r) for r in BRIDGE_RUN_IDS
        },
        # GPU hours = benchmark wall time x the GPUs a training job holds
        gpus=bridge_res("train", "gpu"),
    script:
        "../../workflow/scripts/bridge_summary.py"


rule bridge_claims:
    input:
        summary=bout("summary"),
        run_samples=BRIDGE_RUN_SAMPLES,
        infer_samples=BRIDGE_INFER_SAMPLES,
    output:
        csv=bout("claims"),
        md=bout("claims_md"),
        # the report opens HTML from its icon (a CSV or .md is only offered as a download)
        html=report(
            bout("claims_html"),
            caption="../../workflow/report/bridge_claims.rst",
            category="Bridge",
            labels={"table": "claims"},
        ),
        tex=bout("claims_tex"),
    log:
        bout("log", folder="tables", stem="claims"),
    conda:
        "../../environment.yml"
    params:
        entries=bridge_entries_table(),
        run_ids=BRIDGE_RUN_IDS,  # the order of input.run_samples
        infer_roles=[role for role, _ in BRIDGE.infer],  # the order of input.infer_samples
        # the tiny embedded pair: the table says it shows the plumbing, not the seed's claims
        embedded=all(BRIDGE_CFG[r]["source"] == "embedded" for r in bridge_pins.ROLES),
    script:
        "../../workflow/scripts/bridge_claims.py"


rule bridge_plots:
    input:
        summary=bout("summary"),
        curves=bout("curves"),
        infer=BRIDGE_INFER_SUMMARIES,
    output:
        curves=report(
            bout("plot_curves"),
            caption="../../workflow/report/bridge_plots.rst",
            category="Bridge",
            labels={"figure": "accuracy over steps"},
        ),
        k=report(
            bout("plot_k"),
            caption="../../workflow/report/bridge_plots.rst",
            category="Bridge",
            labels={"figure": "accuracy against K"},
        ),
        baselines=report(
            bout("plot_baselines"),
            caption="../../workflow/report/bridge_plots.rst",
            category="Bridge",
            labels={"figure": "baselines"},
        ),
    log:
        bout("log", folder="tables", stem="plots"),
    conda:
        "../../environment.yml"
    script:
        "../../workflow/scripts/bridge_plots.py"
