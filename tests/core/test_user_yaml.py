"""ablate.core.user_yaml: the one reader of YAML a user typed (config files, ``--set`` values,
task YAMLs) refuses in one line naming the file or value what YAML would misread or a traceback
would report: a binary file, a control character, a Python or custom tag, an undefined alias, a
tagged value YAML cannot build, and a file of no config keys (a list, a single value)."""

from __future__ import annotations

import pytest

from ablate.core.user_yaml import ConfigError, config_mapping, load_config_file, load_yaml


def refusal(path, content: bytes, read=load_config_file) -> str:
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}") and "\n" not in message, message
    return message


@pytest.mark.parametrize(
    "content, says",
    [(b"\x89PNG\r\n\x1a\n\x00\x00", ": not UTF-8 text (byte 0 is 0x89; a binary file?)"),
     (b"results: a\x00b\n", ": not YAML text: control characters are not allowed (U+0000 at "
      "character 11): a binary file?"),
     (b"mask: !!python/object/apply:os.system [ls]\n", ":1:7: not valid YAML: could not determine a "
      "constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'; write a plain "
      "YAML value there, without the tag"),
     (b"task: !function utils.process\n", ":1:7: not valid YAML: could not determine a constructor "
      "for the tag '!function'"),
     (b"a: 1\nb: *nowhere\n", ":2:4: not valid YAML: found undefined alias; define the anchor"),
     (b"seed: !!int one\n", ": a value YAML cannot read (invalid literal for int()")],
    ids=["binary", "control-character", "python-tag", "custom-tag", "undefined-alias", "bad-int"],
)  # fmt: skip
def test_a_file_yaml_cannot_read_is_one_line_naming_it(tmp_path, content, says):
    """Each was a traceback (UnicodeDecodeError; ReaderError, ConstructorError and ComposerError
    naming "<unicode string>"; ValueError), or, through a caller, a misleading line."""
    assert refusal(tmp_path / "c.yaml", content).startswith(f"{tmp_path / 'c.yaml'}{says}")


@pytest.mark.parametrize(
    "content, holds",
    [(b"- a\n- b\n", "a list of 2 items"), (b"7\n", "the single value 7"),
     (b"just words\n", "the single value 'just words'")],
)  # fmt: skip
def test_a_config_file_of_no_keys_says_what_it_holds(tmp_path, content, holds):
    """A list or a single value was passed on (an AttributeError in ``ablate exp run --file``,
    a misplaced target in the dry run's line)."""
    message = refusal(tmp_path / "o.yaml", content, read=config_mapping)
    assert message == (
        f"{tmp_path / 'o.yaml'}: holds {holds}, not config keys: a config file is a mapping of "
        "`key: value` lines (results: results)"
    )


def test_an_empty_config_file_has_no_keys(tmp_path):
    (tmp_path / "e.yaml").write_text("# nothing yet\n")
    assert config_mapping(tmp_path / "e.yaml") == {}


@pytest.mark.parametrize(
    "text, says",
    [("[1, 2", "not valid YAML at its end: did not find expected ',' or ']' (while parsing a "
      "flow sequence from column 1); close its brackets and quotes"),
     ("a: b: c", "not valid YAML at column 5: mapping values are not allowed in this context"),
     ("{k: 1, k: 2}", "the key k is written twice (YAML would keep the second silently)")],
)  # fmt: skip
def test_a_typed_value_is_refused_by_column_not_by_line(text, says):
    with pytest.raises(ConfigError) as info:
        load_yaml(text, f"--set x={text}", value=True)
    assert str(info.value).startswith(f"--set x={text}: {says}"), str(info.value)


def test_plain_yaml_reads_as_before():
    """Merge keys, anchors and JSON are plain YAML: read, not refused."""
    text = "base: &b {lr: 1.0e-3, steps: 2}\nrun:\n  <<: *b\n  steps: 3\nlist: [1, 2]\n"
    assert load_yaml(text, "x") == {
        "base": {"lr": 1.0e-3, "steps": 2},
        "run": {"lr": 1.0e-3, "steps": 3},
        "list": [1, 2],
    }
    assert load_yaml(b'{"a": [1, {"b": null}]}', "x.json") == {"a": [1, {"b": None}]}
