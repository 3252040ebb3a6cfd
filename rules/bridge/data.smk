# Bridge stage 0: the data. Embedded: the generated world (GSM8K-format word problems, a two-hop
# QA set, the pretraining corpus). Hub: GSM8K / HotpotQA rows as jsonl, fields checked. Either
# way a local job (a hub download needs the submit host's network; the world takes a second).


localrules:
    bridge_data,


rule bridge_data:
    output:
        files=[out(f) for f in bridge_layout.data_files(BRIDGE)],
        provenance=bout("data_provenance"),
    log:
        bout("log", folder="data", stem="data"),
    conda:
        "../../environment.yml"
    params:
        data=job_config("bridge_data"),
        # hub: the datasets the grid uses (the embedded world always holds both)
        datasets=[] if BRIDGE_EMBEDDED_DATA else bridge_grid.datasets_used(BRIDGE),
    script:
        "../../workflow/scripts/bridge_data.py"
