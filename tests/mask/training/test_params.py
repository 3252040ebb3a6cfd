"""ablate.mask.training.params: the mask study's training params (the core's keys, the study's and
the leakage probe's, which take the config's ``leakage`` section's bounds and defaults): resolved
for a library caller, only checked for a job (which may go without the probe's keys)."""

from __future__ import annotations

import pytest

from ablate.core.training.params import TrainingConfigError
from ablate.mask.training.params import PROBE_PARAMS, check_params, resolve_params


def test_unknown_param_is_named():
    with pytest.raises(TrainingConfigError, match="learnin_rate"):
        resolve_params({"learnin_rate": 1e-4}, "finetune")
    with pytest.raises(TrainingConfigError, match="max_steps"):
        resolve_params({"max_steps": 0}, "finetune")


def test_a_job_checks_its_params_and_merges_no_default():
    """The job side only checks: params resolved where the config was parsed pass as they are;
    partial ones (a default not filled in) are refused, naming the keys."""
    p = resolve_params({"max_steps": 3}, "finetune")
    assert check_params(p.as_dict(), "finetune") == p
    with pytest.raises(TrainingConfigError, match="without learning_rate"):
        check_params({k: v for k, v in p.as_dict().items() if k != "learning_rate"}, "finetune")


def test_the_probe_keys_are_a_finetunes_with_the_leakage_sections_bounds():
    p = resolve_params({"probe_size": 3}, "finetune")
    assert (p.probe_size, p.probe_batch_size, p.probe_threshold) == (3, 8, None)
    with pytest.raises(TrainingConfigError, match="probe_size"):
        resolve_params({"probe_size": 0}, "finetune")  # the leakage section's n_pairs: >= 1
    with pytest.raises(TrainingConfigError, match="'probe_size' was unexpected"):
        resolve_params({"probe_size": 3}, "pretrain")  # a pretraining runs no probe


def test_a_job_may_go_without_the_probe_keys():
    """The pipeline's finetune runs the probe as its own rule: its params hold no probe key."""
    given = {
        k: v for k, v in resolve_params({}, "finetune").as_dict().items() if k not in PROBE_PARAMS
    }
    p = check_params(given, "finetune")
    assert p.probe_size is None and p.as_dict() == given
