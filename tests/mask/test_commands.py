"""``ablate probe|eval|train``: --help and argument errors answer before torch is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Runs ``ablate`` in a fresh interpreter, then says which heavy modules the run imported.
PROBE = """
import sys
from ablate import cli
try:
    cli.main(sys.argv[1:])
except SystemExit as exc:
    print("exit", exc.code)
print("heavy", sorted(m for m in ("torch", "transformers", "lm_eval") if m in sys.modules))
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--help"],
        ["probe", "--help"],
        ["train", "--help"],
        ["train", "finetune", "--help"],
        ["eval", "--model", "m", "--tasks", "t", "--out", "o", "--policy", "bidir"],
        ["probe"],
    ],
)
def test_help_and_argument_errors_import_no_torch(argv):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True
    )
    assert "heavy []" in out.stdout, out.stdout
    code = 0 if "--help" in argv else 2
    assert f"exit {code}" in out.stdout, out.stdout + out.stderr
    if code:
        assert "error: " in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_eval_protocol_choices_are_the_scorers():
    from ablate.mask.commands import EVAL_PROTOCOLS
    from ablate.mask.policy_lm import PROTOCOLS

    assert EVAL_PROTOCOLS == tuple(PROTOCOLS)


def test_eval_softmax_dtype_choices_are_the_scorers():
    from ablate.mask.commands import EVAL_SOFTMAX_DTYPES
    from ablate.mask.policy_lm import SOFTMAX_DTYPES

    assert EVAL_SOFTMAX_DTYPES == SOFTMAX_DTYPES
