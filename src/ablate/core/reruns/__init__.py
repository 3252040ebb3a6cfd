"""What a rerun does with a finished job: restores it from the run cache, or names
the config keys that made it stale.

Modules: ``runcache`` (the run cache: key, store, restore), ``runcache_miss`` (why a job missed:
what differs from the nearest entry), ``runcache_storage`` (the run cache at a Snakemake storage
plugin's location), ``cache_prune`` (``ablate cache``: its size, pruned to a bound), ``stale``
(which finished jobs a config edit makes stale).
"""
