"""The mask study for several seeds side by side, and the spread of its finding over them.

Each seed runs in its own clone of this repository's HEAD (committed work only), with a config
that is ``--configfile`` (default config/config.yaml) plus ``mask.data.seed``,
``mask.model.embedded.pretrain.seed`` and ``mask.finetune.defaults.seed`` set to the seed, plus
any ``--set key.path=value`` (YAML values), studies ``[mask]``. ``--parallel`` runs go at once,
each ``snakemake -c<cores>``; ``--cpu`` hides GPUs (CUDA_VISIBLE_DEVICES=""), so a GPU host's cores
can stand in for several 2-core machines. Prints one markdown table (macro scores from each run's
recovery.csv, the claims from claims/mask.csv) and the spread.

    python bench/tools/seed_spread.py --seeds 0 1 2 3 --parallel 4 --cores 2 --cpu \\
        [--set mask.finetune.variants.5B.learning_rate=1e-3] [--workdir /tmp/spread]
    python bench/tools/seed_spread.py --table /tmp/spread      # the table of finished runs again

docs/embedded.md quotes its tables (seeds 0-3 on a 16-core Intel Xeon, CPU only).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]
SEED_KEYS = ("mask.data.seed", "mask.model.embedded.pretrain.seed", "mask.finetune.defaults.seed")
#: (column, stage, variant, eval policy role) of the table; "ablated" is mask.eval.ablated_policy
COLUMNS = (
    ("stage 1", 1, "base", "causal"),
    ("stage 2", 2, "base", "ablated"),
    ("3A abl.", 4, "3A", "ablated"),
    ("3B abl.", 4, "3B", "ablated"),
    ("5B abl.", 5, "5B", "ablated"),
    ("3A causal", 4, "3A", "causal"),
    ("3B causal", 4, "3B", "causal"),
    ("5B causal", 5, "5B", "causal"),
)


def set_key(cfg: dict, dotted: str, value) -> None:
    """``cfg[a][b][c] = value`` for ``a.b.c``, creating the levels on the way."""
    *parents, last = dotted.split(".")
    for key in parents:
        cfg = cfg.setdefault(key, {})
    cfg[last] = value


def run_config(base: dict, seed: int, sets: list[str]) -> dict:
    """The config of one seed's run: ``base``, the seed keys, then ``sets`` (``key=YAML``)."""
    cfg = yaml.safe_load(yaml.safe_dump(base))  # a deep copy
    cfg["studies"] = ["mask"]
    for key in SEED_KEYS:
        set_key(cfg, key, seed)
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected key.path=value")
        set_key(cfg, key, yaml.safe_load(value))
    return cfg


def run_one(workdir: Path, seed: int, cfg: dict, cores: int, cpu: bool) -> dict:
    d = workdir / f"seed{seed}"
    if not d.exists():
        subprocess.run(["git", "clone", "-q", str(ROOT), str(d)], check=True)
    (d / "run.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = dict(os.environ)
    if cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    started = time.time()
    with open(d / "run.log", "w") as log:
        rc = subprocess.run(
            ["snakemake", f"-c{cores}", "--configfile", "run.yaml"],
            cwd=d,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ).returncode
    wall = time.time() - started
    (d / "done.yaml").write_text(yaml.safe_dump({"rc": rc, "wall_s": round(wall, 1)}))
    print(f"[seed {seed}] rc {rc} in {wall:.0f} s ({d / 'run.log'})", file=sys.stderr, flush=True)
    return {"seed": seed, "rc": rc, "wall_s": wall}


def row(run_dir: Path) -> dict:
    """One table row from a finished run folder (its run.yaml says where results went)."""
    cfg = yaml.safe_load((run_dir / "run.yaml").read_text())
    results = run_dir / cfg.get("results", "results")
    mask = cfg["mask"]
    ablated = mask.get("eval", {}).get("ablated_policy", "prefill_bidir")
    out: dict = {"seed": mask["data"]["seed"]}
    done = run_dir / "done.yaml"
    if done.exists():
        out["wall s"] = yaml.safe_load(done.read_text())["wall_s"]
    rec = pd.read_csv(results / "recovery.csv")
    macro = rec[rec.task == "macro"]
    for name, stage, variant, role in COLUMNS:
        policy = ablated if role == "ablated" else "causal"
        hit = macro[(macro.stage == stage) & (macro.variant == variant)]
        hit = hit[hit.eval_policy == policy].score
        out[name] = round(float(hit.iloc[0]), 3) if len(hit) else None
    for name, a, b in (("drop", "stage 1", "stage 2"), ("3B-3A abl.", "3B abl.", "3A abl.")):
        if out[a] is not None and out[b] is not None:
            out[name] = round(out[a] - out[b], 3)
    claims = pd.read_csv(results / "claims" / "mask.csv").set_index("claim").verdict
    for name, prefix in (("tasks learned", "learned/"), ("tasks hurt", "ablation_hurts/")):
        per_task = claims[claims.index.str.startswith(prefix)]
        out[name] = f"{(per_task == 'supported').sum()}/{len(per_task)}"
    top = claims[~claims.index.str.contains("/")]
    out["claims not supported"] = " ".join(top[top != "supported"].index)
    return out


def table(workdir: Path) -> pd.DataFrame:
    runs = sorted(p for p in workdir.glob("seed*") if (p / "run.yaml").exists())
    rows = []
    for d in runs:
        try:
            rows.append(row(d))
        except FileNotFoundError as exc:
            print(f"[{d.name}] not finished: {exc.filename}", file=sys.stderr)
    return pd.DataFrame(rows)


def print_table(df: pd.DataFrame) -> None:
    if df.empty:
        print("no finished run")
        return
    print(df.to_markdown(index=False))
    numeric = [c for c in [*(c for c, *_ in COLUMNS), "drop", "3B-3A abl."] if c in df]
    spread = df[numeric].agg(["min", "max", "mean"]).round(3)
    print()
    print(spread.to_markdown())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--configfile", default=str(ROOT / "config" / "config.yaml"))
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--parallel", type=int, default=1, help="runs at once")
    ap.add_argument("--cores", type=int, default=2, help="snakemake -c of each run")
    ap.add_argument("--cpu", action="store_true", help="hide GPUs from the runs")
    ap.add_argument("--workdir", default="/tmp/seed_spread")
    ap.add_argument("--table", metavar="DIR", help="print the table of DIR's finished runs")
    a = ap.parse_args(argv)
    if a.table:
        print_table(table(Path(a.table)))
        return 0
    workdir = Path(a.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load(Path(a.configfile).read_text())
    with ThreadPoolExecutor(a.parallel) as pool:
        done = list(
            pool.map(
                lambda s: run_one(workdir, s, run_config(base, s, a.sets), a.cores, a.cpu),
                a.seeds,
            )
        )
    print_table(table(workdir))
    return 0 if all(r["rc"] == 0 for r in done) else 1


if __name__ == "__main__":
    sys.exit(main())
