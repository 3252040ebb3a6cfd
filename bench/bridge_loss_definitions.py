"""Each bridge loss definition's value on the embedded bridge's tiny models (docs/differences.md,
"Bridge study: losses"): the pipeline's default against the original's definition, term by term.

    PYTHONPATH=src python bench/bridge_loss_definitions.py [--steps 40] [--out FILE.md]

Builds the embedded default's world and its two tiny models exactly as config/config.yaml does
(ablate.bridge.world.write_world, ablate.bridge.models.prepare_model: tokenizers trained and
models pretrained here), trains one translator for ``--steps`` steps on the default loss (so its
soft tokens carry the source), then evaluates every term on the same fixed training batches under
each definition (translator in eval mode: no dropout; the KL on from step 1). A term's value is
the mean over the batches; "x weight" is what it adds to the loss at the weight of
config/latentwire.yaml. One thread: the numbers do not depend on the machine beyond rounding.

Below the table: how many rows of the original's KL window are pad rows when its batches are
padded on the left (its tokenizers' side) or the right (token counts of the same batches: the
pipeline never counts them); the later era's KL over that window with its pad rows summed (the
original's, bench/references.py's transcription) against its real rows alone; InfoNCE's pooled
prompt as the padded mean (the original's) against the real-token mean (the pipeline's); and the
translator's gradient of the default loss with the soft tokens' RMS statistic detached
(``rms_detach``, the original's) against without.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from ablate.bridge import models, switches, world
from ablate.bridge import params as bridge_params
from ablate.bridge import translator as tr
from ablate.bridge.pair import infonce as pair_infonce
from ablate.bridge.pair import load_pair
from ablate.bridge.training import recipe
from ablate.core.training import loop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from references import original_later_kl_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BATCHES, ROWS = 8, 4

#: (term, the part's name in Pair.loss, the settings of each definition; the first is the default)
ROWS_OF_TABLE = [
    (
        "NLL",
        "nll",
        {
            "answer (default)": {},
            "original": {"nll_labels": "original"},
            "original, left padding": {"nll_labels": "original", "padding": "left"},
        },
    ),
    (
        "KL",
        "kl",
        {
            "full teacher, mean (default)": {},
            "full teacher, batchmean": {"kl_reduction": "batchmean"},
            "early era: prompt_only, batchmean, original labels": {
                "kl_teacher": "prompt_only",
                "kl_reduction": "batchmean",
                "nll_labels": "original",
            },
            "early era, left padding": {
                "kl_teacher": "prompt_only",
                "kl_reduction": "batchmean",
                "nll_labels": "original",
                "padding": "left",
            },
            "later era: answer_only, batchmean, original labels": {
                "kl_teacher": "answer_only",
                "kl_reduction": "batchmean",
                "nll_labels": "original",
            },
            "later era, + the row at the answer's last token (kl_rows)": {
                "kl_teacher": "answer_only",
                "kl_reduction": "batchmean",
                "nll_labels": "original",
                "kl_rows": "original",
            },
            "later era, kl_rows, left padding (the overlay's)": {
                "kl_teacher": "answer_only",
                "kl_reduction": "batchmean",
                "nll_labels": "original",
                "kl_rows": "original",
                "padding": "left",
            },
            "answer_only, mean": {"kl_teacher": "answer_only"},
            "prompt_only, mean": {"kl_teacher": "prompt_only"},
        },
    ),
    ("InfoNCE", "infonce", {"full (default)": {}, "first_k": {"infonce_prompt": "first_k"}}),
    (
        "prompt alignment",
        "align",
        {"pooled (default)": {}, "per_position": {"prompt_align": "per_position"}},
    ),
]


def embedded(tmp: Path) -> tuple[dict, dict, dict]:
    """The embedded default's world, model cards and grid defaults (config/config.yaml)."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["bridge"]
    files = world.write_world(tmp / "world", seed=cfg["data"]["seed"], **cfg["data"]["embedded"])
    cards = {}
    for role in ("source", "target"):
        m = cfg[role]
        models.prepare_model(
            family=m["family"],
            arch=m.get("arch"),
            pretrain=m.get("pretrain"),
            corpus=files["corpus"],
            out_dir=tmp / role,
            config_slice={"family": m["family"]},
        )
        cards[role] = tmp / role / "card.json"
    return files, cards, cfg["defaults"]


def seed_weights() -> dict:
    """The loss weights of config/latentwire.yaml (the seed's)."""
    d = yaml.safe_load((ROOT / "config" / "latentwire.yaml").read_text())["bridge"]["defaults"]
    return {
        "nll": 1.0,
        "kl": d["kl_weight"],
        "infonce": d["infonce_weight"],
        "align": d["prompt_align_weight"],
    }


def terms(pair, translator, p, fixed) -> dict[tuple[str, str], float]:
    """Every (term, definition)'s value: the mean over the ``fixed`` batches."""
    out = {}
    for term, part, definitions in ROWS_OF_TABLE:
        for name, settings in definitions.items():
            pair.p = bridge_params.check(bridge_params.resolve({**p, **settings}))
            with torch.no_grad():
                values = [float(pair.loss(translator, b, 1)[1][part]) for b in fixed]
            out[term, name] = sum(values) / len(values)
    pair.p = bridge_params.check(p)
    return out


def window_pad_rows(pair, p, fixed) -> list[str]:
    """Per era and padding side: the rows of the original's KL window (its first kl_positions
    positions of the padded batch, the soft tokens' own in the early era) that are pad rows of
    its teacher, over the ``fixed`` batches; from token counts alone."""
    pair.p = bridge_params.check(bridge_params.resolve({**p, "nll_labels": "original"}))
    n = p["kl_positions"]
    lines = []
    for era, lengths in (
        ("early (the prompt alone)", lambda b: [len(pair.prompt_ids(i)) for i in b]),
        ("later (BOS + answer)", lambda b: [len(t) for t in pair.tails(b)[0]]),
    ):
        for side in ("left", "right"):
            pads = total = 0
            for batch in fixed:
                ls = lengths(batch)
                width = max(ls)
                window = min(n, width)
                for length in ls:
                    real = range(width - length, width) if side == "left" else range(length)
                    pads += sum(j not in real for j in range(window))
                    total += window
            lines.append(f"| {era} | {side} | {pads} of {total} |")
    pair.p = bridge_params.check(p)
    return lines


def padded_window_kl(pair, translator, p, fixed) -> list[str]:
    """The later era's KL (answer_only teacher, batchmean) over the original's window (the first
    kl_positions rows of its batch padded on each side), its pad rows summed as the original
    does against the same window's real rows alone, the mean over the ``fixed`` batches; with
    the pipeline's term under the same settings (padding on that side, kl_rows: original)."""
    n = p["kl_positions"]
    later = {"kl_teacher": "answer_only", "kl_reduction": "batchmean", "nll_labels": "original"}
    lines = [
        "",
        "The later era's KL (answer_only, batchmean, original labels) over the original's window,"
        " trained translator: its pad rows summed (the original) against its real rows alone,"
        " and the pipeline's term (kl_rows: original, padding on that side)",
        "",
        "| padding | window, pad rows summed | real rows alone | the pad rows' part | pipeline |",
        "|---|---|---|---|---|",
    ]
    for side in ("left", "right"):
        padded = real_only = ours = 0.0
        pair.p = bridge_params.check(
            bridge_params.resolve({**p, **later, "kl_rows": "original", "padding": side})
        )
        for batch in fixed:
            with torch.no_grad():
                soft = pair.soft(translator, batch).float()
                ours += float(pair.loss(translator, batch, 1)[1]["kl"]) / len(fixed)
            rows, real = original_later_kl_rows(pair, soft, batch, side)
            rows, real = rows[:, :n], real[:, :n]
            padded += float(rows.sum()) / len(batch) / len(fixed)
            real_only += float((rows * real).sum()) / len(batch) / len(fixed)
        lines.append(
            f"| {side} | {padded:.4f} | {real_only:.4f} | {padded - real_only:+.4f}"
            f" ({(padded - real_only) / real_only:+.1%}) | {ours:.4f} |"
        )
    pair.p = bridge_params.check(p)
    return lines


def padded_pooling(pair, translator, p, fixed) -> list[str]:
    """InfoNCE's pooled prompt as the original's early era pools it (the mean over the padded
    batch, pad embeddings counted) against the pipeline's (the mean over the real tokens), on
    the ``fixed`` batches: how far each row's pooled target moves (|padded - real| / |real|,
    the cosine) and the InfoNCE loss of the same soft tokens against each."""
    moves, cosines, losses = [], [], {"real": 0.0, "padded": 0.0}
    embed = pair.target.get_input_embeddings()
    group = switches.infonce_group(pair.p)
    for batch in fixed:
        prompts = [pair.prompt_ids(i) for i in batch]
        real = pair.pooled_prompt(prompts)
        width = max(map(len, prompts))
        ids = [q + [pair.tgt_tok.pad_token_id] * (width - len(q)) for q in prompts]
        with torch.no_grad():
            padded = embed(torch.tensor(ids, device=pair.device)).float().mean(1)
            pooled_soft = pair.soft(translator, batch).float().mean(1)
            for name, target in (("real", real), ("padded", padded)):
                nce = pair_infonce(pooled_soft, target, pair.p.infonce_temperature, group)
                losses[name] += float(nce) / len(fixed)
        moves.append((padded - real).norm(dim=-1) / real.norm(dim=-1))
        cosines.append(F.cosine_similarity(padded, real, dim=-1))
    move, cosine = torch.cat(moves), torch.cat(cosines)
    return [
        "",
        "InfoNCE's pooled prompt, trained translator: the mean over the padded batch (the"
        " original's early era) against the mean over the real tokens (the pipeline's)",
        "",
        "| rows | mean |padded - real| / |real| | max | rows unmoved | min cosine |"
        " InfoNCE, real mean | InfoNCE, padded mean | difference |",
        "|---|---|---|---|---|---|---|---|",
        f"| {len(move)} | {float(move.mean()):.3f} | {float(move.max()):.3f} |"
        f" {float((move == 0).sum())} | {float(cosine.min()):.4f} | {losses['real']:.4f} |"
        f" {losses['padded']:.4f} | {losses['padded'] - losses['real']:+.4f} |",
    ]


def rms_gradients(pair, translator, p, fixed) -> tuple[float, float, float]:
    """The default loss's gradient over the translator's weights with the RMS statistic
    detached against without (eval mode: no dropout): |g_detached - g| / |g|, the cosine, and
    the share of soft tokens whose scale is inside its clamp (elsewhere the two gradients are
    one: the clamp cuts the gradient through the RMS)."""
    grads = []
    for detach in (False, True):
        translator.detach_rms = detach
        translator.zero_grad()
        for b in fixed:
            pair.loss(translator, b, 1)[0].backward()
        grads.append(torch.cat([q.grad.flatten() for q in translator.parameters()]))
    translator.detach_rms = p["rms_detach"]
    translator.zero_grad()
    inside, (lo, hi) = [], tr.SCALE_CLAMP

    def scales(module, args, y):  # the output before the rescaling
        scale = translator.target_rms / y.pow(2).mean(-1).sqrt()
        inside.append((scale > lo) & (scale < hi))

    hook = translator.out.register_forward_hook(scales)
    with torch.no_grad():
        for b in fixed:
            pair.soft(translator, b)
    hook.remove()
    g, d = grads
    share = float(torch.cat([x.flatten() for x in inside]).float().mean())
    return float((d - g).norm() / g.norm()), float(F.cosine_similarity(g, d, 0)), share


def measure(files, cards, defaults, steps: int) -> tuple[list[dict], list[str], tuple]:
    """Each definition's value at the fresh translator (gates at 0: the soft tokens are its
    queries, whatever the source) and after ``steps`` steps of the default loss; the pad rows of
    the original's KL window; the RMS detach's gradient (trained translator)."""
    p = bridge_params.resolve({**defaults, "warmup_steps": 0})
    pair = load_pair(cards["source"], cards["target"], "gsm8k", bridge_params.check(p))
    items = world.load_dataset(files["gsm8k_train"], "gsm8k")
    fixed = [items[len(items) - (b + 1) * ROWS :][:ROWS] for b in range(BATCHES)]
    torch.manual_seed(p["seed"])
    translator = tr.build(pair.p, pair.source, pair.target).to(pair.device)
    at_init = terms(pair, translator.eval(), p, fixed)
    translator.train()
    rows = bridge_params.check(bridge_params.resolve({**p, "batch_size": ROWS}))
    trainer = recipe.translator_trainer(pair, translator, items, rows, "definitions")
    for s in range(steps):  # the pipeline's step (ablate.core.training.loop.step), steps 1..
        loop.step(trainer, items[(s * ROWS) % len(items) :][:ROWS])
    trained = terms(pair, translator.eval(), p, fixed)
    pads = window_pad_rows(pair, p, fixed)
    extra = padded_window_kl(pair, translator, p, fixed) + padded_pooling(
        pair, translator, p, fixed
    )
    gradient = rms_gradients(pair, translator, p, fixed)
    weights = seed_weights()
    rows = []
    for term, part, definitions in ROWS_OF_TABLE:
        default = next(iter(definitions))
        for name in definitions:
            v0, v = at_init[term, name], trained[term, name]
            rows.append(
                dict(term=term, name=name, init=v0, init_ratio=v0 / at_init[term, default],
                     value=v, weighted=weights[part] * v, ratio=v / trained[term, default])
            )  # fmt: skip
    return rows, pads + extra, gradient


def table(rows, pads, gradient, steps: int, seconds: float) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [
        f"{BATCHES} fixed batches of {ROWS} training items; torch {torch.__version__}, 1 thread,"
        f" {cpu}; {seconds:.0f} s. At init: the fresh translator; trained: after {steps} steps of"
        " the default loss; x weight: at config/latentwire.yaml's weights",
        "",
        "| term | definition | at init | / default | trained | / default | trained x weight |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['term']} | {r['name']} | {r['init']:.4f} | {r['init_ratio']:.2f} |"
            f" {r['value']:.4f} | {r['ratio']:.2f} | {r['weighted']:.5f} |"
        )
    lines += [
        "",
        "The original's KL window (the first kl_positions rows of its padded batch): its pad rows",
        "",
        "| era | padding | pad rows of the window |",
        "|---|---|---|",
        *pads,
        "",
        "The trained translator's gradient of the default loss over the same batches, the RMS"
        f" statistic detached against not: |difference| / |gradient| {gradient[0]:.2e}, cosine"
        f" {gradient[1]:.6f}; soft tokens whose scale is inside its clamp"
        f" {tr.SCALE_CLAMP}: {gradient[2]:.1%}",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        files, cards, defaults = embedded(Path(tmp))
        rows, pads, gradient = measure(files, cards, defaults, args.steps)
    text = table(rows, pads, gradient, args.steps, time.time() - t0)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
