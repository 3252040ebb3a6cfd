"""Shared fixtures: the real Tekken tokenizer and tiny Ministral-3 checkpoints, built once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The suite lives in folders by part (core, mask, bridge, pipeline, cluster) and guards (tests of
# the repository as a whole: layering, docs that quote or name the code, indexes); shared helpers
# are in tests/helpers.py (`from helpers import job_counts`) and a part's own beside its tests
# (`from sharded_setup import process_path`): those folders are importable. Test modules are
# imported by path (pyproject.toml), so test file names need not be unique across parts.
for _folder in ("", "core", "bridge"):
    sys.path.insert(0, str(Path(__file__).parent / _folder))
# Test oracles are in tests/oracles.py; those the benchmarks use too in bench/references.py
# (`from references import score_naive`: one definition, and bench/ never imports tests/).
sys.path.append(str(Path(__file__).parents[1] / "bench"))

# The session fixture of the longest chain and its xdist group (tests/checkout.py).
from checkout import CHAIN_FIXTURE, CHAIN_GROUP  # noqa: E402

# A folder made once per session for every pytest-xdist worker (tests/helpers.py).
from helpers import shared  # noqa: E402

# Offline always: a test that reaches for the hub must fail, not hang.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


#: Session fixtures that run an embedded pipeline (minutes): a test using one is slow. Each run is
#: made once for every pytest-xdist worker (a file lock, `shared_run`); once it exists, the tests
#: that read it run on either worker, a module's tests together (its module fixtures made once).
PIPELINE_RUNS = ("embedded_run", "bridge_run", "models_run")
#: The cluster tests share one worker too: the local SLURM cluster's fixed ports, the fake Vast
#: hosts' mounts. Handed out second: the rest of its work waits on no run.
CLUSTER_GROUP = "cluster"


#: What plain `pytest` runs: the fast tier (minutes). `-m EXPR` picks another selection; `-m ""`
#: is the whole suite (what CI runs, .ci/run); a test named by its id (`path::name`) runs whatever
#: its marks (a refusal's "run pytest 'tests/...::test_family_proven[gpt2]'" must run it).
FAST_TIER = "not slow and not cluster"


def _marks_given(config) -> bool:
    """Whether the command line (or $PYTEST_ADDOPTS) has a -m, an empty one included."""
    words = [*config.invocation_params.args, *os.environ.get("PYTEST_ADDOPTS", "").split()]
    return any(str(w).startswith("-m") for w in words)


def pytest_configure(config):
    # an xdist worker parses the same command line (the workers collect): the same choice
    if not _marks_given(config) and not any("::" in str(a) for a in config.args):
        config.option.markexpr = FAST_TIER
    # the groups go out in the order pytest_collection_modifyitems gives them, not by test count
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_report_header(config):
    if config.option.markexpr == FAST_TIER:
        return f'the fast tier (-m "{FAST_TIER}"); the whole suite: pytest -m ""'
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """A test that needs a whole embedded run is slow, marked so or not: `-m "not slow"` (the
    fast tier) must never start one (before `-m` deselects). Then the xdist groups (`-n 2 --dist
    loadgroup`) and their order, longest first, as pytest-xdist hands them out in collection order
    (its reordering by test count is off: `pytest_configure`): the chain, the cluster tests, the
    other groups (a module's tests on one pipeline run, a module's own group), then the single
    tests, short ones that fill both workers to the end."""
    for item in items:
        runs = [f for f in PIPELINE_RUNS if f in item.fixturenames]
        if runs and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("cluster"):
            item.add_marker(pytest.mark.xdist_group(CLUSTER_GROUP))
        elif CHAIN_FIXTURE in item.fixturenames:
            item.add_marker(pytest.mark.xdist_group(CHAIN_GROUP))
        elif runs and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(f"{runs[0]}:{item.nodeid.split('::')[0]}"))
    _embedded_cluster_tests_last(items)
    items.sort(key=_hand_out_order)  # stable: each group's tests stay in order


def _hand_out_order(item) -> int:
    group = item.get_closest_marker("xdist_group")
    name = group.args[0] if group and group.args else None
    return {CHAIN_GROUP: 0, CLUSTER_GROUP: 1, None: 3}.get(name, 2)


def _embedded_cluster_tests_last(items) -> None:
    """The cluster tests that read the session's embedded run go last, each module's in order:
    on the cluster group's worker every other one (the fake Vast hosts' tests, minutes, mostly
    waiting) runs while the other worker makes that run, not after it. By test, not by module:
    tests/cluster/test_vast.py's fake-host tests (1.5 min) ran after the SLURM run, whose setup
    waited for the embedded run meanwhile (about 3 min of its 6.5 in the last whole suite)."""
    items.sort(  # stable
        key=lambda item: bool(
            item.get_closest_marker("cluster") and "embedded_run" in item.fixturenames
        )
    )


@pytest.fixture(scope="session")
def tekken_dir(tmp_path_factory):
    """The Tekken tokenizer as an HF folder, made once for every pytest-xdist worker (`shared`):
    its conversion parses the Tekken file's merges in Python (15-30 s of CPU)."""
    from ablate.mask.tiny import prepare_tekken_tokenizer

    return shared(tmp_path_factory, "tekken", prepare_tekken_tokenizer)


@pytest.fixture(scope="session")
def tokenizer(tekken_dir):
    from ablate.core.models.modeling import load_tokenizer

    return load_tokenizer(tekken_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tekken_dir):
    """A random-init tiny Ministral-3 causal LM with the Tekken tokenizer (`tekken_dir`'s files,
    copied: no tokenizer load), saved locally once for every pytest-xdist worker (`shared`)."""

    def make(out: Path) -> None:
        import shutil

        from ablate.core.training.pretraining import random_model
        from ablate.mask.tiny import tiny_ministral3_config

        random_model(tiny_ministral3_config(), seed=0).save_pretrained(out)
        shutil.copytree(tekken_dir, out, dirs_exist_ok=True)

    return shared(tmp_path_factory, "tiny_model", make)


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory):
    """SFT pairs (helpers.synthetic_rows) as a jsonl file, one per test module."""
    import json

    from helpers import synthetic_rows

    path = tmp_path_factory.mktemp("sft") / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows()))
    return path


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory):
    """The workflow without the library (dry runs use the installed one), one copy a module: the
    config-error tests write their config files into it."""
    import shutil

    from helpers import ROOT

    wd = tmp_path_factory.mktemp("wf_schema")
    for name in ("Snakefile", "rules", "workflow", "config", "profiles", "environment.yml"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, wd / name)
    return wd


@pytest.fixture
def gpu_host(monkeypatch):
    """Snakemake started by the test plans a config whose jobs ask for GPUs as on the GPU host it
    is made for (checkout.GPU_HOST): its dry run passes the parse-time preflight on a machine
    without one (ablate.core.execution.preflight)."""
    from checkout import GPU_HOST

    for key, value in GPU_HOST.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session", autouse=True)
def torch_threads_per_worker():
    """Under pytest-xdist, each worker's torch takes its share of the cores (one each on 2 cores
    with -n 2), not all of them: two workers of 2 OpenMP threads on 2 cores wait on each other's
    barriers, which made the tiny models' steps 10-20x slower. In this process only: the
    subprocesses a test starts (pipeline jobs) keep their own threads."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny matrices: a second OpenMP thread only adds barrier waits (~20x slower on a busy box)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def embedded_run(tmp_path_factory) -> Path:
    """The embedded default run once per session (`snakemake -c2`, every default target) in a
    checkout copy. Tests may read it and ask Snakemake about it (dry runs: they write nothing
    there, not even a lock); a test that runs a job or changes a file works on its own copy
    (shutil.copytree(..., symlinks=True) keeps mtimes).
    Under pytest-xdist the workers share one run: the first to ask makes it, under a file lock in
    the session's shared temporary folder, and the others wait for it.
    ABLATE_FINISHED_RUN=<folder> reuses a finished run instead (development)."""
    reuse = os.environ.get("ABLATE_FINISHED_RUN")
    if reuse:
        return Path(reuse)
    return shared_run(tmp_path_factory, "embedded")


@pytest.fixture(scope="session")
def models_run(tmp_path_factory) -> Path:
    """The embedded multi-model overlay (config/models-embedded.yaml: a tiny Ministral-3 and a
    tiny Llama) run once per session, shared as `embedded_run` is, at a smaller size
    (tests/fixtures/models-small.yaml: the same jobs and files, a fraction of the time)."""
    from helpers import MODELS_RUN_CONFIGS

    args = ("--configfile", *MODELS_RUN_CONFIGS)
    return shared_run(tmp_path_factory, "models", *args)


def shared_run(tmp_path_factory, name: str, *args: str) -> Path:
    """`snakemake -c2 ARGS` in a checkout copy, once per session (`shared`)."""
    from checkout import run_embedded_default

    return shared(tmp_path_factory, name, lambda f: run_embedded_default(f, *args))


@pytest.fixture(scope="session")
def bridge_run(embedded_run) -> Path:
    """The embedded bridge study, finished: the default config runs both studies, so this is the
    session's one embedded run (`embedded_run`), read for the bridge study's outputs."""
    return embedded_run


@pytest.fixture(scope="session")
def experiments_loop(embedded_run, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A copy of the finished quick start after the loop a researcher takes on it
    (checkout.run_experiments_loop), and what each step printed: once per session, for
    tests/pipeline/test_experiments_run.py (which asserts each step)."""
    import shutil

    from checkout import run_experiments_loop

    wd = tmp_path_factory.mktemp("loop") / "run"
    shutil.copytree(embedded_run, wd, symlinks=True)  # mtimes kept: a finished run
    return wd, run_experiments_loop(wd)


# The bridge study's session fixtures (tiny model pair, generated world, one trained entry).
from bridge_fixtures import bridge_cards, bridge_entry, bridge_world  # noqa: E402, F401
