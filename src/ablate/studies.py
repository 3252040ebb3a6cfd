"""The registry of studies, outside the core: each study's package and its three study parts
(:mod:`ablate.core.jobs`: ``layout``, ``status``, ``plan``). ``ablate.core``
names no study; it reads this registry. No torch: the Snakefile, STATUS and the planner import it.

What a study's package declares, and how one of another package registers (an entry point of the
group :data:`_ENTRY_POINTS`): docs/design.md, "Adding a study".
"""

from __future__ import annotations

import os
from importlib import import_module
from types import ModuleType

#: study (config key ``studies``) -> its package: the studies of this repository
BUILTIN = {"mask": "ablate.mask", "bridge": "ablate.bridge"}
#: the entry-point group another package registers a study in (name -> its package)
_ENTRY_POINTS = "ablate.studies"
#: a study's module, in its package, of each study part (ablate.core.jobs); a package's
#: ``PARTS`` names others
DEFAULT_PARTS = {"layout": "layout", "status": "status", "plan": "plan"}


def _registered() -> dict[str, str]:
    """The built-in studies and every study registered under :data:`_ENTRY_POINTS`."""
    from importlib.metadata import entry_points

    out = dict(BUILTIN)
    for ep in entry_points(group=_ENTRY_POINTS):
        if ep.name in out and out[ep.name] != ep.value:
            raise KeyError(f"study {ep.name!r} is registered twice ({out[ep.name]}, {ep.value})")
        out[ep.name] = ep.value
    return out


#: study (config key ``studies``) -> its package
STUDIES = _registered()

#: the environment of a job that must not reach the Hugging Face hub
HUB_OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _package(study: str) -> ModuleType:
    if study not in STUDIES:
        raise KeyError(f"unknown study {study!r} (known: {', '.join(STUDIES)})")
    return import_module(STUDIES[study])


def side(study: str, part: str) -> ModuleType:
    """A study's module of ``part``: ``layout``, ``status`` or ``plan``."""
    package = _package(study)
    return import_module(f"{STUDIES[study]}.{getattr(package, 'PARTS', DEFAULT_PARTS)[part]}")


def rule_files(study: str) -> list[str]:
    """The rule files of ``study``, in the order the Snakefile includes them (its ``RULES``)."""
    return [str(f) for f in _package(study).RULES]


def attention_backends() -> dict[str, str]:
    """Every study's attention backends: attn_implementation -> the module that registers it."""
    out: dict[str, str] = {}
    for package in STUDIES.values():
        out.update(getattr(import_module(package), "ATTENTION_BACKENDS", {}))
    return out


def hub_free(config: dict, study: str) -> bool:
    """Nothing of ``study``'s config slice is on the hub (its package's ``hub_free``)."""
    return _package(study).hub_free(config)


def hub_switch(config: dict, study: str) -> bool:
    """One job's hub-offline switch, set before any Hugging Face import reads it: a job of a
    hub-free study runs offline, so a stray hub call fails at once instead of waiting on a
    network; others keep the environment they were given. True when switched off."""
    if not hub_free(config, study):
        return False
    for key, value in HUB_OFFLINE.items():
        os.environ.setdefault(key, value)
    return True


def planned_by_default(names: list[str]) -> list[str]:
    """The studies of ``names`` the planner forecasts when ``plan.studies`` is unset."""
    return [s for s in names if not getattr(import_module(STUDIES[s]), "PLAN_OPT_IN", False)]


def moved_keys_error(config: dict) -> str | None:
    """One line for a config that still has a study's ``MOVED_CONFIG_KEYS`` at the top level."""
    problems = []
    for study, package in STUDIES.items():
        moved = [k for k in getattr(import_module(package), "MOVED_CONFIG_KEYS", ()) if k in config]
        if moved:
            one = len(moved) == 1
            keys, are, live, them, they, hold = (
                ("key", "is", "lives", "it", "it", "holds")
                if one
                else ("keys", "are", "live", "them", "they", "hold")
            )
            problems.append(
                f"config {keys} {', '.join(moved)} {are} the {study} study's and now {live} under "
                f"'{study}:': indent {them} (with what {they} {hold}) by two spaces under one "
                f"top-level '{study}:' key in each config file that has {them} "
                f'(config/README.md, "{study}")'
            )
    return "; ".join(problems) or None
