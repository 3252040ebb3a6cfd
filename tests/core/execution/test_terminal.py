"""What a run prints (ablate.core.execution.terminal, the logger plugin `ablate` of the workflow
profile): a job's block without parameter trees and no line over 300 characters, the time left by
the planner's estimates on the progress line, the end-of-run summary last. The runs themselves:
tests/pipeline/test_dry_run_stale_last.py (a dry run after an edit), tests/core/test_new_study.py
(a small run ends with the summary)."""

from __future__ import annotations

import csv
import logging
import os

import pytest
import yaml

from ablate.core.execution import terminal
from ablate.core.jobs import Job

#: Snakemake's reason for a finetune after one config edit: both parameter trees, whole
TREE = "{" + ", ".join(f"'k{i}': {{'a': {i}, 'b': [1, 2, 3]}}" for i in range(400)) + "}"
PARAMS = f"Params have changed since last execution: only_old: {TREE}; only_new: {TREE}"
FILES = ", ".join(f"results/eval/m{i}/causal/metrics.json" for i in range(130))


def test_a_reason_loses_its_parameter_trees_and_long_file_lists():
    reason = f"Missing output files: results/finetune/3A/final; {PARAMS}"
    short = terminal.short_reason(reason)
    assert short == (
        "Missing output files: results/finetune/3A/final; Params have changed since last "
        "execution (the stale: lines name the keys)"
    )
    many = terminal.short_reason(f"Input files updated by another job: {FILES}")
    assert len(many) <= terminal.WIDTH and many.endswith("more)"), many
    assert many.startswith("Input files updated by another job: results/eval/m0/causal/")


def test_a_long_file_list_keeps_its_first_files_and_counts_the_rest():
    line = terminal.short_line(f"    input: {FILES}")
    assert len(line) <= terminal.WIDTH, len(line)
    kept = line.removeprefix("    input: ").split(", ")
    assert kept[0] == "results/eval/m0/causal/metrics.json"
    assert kept[-1] == f"... (+{130 - len(kept) + 1} more)"
    assert terminal.short_line("    jobid: 3") == "    jobid: 3"


#: rule all's job record as Snakemake logs it (its reason set by each test)
JOB = dict(
    msg="",
    event="job_info",  # snakemake_interface_logger_plugins.common.LogEvent.JOB_INFO
    jobid=0,
    rule_msg=None,
    rule_name="all",
    local=True,
    input=FILES.split(", "),
    output=[],
    log=[],
    benchmark=None,
    wildcards={},
    resources={},
    priority=0,
    threads=1,
    indent=False,
    is_checkpoint=False,
)


def test_the_plugin_formats_a_job_block_within_the_width():
    """The plugin's formatter over Snakemake's, on a terminal: a job's record as Snakemake logs
    it."""
    from snakemake_logger_plugin_ablate import Formatter

    record = logging.makeLogRecord(
        dict(JOB, reason=f"Input files updated by another job: {FILES}; {PARAMS}")
    )
    text = Formatter().format(record)
    lines = text.splitlines()
    assert "localrule all:" in lines
    assert max(map(len, lines)) <= terminal.WIDTH, max(map(len, lines))
    assert "'k399'" not in text and "(the stale: lines name the keys)" in text


def test_a_program_reading_the_listing_gets_every_file():
    """Written to a file or a pipe (the plugin's width None: not a terminal) the lists stay
    whole; the parameter trees go all the same."""
    from snakemake_logger_plugin_ablate import Formatter

    record = logging.makeLogRecord(
        dict(JOB, reason=f"Input files updated by another job: {FILES}; {PARAMS}")
    )
    text = Formatter(width=None).format(record)
    assert f"    input: {FILES}" in text.splitlines()
    assert f"Input files updated by another job: {FILES}" in text and "'k399'" not in text


def test_a_job_without_a_shell_command_prints_none():
    """printshellcmds (the SLURM and Vast profiles) printed `Shell command: None` for every
    script job; a shell rule's command still prints."""
    from snakemake_logger_plugin_ablate import Formatter

    def shown(cmd):
        record = logging.makeLogRecord(
            dict(msg=f"Shell command: {cmd}", event="shellcmd", shellcmd=cmd, indent=False)
        )
        return Formatter().format(record)

    assert shown(None) == ""
    assert shown("echo hi") == "Shell command: echo hi"  # as Snakemake prints it


def test_progress_says_the_time_left_by_the_planner_estimates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    jobs = [
        Job(
            "mask",
            "finetune",
            f"finetune/{v}",
            {},
            {"s": f"ft/{v}.json"},
            None,
            kind="train",
            record=f"ft/{v}.json",
        )  # fmt: skip
        for v in ("3A", "3B")
    ]
    estimates = tmp_path / "estimate.csv"
    terminal.follow(jobs, {"ft/3A.json", "ft/3B.json"}, estimates, "1x cpu")
    assert terminal.progress_note() == ""  # no estimate yet: the plan's job has not run
    with open(estimates, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["setup", "job", "est_job_s"])
        w.writerows([["1x cpu", "finetune/3A", 600], ["1x cpu", "finetune/3B", 900]])
        w.writerows([["1x H200", "finetune/3A", 6], ["1x H200", "finetune/3B", 9]])
    assert terminal.progress_note() == (
        "; about 25 min left by the planner's estimates (2 planned jobs to go on 1x cpu)"
    )
    (tmp_path / "ft").mkdir()
    (tmp_path / "ft/3A.json").write_text("{}")  # finished in this run
    assert "about 15 min left" in terminal.progress_note()
    terminal.follow(jobs, set(), estimates, "1x cpu")  # nothing of them to run
    assert terminal.progress_note() == ""


def test_progress_counts_the_jobs_the_planner_does_not_estimate(tmp_path, monkeypatch):
    """The embedded default plans the mask study only: once its jobs were done the line said
    nothing while the bridge's jobs ran (job 31 of 45 on), and never said they were not counted."""
    monkeypatch.chdir(tmp_path)

    def job(study: str, name: str) -> Job:
        return Job(
            study, "r", name, {}, {"s": f"{name}.json"}, None, kind="t", record=f"{name}.json"
        )

    jobs = [job("mask", "ft"), job("bridge", "tr1"), job("bridge", "tr2")]
    (tmp_path / "estimate.csv").write_text("setup,job,est_job_s\n1x cpu,ft,600\n")
    terminal.follow(jobs, {"ft.json", "tr1.json", "tr2.json"}, tmp_path / "estimate.csv", "1x cpu")
    assert terminal.progress_note() == (
        "; about 10 min left by the planner's estimates (1 planned job to go on 1x cpu)"
        "; 2 bridge jobs to go, not estimated (plan.studies)"
    )
    (tmp_path / "ft.json").write_text("{}")
    assert terminal.progress_note() == "; 2 bridge jobs to go, not estimated (plan.studies)"


def test_the_summary_names_the_claims_the_results_and_the_report(tmp_path):
    (tmp_path / "results/claims").mkdir(parents=True)
    rows = [
        ("learned", "supported", "base 0.95 vs threshold 0.55: diff +0.40, p=1e-9 (binomial)"),
        ("learned/emb_count", "supported", "per task"),
        ("prefix_recovers_more", "inconclusive", "3B 0.73 - 3A 0.69: diff +0.04, p=0.2 (exact)"),
    ]
    with open(tmp_path / "results/claims/mask.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["study", "claim", "statement", "verdict", "evidence"])
        w.writerows([("mask", c, "s", v, e) for c, v, e in rows])
    from helpers import validated

    config = validated(yaml.safe_load(open(os.path.join("config", "config.yaml"))))
    lines = terminal.run_summary(config, ["mask"], [], str(tmp_path))
    assert lines[:4] == [
        "Finished: the results are under results/ (what ran and why: results/STATUS.md)",
        "mask claims (results/claims/mask.csv): 1 supported, 1 inconclusive",
        "  learned: supported (base 0.95 vs threshold 0.55: diff +0.40, p=1e-9)",
        "  prefix_recovers_more: inconclusive (3B 0.73 - 3A 0.69: diff +0.04, p=0.2)",
    ]
    assert lines[4] == "mask results: results/claims/mask.csv"  # the targets that exist
    assert lines[-1] == "Report: snakemake --report results/report.html"
    cfg = str(tmp_path / "config" / "real.yaml")
    assert terminal.run_summary(config, ["mask"], [cfg], str(tmp_path))[-1] == (
        "Report: snakemake --report results/report.html --configfile config/real.yaml"
    )


def test_the_summary_ends_with_the_studys_answer(tmp_path):
    """The run's last line answers the study's question from its claims table (the study's
    status part's ``answer``), after the report command; a non-inferiority claim's verdict says
    what it claims, so its negative difference marked supported reads right."""
    (tmp_path / "results/claims").mkdir(parents=True)
    shares = "; 3B wins back +0.0040 of the drop of 0.227 [95% CI -0.10, +0.11]"
    rows = [
        ("prefix_recovers", "not supported", f"3B 0.728 - base 0.727: diff +0.001{shares}", "exact McNemar",
         "0.45"),
        ("prefix_side_effect_small", "supported", "3B 0.95 - base 0.954 (margin -0.1): diff -0.004",
         "non-inferiority z (margin 0.1, one-sided)", "1e-20"),
    ]  # fmt: skip
    with open(tmp_path / "results/claims/mask.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["study", "claim", "statement", "verdict", "evidence", "test", "p_value"])
        w.writerows([("mask", c, "s", v, e, t, p) for c, v, e, t, p in rows])
    from helpers import validated

    config = validated(yaml.safe_load(open(os.path.join("config", "config.yaml"))))
    lines = terminal.run_summary(config, ["mask"], [], str(tmp_path))
    assert lines[3] == (
        "  prefix_side_effect_small: supported (claim: at most 0.1 below) (3B 0.95 - base 0.954)"
    )
    assert lines[-2:] == [
        "Report: snakemake --report results/report.html",
        "mask: 3B wins back no significant share of the drop (+0.4 %, p=0.450).",
    ]


@pytest.mark.parametrize(
    "seconds, said",
    [(45, "45 s"), (1500, "25 min"), (4 * 3600, "4.0 h"), (221 * 86400, "221.0 days")],
)
def test_duration(seconds, said):
    assert terminal.duration(seconds) == said


def test_estimates_are_read_once_they_exist(tmp_path):
    f = terminal.Followed({"a": str(tmp_path / "a.json")}, tmp_path / "e.csv", "1x cpu")
    assert f.left_s() is None
    (tmp_path / "e.csv").write_text("setup,job,est_job_s\n1x cpu,a,30\n")
    assert f.left_s() == (30.0, 1)
