"""Running jobs: a GPU per job and how busy it was, jobs of many processes,
interrupts, the checks before any job, the terminal's lines and what rented machines cost.

Modules: ``gpus`` (a GPU per job), ``gpu_watch`` (the GPUs' utilisation and memory),
``parallel`` (data-parallel jobs: the launcher), ``interrupts`` (what an interrupt costs),
``preflight`` (GPU jobs on a machine without GPUs), ``targets`` (a target this config makes
nowhere), ``terminal`` (what a run prints), ``spend`` (what the rented instances cost).
"""
