"""What the planner forecasts (ablate.core.planner.planned_jobs): a planned job reads its study's
job, and study_plans gathers the plans of the studies the config runs, each job on its upstream
job's instance where the vast profile groups their rules."""

from __future__ import annotations

from ablate import studies
from ablate.core.jobs import Job
from ablate.core.planner.inputs import Reference
from ablate.core.planner.planned_jobs import PlannedJob, StudyPlan, study_plans


def planned(name: str, rule: str, loads: str | None = None) -> PlannedJob:
    job = Job(study="s", rule=rule, name=name, wildcards={}, outputs={}, log=None, loads=loads)
    job.kind = "train" if rule == "finetune" else "eval"
    return PlannedJob(job, "base", None, 1.0, "", 1.0, "")


def test_a_planned_job_reads_its_study_job():
    p = planned("eval/3A/causal", "eval_model", loads="finetune/3A")
    assert (p.id, p.rule, p.kind, p.upstream) == (
        "eval/3A/causal",
        "eval_model",
        "eval",
        "finetune/3A",
    )
    other_work = PlannedJob(p.job, "base", None, 1.0, "", 1.0, "", kind="generate")
    assert other_work.kind == "generate"  # the other work inside a job keeps its own kind


def test_the_studies_the_config_runs_and_the_jobs_that_share_an_instance(tmp_path, monkeypatch):
    profile = tmp_path / "vast.yaml"
    profile.write_text("groups: {finetune: gpu, eval_model: gpu, leakage_probe: probe}\n")
    made = {}

    class Side:
        def __init__(self, name):
            self.name = name

        def study_plan(self, config, ref, root):
            jobs = [
                planned("finetune/3A", "finetune"),
                planned("eval/3A/causal", "eval_model", loads="finetune/3A"),  # one group
                planned("leakage/causal", "leakage_probe", loads="finetune/3A"),  # another
            ]
            made[self.name] = root
            plan = StudyPlan(self.name, "base", 1.0, "", jobs, lambda j, r: None, lambda j, r: None)
            return [plan, plan] if self.name == "two" else plan  # a study of two models

    monkeypatch.setattr(studies, "side", lambda name, part: Side(name))
    config = {
        "studies": ["one", "two", "off"],
        "plan": {"studies": ["two", "one"], "vast_profile": str(profile)},
    }
    plans = study_plans(config, Reference({}, {}, {}, {}, [], "m.yaml"), str(tmp_path))
    assert [p.study for p in plans] == [
        "one",
        "two",
        "two",
    ]  # the config's order, not plan.studies'
    assert made == {"one": tmp_path, "two": tmp_path}
    jobs = {j.id: j for j in plans[0].jobs}
    assert jobs["eval/3A/causal"].shares_instance == "finetune/3A"
    assert jobs["leakage/causal"].shares_instance is None
    assert jobs["finetune/3A"].shares_instance is None
