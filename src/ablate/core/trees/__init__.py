"""Results trees: the folders a configuration's runs write, experiments beside the
base, and what differs between runs.

Modules: ``results_trees`` (every tree under a folder and its records), ``results_origin`` (the
name and working directory a results folder was made under), ``results_lock`` (one running
Snakemake per results folder), ``experiments`` (a variant of the config in its own tree),
``exp_run`` (``ablate exp run``), ``exp_rm`` (``ablate exp rm``), ``runs`` (``ablate runs``),
``deltas`` (a tree's scores and claims against a base's, each delta with its paired interval),
``diff`` (``ablate diff``).
"""
