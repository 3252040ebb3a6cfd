"""ablate.mask.training.cli (``ablate train finetune|pretrain``): the params of ``--params`` (a
file or inline JSON) and ``--set KEY=VALUE`` (a YAML value) handed to the run, each malformed
argument refused in one line, and the exit codes (3: the leakage gate refused, 2: any other
refusal)."""

from __future__ import annotations

import json

import pytest
from helpers import no_leak

from ablate.mask.training import cli

#: ``ablate train pretrain``'s required arguments; the files are never read where the run is
#: replaced or an argument is refused first
PRETRAIN = ["pretrain", "--corpus", "c.jsonl", "--tokenizer", "tok", "--out", "out"]


def test_cli_exit_codes(tiny_model_dir, sft_file, tmp_path):
    probe = tmp_path / "probe.json"
    probe.write_text(
        json.dumps({**no_leak("prefill_bidir"), "leaks": True, "loss_policy": 0.1, "ratio": 0.05})
    )
    args = [
        "finetune",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(sft_file),
        "--policy",
        "prefill_bidir",
        "--out",
        str(tmp_path / "o"),
        "--probe-result",
        str(probe),
        "--set",
        "eval_size=4",
        "--set",
        "max_steps=1",
    ]
    assert cli.main(args) == 3
    assert cli.main([*args[:-1], "learnin_rate=1"]) == 2


def test_params_sets_and_arch_reach_the_run(monkeypatch, tmp_path):
    """``--set`` overrides ``--params`` key by key, its value read as YAML (a number, not text)."""
    runs = []
    monkeypatch.setattr(cli, "pretrain", lambda **kw: runs.append(kw))
    params = tmp_path / "params.yaml"
    params.write_text("max_steps: 5\nlearning_rate: 0.01\n")
    argv = [*PRETRAIN, "--params", str(params), "--set", "max_steps=7", "--set", "eval_steps=2"]
    assert cli.main([*argv, "--arch", '{"num_hidden_layers": 1}']) == 0
    (run,) = runs
    p = run["params"]
    assert (p.max_steps, p.learning_rate, p.eval_steps) == (7, 0.01, 2)
    assert run["arch"] == {"num_hidden_layers": 1} and str(run["out_dir"]) == "out"


@pytest.mark.parametrize(
    "args,error",
    [
        (["--params", "no-such-file"], "--params: 'no-such-file' is neither a file nor a JSON"),
        (["--params", "[1, 2]"], "--params: expected a mapping, got list"),
        (["--set", "max_steps"], "--set 'max_steps': expected KEY=VALUE"),
        (["--set", "max_steps=many"], "invalid pretrain parameter max_steps: 'many' is not"),
    ],
    ids=["neither-file-nor-json", "not-a-mapping", "set-without-value", "set-of-wrong-type"],
)
def test_a_malformed_argument_is_refused_in_one_line(capsys, args, error):
    assert cli.main([*PRETRAIN, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {error}") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "value, says",
    [("[1", "not valid YAML at its end: did not find expected ',' or ']'"),
     ("*a", "not valid YAML at column 1: found undefined alias"),
     ("!!python/name:os.system", "not valid YAML at column 1: could not determine a constructor"),
     ("{a: 1, a: 2}", "the key a is written twice")],
    ids=["open-bracket", "undefined-alias", "python-tag", "key-twice"],
)  # fmt: skip
def test_a_set_value_yaml_cannot_read_is_refused_in_one_line(capsys, value, says):
    """A ``--set`` value YAML cannot read was a yaml ParserError (ComposerError,
    ConstructorError) traceback; now one line naming the entry and where in it."""
    assert cli.main([*PRETRAIN, "--set", f"max_steps={value}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --set max_steps={value}: {says}") and err.count("\n") == 1, err


def test_a_key_set_twice_is_refused(capsys):
    """``--set max_steps=1 --set max_steps=2`` kept the second silently."""
    assert cli.main([*PRETRAIN, "--set", "max_steps=1", "--set", "max_steps=2"]) == 2
    assert capsys.readouterr().err == (
        "error: --set max_steps=1 and --set max_steps=2 set one key: give each key once\n"
    )


def test_a_binary_params_file_is_named(tmp_path, capsys):
    """A ``--params`` file that is no text was a UnicodeDecodeError traceback."""
    for name in ("params.yaml", "params.json"):
        (tmp_path / name).write_bytes(b"\x80\x81\xff")
        assert cli.main([*PRETRAIN, "--params", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --params: {tmp_path / name}") and err.count("\n") == 1, err


def test_a_step_of_more_examples_than_the_rows_stops_the_finetune_before_its_model(
    tmp_path, capsys
):
    """A hub dataset's rows are known only once it is read, so the finetune itself refuses a
    step (batch_size x grad_accum) of more examples than the rows it trains on: one line, before
    the tokenizer or the model loads (here: neither exists), nothing written."""
    rows = tmp_path / "sft.jsonl"
    rows.write_text((json.dumps({"prompt": "a", "output": " b"}) + "\n") * 20)
    args = ["finetune", "--model", str(tmp_path / "no-model"), "--data", str(rows)]
    args += ["--policy", "causal", "--out", str(tmp_path / "out")]
    assert cli.main([*args, "--set", "eval_size=4", "--set", "batch_size=100000000"]) == 2
    assert capsys.readouterr().err == (
        "error: a step of batch_size 100000000 x grad_accum 16 = 1600000000 examples is more "
        "than the 16 rows it trains on: a step would hold rows twice (the gradient of one pass "
        "over them, at more cost); make batch_size x grad_accum at most 16\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "file"])
def test_a_json_params_key_written_twice_is_refused_naming_it(tmp_path, capsys, inline):
    """JSON ``--params`` of one key twice (``{"max_steps": 1, "max_steps": 2}``) kept the second
    silently, where a YAML file of it is refused (``user_yaml.load_yaml``)."""
    text = '{"learning_rate": 0.01, "max_steps": 1, "max_steps": 2}'
    (tmp_path / "params.json").write_text(text)
    where = repr(text) if inline else str(tmp_path / "params.json")
    assert cli.main([*PRETRAIN, "--params", text if inline else where]) == 2
    assert capsys.readouterr().err == (
        f"error: --params: {where}: the key max_steps is written twice (JSON would keep the "
        "second silently): delete one of them\n"
    )
