"""docs/own-model.md, "Add your own model", walked through Snakemake in a user's checkout: its
overlays, its `models:` entry, its commands and its refusal lines are read from the page, so the
page and the code cannot drift apart. A tiny random Qwen2 (a proven family other than Mistral's)
saved with a byte-level tokenizer is the local folder; a GPT-2 config.json the unproven family."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from checkout import copy_checkout, snakemake
from helpers import AGGREGATES, ROOT, dry_run_jobs

from ablate.core import planner
from ablate.core.outputs import model_card
from ablate.mask import families, layout
from ablate.mask import variants as mask_variants

DOC = ROOT / "docs" / "own-model.md"
TEXT = DOC.read_text()
LOCAL, UNPROVEN, FLEX, HUB = (
    "my-qwen2.yaml",
    "my-gpt2.yaml",
    "my-qwen2-flex.yaml",
    "qwen2.5-1.5b.yaml",
)
MEASUREMENTS = "config/gpu_measurements.yaml"


def doc_files() -> dict[str, str]:
    """The page's YAML blocks by the file their first line names (``# <file>: ...``)."""
    blocks = re.findall(r"```yaml\n(.*?)```", TEXT, re.S)
    return {m.group(1): b for b in blocks if (m := re.match(r"# ([\w./-]+\.yaml)[:,]", b))}


def doc_command(prefix: str, overlay: str) -> list[str]:
    """The arguments of the page's command that starts with ``prefix`` and names ``overlay``."""
    lines = [ln for b in re.findall(r"```bash\n(.*?)```", TEXT, re.S) for ln in b.splitlines()]
    found = [ln for ln in lines if ln.startswith(prefix + " ") and overlay in ln.split()]
    assert len(found) == 1, f"docs/own-model.md: no single `{prefix} ... {overlay}` command"
    return shlex.split(found[0])[len(prefix.split()) :]


def doc_refusal(needle: str) -> str:
    """The page's quoted refusal that contains ``needle``: one line."""
    found = [b for b in re.findall(r"```text\n(.*?)\n```", TEXT, re.S) if needle in b]
    assert len(found) == 1 and "\n" not in found[0], f"docs/own-model.md: refusal with {needle}"
    return found[0]


def byte_level_tokenizer():
    """A byte-level BPE tokenizer without merges (every byte a token), which adds no BOS, as
    Qwen's does; EOS (and pad) ``<|endoftext|>``. Built in milliseconds, offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab["<|endoftext|>"] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


def save_tiny_qwen2(folder: Path) -> None:
    """A tiny random Qwen2ForCausalLM and its tokenizer, saved with save_pretrained."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = byte_level_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)


def users_checkout(wd: Path) -> Path:
    """A checkout holding what the page has the user write: the local folders (models/), the
    overlays at the root (the GPT-2 one: the Qwen2 one with the GPT-2 folder, as the page says)
    and the hub model's `models:` entry."""
    copy_checkout(wd)
    save_tiny_qwen2(wd / "models" / "my-qwen2")
    gpt2 = {"model_type": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 8, "vocab_size": 16}
    (wd / "models" / "my-gpt2").mkdir(parents=True)
    (wd / "models" / "my-gpt2" / "config.json").write_text(json.dumps(gpt2))
    files = doc_files()
    assert {LOCAL, FLEX, HUB, MEASUREMENTS} <= set(files), sorted(files)
    for name in (LOCAL, FLEX, HUB):
        (wd / name).write_text(files[name])
    (wd / UNPROVEN).write_text(files[LOCAL].replace("my-qwen2", "my-gpt2"))
    measurements = wd / MEASUREMENTS
    text = measurements.read_text()
    assert text.count("\nmodels:\n") == 1
    entry = files[MEASUREMENTS].split("\n", 1)[1]  # without its comment line
    measurements.write_text(text.replace("\nmodels:\n", "\nmodels:\n" + entry, 1))
    return wd


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    return users_checkout(tmp_path_factory.mktemp("own_model"))


def config_of(wd: Path, *names: str) -> dict:
    return planner.load_config([wd / n for n in names])


def test_a_local_folder_plans_the_study(checkout):
    """The page's dry run of a local Qwen2 folder over the embedded default: exactly the mask
    study's job list, prepare_model registering the folder."""
    args = doc_command("snakemake -n", LOCAL)
    r = snakemake(checkout, "-n", *args, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    ran = [j for j in dry_run_jobs(r.stdout) if j[0] not in AGGREGATES]
    config = config_of(checkout, *args[args.index("--configfile") + 1 :])
    assert config["mask"]["model"] == {
        **config["mask"]["model"],
        "source": "pretrained",
        "path": "models/my-qwen2",
    }
    listed = [(j.rule, frozenset(j.outputs.values()), j.log) for j in layout.jobs(config)]
    assert sorted(ran, key=repr) == sorted(listed, key=repr)
    assert {"prepare_model", "finetune", "eval_model", "leakage_probe"} <= {j[0] for j in ran}


@pytest.mark.parametrize(
    "overlay, needle", [(UNPROVEN, "model_type 'gpt2'"), (FLEX, "'flex_attention'")]
)
def test_a_refusal_is_the_documented_line_before_any_job(checkout, overlay, needle):
    """An unproven family (a GPT-2 folder), and a proven family on a backend its audit does not
    cover (Qwen2 under flex_attention): the dry run stops at parse time with the page's line."""
    r = snakemake(checkout, "-n", *doc_command("snakemake -n", overlay), timeout=300)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert doc_refusal(needle) in out.splitlines(), out[-3000:]
    assert "Job stats" not in r.stdout and not dry_run_jobs(r.stdout)
    assert not (checkout / "results").exists()


def test_the_refusals_are_the_check_s_own_lines():
    """The quoted lines are what ablate.mask.families says (in-process, no Snakemake)."""
    gpt2 = doc_refusal("model_type 'gpt2'")
    what = "mask.model.path models/my-gpt2 (models/my-gpt2/config.json)"
    with pytest.raises(families.UnprovenFamilyError) as exc:
        families.check("gpt2", what=what)
    assert str(exc.value) == gpt2
    with pytest.raises(families.UnprovenFamilyError) as exc:
        families.check("qwen2", ["flex_attention"], what=what.replace("gpt2", "qwen2"))
    assert str(exc.value) == doc_refusal("'flex_attention'")


def test_the_hub_overlay_passes_the_check_with_its_models_entry(checkout):
    """The page's hub overlay and `models:` entry, offline: the parse-time check reads the
    family from the entry and passes every backend the study runs (the finetunes on
    sdpa_prefix_split), and the planner counts the size the page states (the model card's)."""
    from ablate.core.planner.params import shape_of_hub_model

    config = config_of(checkout, "config/ministral3b.yaml", HUB)
    measurements = checkout / MEASUREMENTS
    models = yaml.safe_load(measurements.read_text())["models"]
    path = config["mask"]["model"]["path"]
    cfg, source = families.read_model_config(path, None, models)
    assert cfg["model_type"] == "qwen2" and source == f"'models:' entry of {path}"
    backends = families.study_backends(mask_variants.variants_of(config))
    assert "sdpa_prefix_split" in backends and "flex_attention" not in backends
    families.check_study(config["mask"], backends, measurements=measurements)
    shape, _ = shape_of_hub_model(path, None, models, MEASUREMENTS)
    assert f"counts {shape.params / 1e9:.3f} B parameters" in " ".join(TEXT.split())
    assert round(shape.params / 1e9, 2) == 1.54  # the model card's size


@pytest.mark.slow
@pytest.mark.usefixtures("gpu_host")
def test_the_hub_overlay_dry_runs_and_plans_with_the_documented_commands(checkout):
    """The page's dry run and `ablate plan` of the hub overlay, as written (seconds each: the
    real study's config, the planner's 1.5 B shape)."""
    r = snakemake(checkout, "-n", *doc_command("snakemake -n", HUB), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "results/qwen2.5-1.5b/recovery.csv" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "plan", *doc_command("ablate plan", HUB)],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(checkout / "src")},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "model: Qwen/Qwen2.5-1.5B-Instruct, 1.544 B parameters" in r.stdout
    assert (checkout / "results/qwen2.5-1.5b/plan.csv").is_file()


@pytest.mark.slow
def test_a_local_folder_runs_prepare_model_and_the_base_evaluation(tmp_path):
    """The page's second command on the local Qwen2, offline: prepare_model registers the
    folder, the base model is evaluated causally on the embedded tasks (make_data first)."""
    wd = users_checkout(tmp_path / "wd")
    args = doc_command("snakemake -c2", LOCAL)
    r = snakemake(wd, "-c2", *args, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    card = model_card.read(wd / "results/model/base.json")
    assert card["source"] == "pretrained" and card["resolved"] == "local directory"
    assert card["path"] == "models/my-qwen2"
    metrics = json.loads((wd / "results/eval/base/causal/metrics.json").read_text())
    assert metrics["policy"] == "causal" and metrics["macro"]["n_tasks"] == 5
    assert Path(metrics["model"]["path"]) == wd / "models" / "my-qwen2"
