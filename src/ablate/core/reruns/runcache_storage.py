"""The run cache at a Snakemake storage plugin's location (config ``run_cache: {storage: NAME,
prefix: QUERY, settings: {...}}``): S3, a cluster's shared filesystem through
``snakemake-storage-plugin-fs``, any plugin that can read and write an object.

An entry travels as one object, ``<prefix>/<key>.tar``, restored from a local copy after the
same check as a local entry, through the provider's synchronous object interface (as Snakemake's
storage cache uses it).
"""

from __future__ import annotations

import importlib
import logging
import tarfile
from pathlib import Path
from typing import Any


class PluginEntries:
    """Entries at a storage plugin's location; ``work`` is a local scratch folder."""

    def __init__(self, spec: dict[str, Any], work: Path):
        name = spec["storage"].replace("-", "_")
        module = importlib.import_module(f"snakemake_storage_plugin_{name}")
        settings_cls = getattr(module, "StorageProviderSettings", None)
        settings = settings_cls(**spec.get("settings", {})) if settings_cls else None
        self.provider = module.StorageProvider(
            local_prefix=work / "plugin",
            logger=logging.getLogger("ablate.runcache"),
            settings=settings,
        )
        self.prefix = spec["prefix"].rstrip("/")
        self.work = work

    def where(self, key: str) -> str:
        return f"{self.prefix}/{key}.tar"

    def _object(self, key: str, local: Path):
        obj = self.provider.object(self.where(key))
        obj.set_local_path(local)
        return obj

    def exists(self, key: str) -> bool:
        return bool(self._object(key, self.work / f"{key}.tar").exists())

    def fetch(self, key: str) -> Path | None:
        """A local folder cache holding the entry of ``key``, or None when there is none."""
        tar = self.work / f"{key}.tar"
        obj = self._object(key, tar)
        if not obj.exists():
            return None
        obj.retrieve_object()
        local = self.work / "entries"
        with tarfile.open(tar) as t:
            t.extractall(local, filter="data")
        return local

    def put(self, local: Path, key: str) -> None:
        """Upload the entry ``local/<key>`` (written whole by runcache.store)."""
        tar = self.work / f"{key}.tar"
        with tarfile.open(tar, "w") as t:
            t.add(local / key, arcname=key)
        self._object(key, tar).store_object()
