"""Every command of README.md, then of the user guide (docs/guide.md), in their order, on copies
of a finished quick start: the README's commands in order on one copy, each section of the guide's
in order on its own (a user who reads one section from a finished quick start), so the parts run
on both test workers at once.

The commands come from the two files' ```bash blocks, so a README or guide that says something the
pipeline does not do fails here. Each is run as written (in the copy, with this interpreter's
environment first on PATH) and checked against what the text says of it: the expectations below
are listed in the texts' order (README_STEPS, then GUIDE_STEPS), and their commands must be
exactly these. A text in double quotes
in a command's comment must appear in what the command printed.

What is not run as written, and why: the install lines (the shared `embedded_run` fixture is
their last one, `snakemake -c2`, once per pytest run); the test-suite commands (CI runs them); the
real study's GPU runs and the README's experiment (run as dry runs: offline, no GPU here; the
guide's Experiments section runs the experiment, restored from the run cache of the session's
experiments loop, which computed it: SHARES_THE_LOOPS_CACHE); the seeds run (a dry run: 6 finetunes on a CPU;
tests/pipeline/test_seeds_pipeline.py runs 2 seeds); the SLURM and Vast commands and their
environment lines (tests/cluster/ runs them against a local SLURM cluster and a fake Vast API);
`tensorboard` (a server); a command with a <placeholder>.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from checkout import CHAIN_FIXTURE, CHAIN_GROUP, GPU_HOST, run_cache_folder
from helpers import jobs_said

from ablate.core.trees import experiments as E

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide.md"
RUN, DRY, SKIP = "run", "dry run", "skip"


@dataclass
class Step:
    command: str
    how: str = RUN
    rules: dict[str, int] | None = None  # the jobs it runs (or plans), by rule; None: not checked
    files: tuple[str, ...] = ()  # files it must leave, each non-empty
    why: str = ""  # why it is skipped or only dry-run
    check: object = field(default=None, repr=False)  # extra check(wd, output)


NOTHING: dict[str, int] = {}
#: The jobs of the run cache's key: restored by the revert of an edit.
KEYED_3A = {
    "finetune": 1,
    "eval_model": 2,
    "recovery_table": 1,
    "plot_scores": 1,
    "plot_loss_curves": 1,
    "mask_claims": 1,
}
#: The jobs of the tree as it is now (the run cache's entries, the benchmark files, every job's
#: state): never restored, remade (ablate.core.jobs.REMADE_LINE).
TREE_JOBS = {"plan_estimate": 1, "plan": 1, "status": 1}
EDITED_3A = {**KEYED_3A, **TREE_JOBS}


def _report_has_every_figure(wd: Path, out: str) -> None:
    html = (wd / "results/report.html").read_text()
    for name in (
        "recovery.csv",
        "scores.png",
        "loss_curves.png",
        "plan.html",
        "status.html",
        "provenance.html",
        "runs.html",
    ):
        assert name in html, name
    # the first screen: the headline claims and the embedded score plot before the description
    desc = html[html.index("var workflow_desc") :]
    assert desc.index("prefix_recovers_more") < desc.index("data:image/png") < desc.index("<p>")


def _only_3a_reruns(wd: Path, out: str) -> None:
    """The jobs' own outputs (not the input lists of the table and the plan) are 3A's."""
    evals = set(re.findall(r"output: results/eval/(\w+)/", out))
    finetunes = set(re.findall(r"output: results/finetune/(\w+)/", out))
    assert evals == finetunes == {"3A"}, (evals, finetunes)


PLAIN_3A = "3A: {stage: 3, policy: causal}"
EDITED_3A_LINE = "3A: {stage: 3, policy: causal, max_steps: 40}"


def _3a_ran(wd: Path, out: str) -> None:
    """The edit computes 3A's finetune and its two evaluations, and the tables: every keyed job
    says it ran; STATUS and the plan say they were remade from the tree."""
    _only_3a_reruns(wd, out)
    got = jobs_said(out)
    assert got == collections.Counter(
        {**{(r, "ran"): n for r, n in KEYED_3A.items()}, **{(r, "remade"): 1 for r in TREE_JOBS}}
    ), got


def _3a_restored(wd: Path, out: str) -> None:
    """After the revert every job is restored from the run cache (each says so; its marker is
    newer than the revert) or, STATUS and the plan, remade from the tree and says why: no job
    says "ran" (issue 82's done-when)."""
    _only_3a_reruns(wd, out)
    got = jobs_said(out)
    assert got == collections.Counter(
        {
            **{(r, "restored"): n for r, n in KEYED_3A.items()},
            **{(r, "remade"): 1 for r in TREE_JOBS},
        }
    ), got
    reverted = (wd / "config/config.yaml").stat().st_mtime
    for output in (
        "results/finetune/3A/final",
        "results/eval/3A/causal/metrics.json",
        "results/eval/3A/prefill_bidir/metrics.json",
        "results/recovery.csv",
        "results/plots/scores.png",
        "results/plots/loss_curves.png",
        "results/claims/mask.csv",
    ):
        marker = wd / f"{output}.restored.json"
        assert marker.is_file() and marker.stat().st_mtime >= reverted, marker


def _status_all_done(wd: Path, out: str) -> None:
    """After the rerun of the edit every job is done again, and STATUS.md says so."""
    text = (wd / "results/STATUS.md").read_text()
    assert "| stale |" not in text and "| to run |" not in text and "| done |" in text


def _finished_run_stays_clean(wd: Path, out: str) -> None:
    """A command that reads what exists (STATUS, a plan asked for alone) leaves a finished run
    with nothing to do: its input list and params differ from a full run's, and the full run's
    record must stay (before: `snakemake -n` wanted the rule, STATUS and all again)."""
    r = shell(wd, "snakemake -n")
    dry = r.stdout + r.stderr
    assert r.returncode == 0 and "Nothing to be done" in dry, dry[-4000:]


INSTALL = "an install (the suite runs in the environment it was installed in)"
SUITE = "the test suite itself (CI)"
#: The experiment the README shows; the guide's Experiments section runs it (EDITED_3A's jobs).
LR_EXPERIMENT = "ablate exp run lr --set mask.finetune.variants.3A.learning_rate=5.0e-4"

#: The README's commands, in its order, with what each must do.
README_STEPS = [
    # Install and run
    Step("sudo apt-get update", how=SKIP, why=INSTALL),
    Step(
        "sudo apt-get install -y --no-install-recommends python3-venv graphviz",
        how=SKIP,
        why=INSTALL,
    ),
    Step("python3 -m venv .venv", how=SKIP, why=INSTALL),
    Step(".venv/bin/pip install torch==2.13.0 -e .", how=SKIP, why=INSTALL),
    Step(".venv/bin/snakemake -c2", how=SKIP, why="the embedded_run fixture is this run"),
    # Next: a finished run
    Step("snakemake -n", rules=NOTHING),
    Step("ablate status", files=("results/STATUS.md",), check=_status_all_done),
    Step(
        "snakemake --report results/report.html",
        files=("results/report.html",),
        check=_report_has_every_figure,
    ),
    Step(
        LR_EXPERIMENT,
        how=DRY,
        why="the guide runs it (Experiments)",
        rules={f"exp_lr_{r}": n for r, n in EDITED_3A.items()},
    ),
    Step("ablate runs", check=lambda wd, out: "mask: base under causal" in out),
    # Run the real study: its forecast, the smoke run, one GPU host, SLURM, Vast
    Step(
        "ablate plan --config config/ministral3b.yaml",
        files=("results/ministral3b/plan.csv",),
        check=lambda wd, out: "8x H100 SXM: " in out and "total, $" in out,
    ),
    Step(
        "snakemake -c8 results/smoke/recovery.csv --resources gpu=2 "
        "--configfile config/ministral3b-smoke.yaml",
        how=DRY,
        why="a GPU (3.4 B parameters)",
    ),
    Step(
        "snakemake -c8 results/ministral3b/recovery.csv --configfile config/ministral3b.yaml",
        how=DRY,
        why="GPUs and the hub",
    ),
    Step(
        "snakemake --profile slurm results/ministral3b/recovery.csv "
        "--configfile config/ministral3b.yaml",
        how=SKIP,
        why="tests/cluster/test_slurm.py (a SLURM cluster; the embedded default's target)",
    ),
    Step(
        "snakemake --profile vast results/ministral3b/recovery.csv "
        "--configfile config/ministral3b.yaml",
        how=SKIP,
        why="tests/cluster/test_vast.py runs it against a fake Vast API (the embedded default)",
    ),
    # Tests: the whole suite's packages, the test extras, the fast tier, the whole suite
    Step(
        "sudo apt-get install -y --no-install-recommends slurm-wlm munge openssh-server "
        "chromium chromium-driver",
        how=SKIP,
        why=INSTALL,
    ),
    Step(".venv/bin/pip install -e '.[test]'", how=SKIP, why=INSTALL),
    Step(".venv/bin/python -m pytest -n 2 --dist loadgroup", how=SKIP, why=SUITE),
    Step('.venv/bin/python -m pytest -m "" -n 2 --dist loadgroup', how=SKIP, why=SUITE),
]

#: The user guide's commands, in its order, run after the README's.
GUIDE_STEPS = [
    # View the DAG
    Step(
        "snakemake --rulegraph | dot -Tsvg > results/rulegraph.svg",
        files=("results/rulegraph.svg",),
    ),
    Step("snakemake --dag | dot -Tsvg > results/dag.svg", files=("results/dag.svg",)),
    # Rerun one stage
    Step(
        "snakemake -c2 --force results/eval/base/prefill_bidir/metrics.json --config run_cache=False",
        rules={"eval_model": 1},
    ),
    Step(
        "snakemake -c2",
        rules={"recovery_table": 1, "plot_scores": 1, "mask_claims": 1, "plan": 1, "status": 1},
    ),
    # Reuse finished jobs: the run cache (on by default) switched off reruns nothing
    Step(
        "snakemake -c2 --config run_cache=False",
        rules=NOTHING,
        check=lambda wd, out: "Nothing to be done" in out,
    ),
    # What reruns when: an edit of 3A, its rerun and its revert (restored: the quick start
    # stored 3A)
    Step(
        f"sed -i 's/{PLAIN_3A}/{EDITED_3A_LINE}/' config/config.yaml",
        check=lambda wd, out: "max_steps: 40}" in (wd / "config/config.yaml").read_text(),
    ),
    Step("snakemake -n", rules=EDITED_3A, check=_only_3a_reruns),
    Step("snakemake -c2", rules=EDITED_3A, check=_3a_ran),
    Step(
        f"sed -i 's/{EDITED_3A_LINE}/{PLAIN_3A}/' config/config.yaml",
        check=lambda wd, out: "max_steps: 40}" not in (wd / "config/config.yaml").read_text(),
    ),
    Step("snakemake -c2", rules=EDITED_3A, check=_3a_restored),
    # Experiments (the whole loop, each step's jobs: tests/pipeline/test_experiments_run.py)
    Step(
        LR_EXPERIMENT,
        rules={f"exp_lr_{r}": n for r, n in EDITED_3A.items()},
        check=lambda wd, out: (wd / "results/exp/lr/experiment.json").is_file(),
    ),
    Step(
        "ablate exp run sweep --set mask.finetune.variants.3A.learning_rate=1.0e-4,5.0e-4,2.0e-3",
        how=DRY,
        why="3 finetunes of 3A (tests/pipeline/test_experiments_run.py runs the sweep)",
        rules={
            f"{E.rule_prefix(f'sweep-{v}')}{r}": n
            for v in ("1.0e-4", "5.0e-4", "2.0e-3")
            for r, n in EDITED_3A.items()
        },
    ),
    Step(
        'ablate runs --sort "mask: 3A under prefill_bidir"',
        check=lambda wd, out: "| results/exp/lr | mask.finetune.variants.3A.learning_rate" in out,
    ),
    Step(
        "ablate diff results/eval/3A/causal/metrics.json results/exp/lr/eval/3A/causal/metrics.json"
    ),
    Step(
        "ablate exp run seeds --set 'mask.finetune.variants.3B.seeds=[5, 6]'",
        how=DRY,
        why="2 finetunes (tests/pipeline/test_experiments_run.py runs them)",
        rules={
            "exp_seeds_finetune": 2,
            "exp_seeds_eval_model": 4,
            **{
                f"exp_seeds_{r}": 1
                for r in (
                    "recovery_table",
                    "plot_scores",
                    "plot_loss_curves",
                    "mask_claims",
                    "plan_estimate",
                    "plan",
                    "status",
                )
            },
        },
    ),
    Step(
        "snakemake -c2 exp_lr_all --configfile config/config.yaml experiments/lr.yaml",
        rules=NOTHING,
    ),
    # Seeds: three of the default's finetunes and stability pair (the run: tests/pipeline/test_seeds_pipeline.py)
    Step(
        "snakemake -c2 --configfile config/config.yaml config/seeds3.yaml",
        how=DRY,
        why="6 finetunes, 12 evaluations on the CPU; tests/pipeline/test_seeds_pipeline.py runs 2 seeds",
        rules={
            **{r: 1 for r in ("recovery_table", "plot_scores", "plot_loss_curves", "mask_claims")},
            **{r: 1 for r in ("bridge_summary", "bridge_claims", "bridge_plots")},
            **{"plan_estimate": 1, "plan": 1, "status": 1},
            # seed 5 is the default's: its 3A, 3B and 5B are the finished runs
            "finetune": 6,
            "eval_model": 12,
            "bridge_train": 4,
        },
    ),
    # Watching a study
    Step("ablate status", files=("results/STATUS.md",), check=_status_all_done),
    Step(
        "snakemake -c1 --nolock -f results/STATUS.md",
        rules={"status": 1},
        check=_finished_run_stays_clean,
    ),
    Step(
        "tensorboard --logdir results",
        how=SKIP,
        why="a server (tests/pipeline/test_status.py reads the files)",
    ),
    Step(
        "ablate diff RUN_A RUN_B",
        how=SKIP,
        why="placeholders (tests/pipeline/test_status.py diffs two real runs)",
    ),
    Step(
        "ablate flips results/eval/base/causal results/eval/base/prefill_bidir",
        check=lambda wd, out: "lost  gained" in out and "(lost): gold" in out,
    ),
    Step(
        "ablate runs --configfile config/config.yaml",
        check=lambda wd, out: (
            "== results\n" in out
            and "mask: base under causal" in out
            and "config/config.yaml: " in out
            and "(mixed)" not in out
        ),
    ),
    # Run the real study
    Step(
        "snakemake --profile <profile> results/ministral3b/recovery.csv "
        "--configfile config/ministral3b.yaml",
        how=SKIP,
        why="a placeholder",
    ),
    # The bridge study: finished by the quick start (the default config runs both studies)
    # STATUS.md follows the studies a run includes: rewritten, nothing else runs
    Step("snakemake -c2 --config 'studies=[bridge]'", rules={"status": 1}),
    Step("snakemake -c2", rules={"status": 1}),
    Step(
        "snakemake results/latentwire/bridge/summary.csv --configfile config/latentwire.yaml "
        "--profile <profile>",
        how=SKIP,
        why="a placeholder (the dry run of config/latentwire.yaml: tests/bridge/test_pipeline.py)",
    ),
    Step(
        "snakemake --cores 16 --resources gpu=1 --configfile config/latentwire-smoke.yaml",
        how=DRY,
        why="a GPU (7-8 B parameters)",
    ),
    # Cluster profiles
    Step("snakemake -c2 results/recovery.csv", rules=NOTHING),
    # Development
    *(
        Step(c, how=SKIP, why=SUITE)
        for c in (
            "python -m pytest tests/pipeline/test_pipeline_dag.py tests/mask/test_recovery.py",
            "python -m pytest -n 2 --dist loadgroup",
            'python -m pytest -m "" -n 2 --dist loadgroup',
            'python -m pytest tests/core -m "not slow"',
            "python -m pytest -m slow",
            "python -m pytest -m cluster",
            "ABLATE_FINISHED_RUN=<finished checkout> python -m pytest -m slow",
            "python -m pytest tests/bridge/test_grid.py tests/bridge/test_tables.py "
            "tests/bridge/test_pipeline.py",
            "python -m pytest -m slow tests/bridge/test_pipeline_run.py",
        )
    ),
    Step("snakemake --lint && snakefmt --check Snakefile rules"),
    # Planning runtime and cost: the forecast of the real study runs no stage
    Step(
        "snakemake -c1 results/ministral3b/plan.csv --configfile config/ministral3b.yaml",
        rules={"plan_estimate": 1, "plan": 1},
        files=("results/ministral3b/plan.csv",),
    ),
    Step(
        "ablate plan --config config/ministral3b.yaml --out results/ministral3b/plan.csv",
        files=("results/ministral3b/plan.csv",),
    ),
    Step(
        "snakemake -c2 --configfile config/ministral3b.yaml",
        how=DRY,
        why="GPUs and the hub",
    ),
]
STEPS = README_STEPS + GUIDE_STEPS


def dry(command: str) -> str:
    """A documented Snakemake command (or `ablate exp run`, which runs one) as a dry run,
    whatever its cores option."""
    if command.startswith("ablate exp run "):
        return command + " -n"
    assert command.startswith("snakemake "), command
    return "snakemake -n " + command.removeprefix("snakemake ")


def readme_commands(text: str) -> list[tuple[str, str]]:
    """(command, comment) of every line of every ```bash block, in order."""
    out = []
    for block in re.findall(r"```bash\n(.*?)\n```", text, flags=re.S):
        for line in block.splitlines():
            command, comment = _split_comment(line)
            if command:
                out.append((command, comment))
    return out


def _split_comment(line: str) -> tuple[str, str]:
    """A shell line's command and its trailing `# comment`."""
    m = re.match(r"^(.*?)\s+#\s(.*)$", line)
    return (m.group(1).strip(), m.group(2)) if m else (line.strip(), "")


def jobs_of(output: str) -> dict[str, int]:
    """The jobs Snakemake ran or planned, by rule (its `rule X:` blocks; `all` left out)."""
    rules = re.findall(r"^(?:local)?rule (\w+):$", output, flags=re.M)
    # the base's `all` and each experiment's, exp_<name>_all
    return dict(collections.Counter(r for r in rules if r != "all" and not r.endswith("_all")))


def shell(wd: Path, command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        **(env or {}),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **({"PYTHONPATH": str(wd / "src")} if (wd / "src").is_dir() else {}),
    }
    return subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        cwd=wd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def documented_commands() -> list[tuple[str, str]]:
    """The README's commands, then the user guide's."""
    return readme_commands((ROOT / "README.md").read_text()) + readme_commands(GUIDE.read_text())


def test_readme_lists_what_this_test_runs():
    """Fast: the README's and the guide's commands are exactly the ones this test knows (no run
    needed)."""
    readme = [c for c, _ in readme_commands((ROOT / "README.md").read_text())]
    assert readme == [s.command for s in README_STEPS]
    assert [c for c, _ in readme_commands(GUIDE.read_text())] == [s.command for s in GUIDE_STEPS]


def test_no_documented_command_writes_into_the_checkout():
    """Fast: a file a documented command writes (`> FILE`) goes under results/ (ignored by git),
    not into the repository's root among its tracked files (the DAG pictures went there)."""
    for command, _ in documented_commands():
        for target in re.findall(r"(?:^|\s)>>?\s*([^\s|;&]+)", command):
            assert target.startswith(("results/", "/", "$")), (command, target)


def test_every_cpu_measurement_names_its_instruction_set():
    """Fast: a README or guide paragraph (or table) naming a CPU (a timing, a score, a verdict)
    names its instruction set too: "AMD EPYC" is printed by CPUs with and without AVX-512, whose
    runs differ in time (1.9x) and in one claim's verdict."""
    text = (ROOT / "README.md").read_text() + "\n\n" + GUIDE.read_text()
    for part in re.split(r"\n\s*\n", text):
        if re.search(r"EPYC|Xeon", part):
            assert re.search(r"avx|instruction set", part, flags=re.I), part


def documented_parts() -> list[tuple[str, list[tuple[str, str]]]]:
    """(part, its commands in order): the README, then each section of the guide that has
    commands; together, :func:`documented_commands`."""
    parts = [("README", readme_commands((ROOT / "README.md").read_text()))]
    for section in re.split(r"^## ", GUIDE.read_text(), flags=re.M):
        if commands := readme_commands(section):
            name = re.sub(r"[^a-z0-9]+", "-", section.splitlines()[0].lower()).strip("-")
            parts.append((name, commands))
    return parts


def part_steps(part: str) -> tuple[list[tuple[str, str]], list[Step]]:
    """A part's commands and their steps (STEPS is in the parts' order)."""
    offset = 0
    for name, commands in documented_parts():
        if name == part:
            return commands, STEPS[offset : offset + len(commands)]
        offset += len(commands)
    raise KeyError(part)


#: The guide's part whose experiment (LR_EXPERIMENT) the session's experiments loop ran already
#: (checkout.run_experiments_loop, the same key and value): it starts from the quick start with
#: the loop's run cache, as a second clone sharing one cache would, so its jobs are restored
#: (what they compute is asserted on the loop's run, tests/pipeline/test_experiments_run.py).
#: It waits for the loop: one xdist group with it (conftest.CHAIN_GROUP).
SHARES_THE_LOOPS_CACHE = "experiments"


@pytest.mark.slow
@pytest.mark.parametrize(
    "part",
    [  # one xdist group each: the parts spread over the workers
        pytest.param(
            name,
            marks=pytest.mark.xdist_group(
                CHAIN_GROUP if name == SHARES_THE_LOOPS_CACHE else f"readme:{name}"
            ),
        )
        for name, _ in documented_parts()
        if any(step.how != SKIP for step in part_steps(name)[1])
    ],
)
def test_every_documented_command_in_order(part, embedded_run, tmp_path, request):
    assert [c for _, cs in documented_parts() for c, _ in cs] == [s.command for s in STEPS]
    commands, steps = part_steps(part)
    wd = tmp_path / "readme"
    shutil.copytree(embedded_run, wd, symlinks=True)  # keeps mtimes: the finished quick start
    if part == SHARES_THE_LOOPS_CACHE:
        loop, _ = request.getfixturevalue(CHAIN_FIXTURE)
        cache = wd / run_cache_folder()
        shutil.rmtree(cache)
        shutil.copytree(loop / cache.relative_to(wd), cache)
    for (command, comment), step in zip(commands, steps, strict=True):
        if step.how == SKIP:
            continue
        run = dry(command) if step.how == DRY else command
        # a GPU command's dry run plans it as on its GPU host (ablate.core.execution.preflight)
        r = shell(wd, run, GPU_HOST if step.how == DRY else None)
        out = r.stdout + r.stderr
        where = f"documented command `{command}` ({step.how}):\n{out[-6000:]}"
        assert r.returncode == 0, where
        if step.rules is not None:
            assert jobs_of(out) == step.rules, where
        if step.rules == NOTHING and command.startswith("snakemake") and " -n" in command:
            assert "Nothing to be done" in out, where
        for quoted in re.findall(r'"([^"]+)"', comment):
            assert quoted in out, f"the text says {quoted!r}; {where}"
        for f in step.files:
            assert (wd / f).is_file() and (wd / f).stat().st_size > 0, f"{f}; {where}"
        if step.check is not None:
            assert step.check(wd, out) is not False, where
    shutil.rmtree(wd)  # passed: its copy of the run (~0.5 GB) goes; a failed part's stays
