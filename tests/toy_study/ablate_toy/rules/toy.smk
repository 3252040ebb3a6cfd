# The toy study's one rule: flip the coin, write the flips (with their config slice) and the claim.
from ablate_toy import layout as toy_layout

TOY_JOBS = toy_layout.jobs(config)
JOBS.extend(TOY_JOBS)


localrules:
    toy_flip,


rule toy_flip:
    output:
        **TOY_JOBS[0].outputs,
    log:
        TOY_JOBS[0].log,
    benchmark:
        TOY_JOBS[0].benchmark
    params:
        config=job_config("toy_flip"),
    run:
        from ablate_toy import flip

        flip.run(params.config, output.flips, output.claims)
