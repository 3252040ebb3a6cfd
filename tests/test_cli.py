"""ablate.cli: one entry point that names its commands, answers a wrong or missing command with
the list, parses the torch commands' arguments before importing them, and hands each command its
arguments and its exit status back."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from ablate import cli


def test_every_command_names_a_module_with_a_main():
    for command, (module, help_line) in cli.COMMANDS.items():
        assert importlib.util.find_spec(module) is not None, command
        assert help_line and "\n" not in help_line, command
    # importing each is slow (torch): the cheap ones prove the contract, the rest are in PARSERS
    assert callable(importlib.import_module("ablate.core.module_map").main)


@pytest.mark.parametrize(("argv", "code"), [([], 2), (["nope"], 2), (["--help"], 0), (["-h"], 0)])
def test_no_known_command_prints_the_commands(argv, code, capsys):
    assert cli.main(argv) == code
    out = capsys.readouterr().out
    assert out.startswith("usage: ablate <command> [args]")
    assert all(f"  {c} " in out for c in cli.COMMANDS)


def test_a_command_gets_its_arguments_and_its_status_is_the_exit_status(tmp_path, monkeypatch):
    (tmp_path / "fake_command.py").write_text(
        "seen = []\ndef main(argv):\n    seen.append(argv)\n    return 3 if argv else None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_command", "a test's command"))
    assert cli.main(["fake", "--x", "1"]) == 3
    assert cli.main(["fake"]) == 0  # a main that returns None succeeded
    assert sys.modules["fake_command"].seen == [["--x", "1"], []]


def test_a_torch_commands_wrong_argument_is_answered_before_torch_is_imported():
    code = (
        "import sys\n"
        "from ablate import cli\n"
        "try:\n    cli.main(['eval', '--no-such-flag'])\n"
        "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["2", "False"], out
    assert "ablate eval: error: the following arguments are required: --model" in out.stderr
