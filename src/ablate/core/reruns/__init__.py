"""What a rerun does with a finished job: restores it from the run cache, or names
the config keys that made it stale.

Modules: ``runcache`` (the run cache: key, store, restore), ``runcache_storage`` (the run cache at
a Snakemake storage plugin's location), ``stale`` (which finished jobs a config edit makes stale).
"""
