"""Models as a study dimension (config ``mask.models``), as seeds are one for a variant.

Each model gets the whole study in its own folder, the data shared; the cross-model table and
claims: docs/own-model.md. Pure Python (no torch): the Snakefile imports it at parse time."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ablate.core.config import ConfigError
from ablate.core.jobs import Job

#: A model's folder under the results folder; ``lm`` is the rules' wildcard of the model.
MODEL_DIR = "models/{lm}"


def names(config: Mapping[str, Any]) -> list[str]:
    """The models of a multi-model config, in config order; [] for a one-model config."""
    return list(config["mask"].get("models") or {})


def model_of(config: Mapping[str, Any], lm: str) -> dict[str, Any]:
    """Model ``lm``'s base model: ``mask.model`` with its entry over it, defaults filled, checked.
    An entry's ``path`` comes with its own ``revision`` (a revision is of one repository)."""
    from ablate.core.config import check, subschema, validator

    entry = config["mask"]["models"][lm] or {}
    base = dict(config["mask"]["model"])
    if "path" in entry:
        base.pop("revision", None)
    model = _merged(base, entry)
    if model.get("source") == "pretrained":
        model.pop("embedded", None)
    schema = subschema("$defs/base_model")
    check(model, schema, f"config at mask.models.{lm}")
    for _ in validator(schema, fill_defaults=True).iter_errors(model):
        pass  # valid (checked above): this fills the defaults in
    return model


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        both = isinstance(v, Mapping) and isinstance(out.get(k), Mapping)
        out[k] = _merged(out[k], v) if both else v
    return out


def model_config(config: Mapping[str, Any], lm: str) -> dict[str, Any]:
    """The config of one model's study: the config with ``mask.model`` model ``lm``'s."""
    return {**config, "mask": {**config["mask"], "model": model_of(config, lm)}}


def check(config: Mapping[str, Any]) -> None:
    """A multi-model config's models are valid and share one source: ConfigError else."""
    sources = {lm: model_of(config, lm)["source"] for lm in names(config)}
    if len(set(sources.values())) > 1:
        listed = ", ".join(f"{lm}: {s}" for lm, s in sources.items())
        raise ConfigError(
            f"invalid config at mask.models: its models mix sources ({listed}); one config "
            "studies embedded models or pretrained ones: put the others in a config of their own"
        )
    if "embedded" in sources.values() and config["mask"]["data"]["source"] != "embedded":
        raise ConfigError(
            "invalid config at mask.data.source: the embedded models of mask.models are "
            "pretrained on the embedded corpus: set it to embedded"
        )


def folder(results: str, lm: str) -> str:
    """A model's folder: its study's results folder."""
    return f"{results}/{MODEL_DIR.format(lm=lm)}"


def in_model(job: Job, lm: str, results: str, shared: Sequence[str] = ()) -> Job:
    """A job moved into model ``lm``'s folder and named ``<lm>/<name>`` (``shared`` ones kept)."""

    def moved(path: str | None) -> str | None:
        if path is None:
            return None
        assert path.startswith(f"{results}/"), path
        return f"{folder(results, lm)}/{path[len(results) + 1 :]}"

    def named(name: str | None) -> str | None:
        return name if name is None or name in shared else f"{lm}/{name}"

    return dataclasses.replace(
        job,
        name=named(job.name),
        wildcards={"lm": lm, **job.wildcards},
        outputs={k: moved(p) for k, p in job.outputs.items()},
        log=moved(job.log),
        benchmark=moved(job.benchmark),
        record=moved(job.record),
        upstream=[named(u) for u in job.upstream],
        loads=named(job.loads),
        labels={**job.labels, "lm": lm},
    )


def of_model(jobs: Sequence[Job], lm: str | None) -> list[Job]:
    """The jobs of model ``lm`` (None: a one-model study's, all of them)."""
    return [j for j in jobs if lm is None or j.labels.get("lm") == lm]


# ----------------------------------------------------------------- the cross-model products


def cross_recovery(tables: Mapping[str, Any]) -> Any:
    """Every model's recovery table (model -> CSV path or frame) in one, ``model`` column first."""
    import pandas as pd

    frames = []
    for lm, table in tables.items():
        df = table if isinstance(table, pd.DataFrame) else pd.read_csv(table)
        frames.append(df.assign(model=lm)[["model", *df.columns]])
    return pd.concat(frames, ignore_index=True)


#: A model's row of a claim in the cross-model table, as a seed's is (``claim/seed0``).
_MODEL_ROW = "{claim}/{lm}"


def cross_verdict(verdicts: Mapping[str, str]) -> tuple[str, str]:
    """(verdict, evidence) of a claim over the models: supported where it holds in every one."""
    n = len(verdicts)
    k = sum(v == "supported" for v in verdicts.values())
    ran = [v for v in verdicts.values() if v != "not run"]
    if not ran:
        verdict = "not run"
    elif k == n:
        verdict = "supported"
    elif k == 0 and "not supported" in ran:
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    each = ", ".join(f"{lm}: {v}" for lm, v in verdicts.items())
    return verdict, f"holds in {k} of {n} models ({each})"


def cross_claims(tables: Mapping[str, Any]) -> Any:
    """Each claim counted over the models (row ``model`` "all"), then each model's row; a
    claim's part (a task's or a seed's row) is listed per model, not counted."""
    import pandas as pd

    from ablate.core.reports.claims import COLUMNS

    per = {
        lm: (t if isinstance(t, pd.DataFrame) else pd.read_csv(t, keep_default_na=False))
        for lm, t in tables.items()
    }
    names = list(dict.fromkeys(c for df in per.values() for c in df["claim"]))
    rows = []
    for claim in names:
        mine = {lm: df[df["claim"] == claim] for lm, df in per.items()}
        found = {lm: r.iloc[0] for lm, r in mine.items() if len(r)}
        pooled = "/" not in claim  # a claim, not one seed's row of it
        if pooled:
            first = next(iter(found.values()))
            verdicts = {lm: (found[lm]["verdict"] if lm in found else "not run") for lm in per}
            verdict, evidence = cross_verdict(verdicts)
            rows.append(
                {
                    "study": first["study"],
                    "claim": claim,
                    "statement": f"{first['statement']} (in every model)",
                    "verdict": verdict,
                    "evidence": evidence,
                    "test": "count over models",
                    "p_value": None,
                    "n": len(per),
                    "inputs": "; ".join(
                        str(t) if not isinstance(t, pd.DataFrame) else lm
                        for lm, t in tables.items()
                    ),
                    "model": "all",
                }
            )
        for lm, r in found.items():
            row = {c: r[c] for c in COLUMNS}
            row.update(claim=_MODEL_ROW.format(claim=claim, lm=lm), model=lm)
            row["statement"] = f"{r['statement']} ({lm})"
            rows.append(row)
    df = pd.DataFrame(rows, columns=[*COLUMNS, "model"])
    df["p_value"] = pd.to_numeric(df["p_value"], errors="coerce").astype("float64")
    df["n"] = pd.to_numeric(df["n"], errors="coerce").astype("Int64")
    return df
