"""World-design search for issue 17: does a candidate embedded world make the tiny model need its
causal mask (stage 2 drops) and let a prefix-LM finetune recover more than a causal one (3B > 3A
under the ablation)? A fast loop outside the pipeline, for sweeping many candidates before one is
built into ``ablate.mask.embedded`` (docs/embedded.md has the sweeps and what they showed).

One run: generate the candidate world (tasks named below, ``name:n`` sets a task's size), pretrain
a tiny Ministral-3 (real Tekken vocabulary) causally, score every task's items under ``causal`` and
``prefill_bidir`` (the pipeline's own mask kwargs, ``ablate.mask.masks``), then finetune a copy
under ``causal`` (3A) and one under ``prefix_bidir`` (3B) on SFT pairs of the same tasks
(``--sft-form``: Alpaca-formatted, ``ablate.mask.sft_data``, or plain text as the embedded default
now uses) and score both again. Prints one JSON object (per-item
correctness, so a summary can run paired tests) on stdout, progress on stderr.

    PYTHONPATH=src python bench/tools/world_search.py --tok DIR [--device cuda] [--tasks count,repeat:4]
        [--restrict] [--steps N] [--bs B] [--lr LR] [--layers L] ... > run.json
    python bench/tools/world_search.py --summarize DIR      # a table per run.json in DIR

``--tok`` is a folder with the Tekken tokenizer (``ablate.mask.tiny.prepare_tekken_tokenizer``).
``--restrict`` computes the pretraining loss over the corpus' own token ids only (the lm_head rows
of the other ~131k ids are neither scored nor trained): 14x faster steps on one CPU thread
(1340 -> 93 ms at batch 8 x 64, 2-core AMD EPYC), which is what made induction tasks learnable
in a few thousand steps. Scoring here is a plain loglikelihood argmax (acc), not lm-eval: a search
tool, so its numbers rank candidates; the pipeline's tables are the ones to quote.
"""

import argparse
import json
import math
import random
import sys
import time

import torch

from ablate.core.models import modeling
from ablate.core.training.loss import vocab_head_loss
from ablate.core.training.pretraining import random_model
from ablate.mask import embedded, masks, sft_data, tiny

# candidate words of the tasks the embedded world does not have (single Tekken tokens)
ANIMALS = "cow cat dog bird bee horse mouse monkey owl frog".split()
FOODS = "grass fish bones seeds honey hay cheese nuts mice flies".split()
COLORS = "red blue green black white brown pink gray".split()
THINGS = list(embedded.THINGS)  # the embedded world's repetition items (--things: more)
MORE_THINGS = "cat dog egg map cap bed car bus sun fish tree door".split()


def t_recall(rng, n=4):
    keys = rng.sample(ANIMALS, n)
    vals = rng.sample(FOODS, n)
    q = rng.randrange(n)
    ctx = " , ".join(f"{k} {v}" for k, v in zip(keys, vals)) + f" . {keys[q]}"
    wrong = [v for i, v in enumerate(vals) if i != q][:3]
    while len(wrong) < 3:
        wrong.append(rng.choice([f for f in FOODS if f not in vals and f not in wrong]))
    return ctx, vals[q], wrong


def t_recall2(rng, n=4):  # key : value with a word between
    keys = rng.sample(COLORS, n)
    vals = rng.sample(THINGS, n)
    q = rng.randrange(n)
    ctx = " , ".join(f"the {k} {v}" for k, v in zip(keys, vals)) + f" . the {keys[q]}"
    wrong = [v for i, v in enumerate(vals) if i != q][:3]
    return ctx, vals[q], wrong


def t_next(rng, n=5):
    items = rng.sample(ANIMALS, n)
    q = rng.randrange(n - 1)
    ctx = "list : " + " ".join(items) + f" . after {items[q]} comes"
    wrong = [x for i, x in enumerate(items) if i != q + 1]
    wrong = rng.sample(wrong, 3)
    return ctx, items[q + 1], wrong


def t_prev(rng, n=5):
    items = rng.sample(FOODS, n)
    q = rng.randrange(1, n)
    ctx = "list : " + " ".join(items) + f" . before {items[q]} comes"
    wrong = rng.sample([x for i, x in enumerate(items) if i != q - 1], 3)
    return ctx, items[q - 1], wrong


def t_count(rng):
    # the embedded default's counting task (ablate.mask.embedded), without its closing " ."
    fact = embedded.FACTS["emb_count"](rng)
    bare = [w.removesuffix(" .") for w in (fact["answer"], *fact["wrong"])]
    return fact["context"], bare[0], bare[1:]


def t_last(rng, n=5):
    items = rng.sample(COLORS, n)
    ctx = "list : " + " ".join(items) + " . the first was"
    wrong = rng.sample(items[1:], 3)
    return ctx, items[0], wrong


def t_repeat(rng, n=5):
    items = rng.sample(THINGS, n)
    k = rng.randrange(1, n)
    ctx = " ".join(items) + " . again : " + " ".join(items[:k])
    pool = [x for i, x in enumerate(items) if i != k]
    pool += [x for x in THINGS if x not in items]
    wrong = pool[: n - 1][:3] + rng.sample(pool[n - 1 :], max(0, 3 - (n - 1)))
    return ctx, items[k], wrong


TASKS = dict(
    recall=t_recall,
    recall2=t_recall2,
    next=t_next,
    prev=t_prev,
    count=t_count,
    first=t_last,
    repeat=t_repeat,
)


def task_fn(name):
    base, _, n = name.partition(":")
    f = TASKS[base]
    return (lambda rng: f(rng, int(n))) if n else f


def corpus(tasks, seed, n_docs, per_doc):
    rng = random.Random(f"{seed}:corpus")
    fs = [task_fn(t) for t in tasks]
    docs = []
    for _ in range(n_docs):
        sents = []
        for _ in range(per_doc):
            c, a, _w = rng.choice(fs)(rng)
            sents.append(f"{c} {a} .")
        docs.append(" ".join(sents))
    return docs


def items(task, seed, n):
    rng = random.Random(f"{seed}:task:{task}")
    out = []
    for _ in range(n):
        c, a, w = task_fn(task)(rng)
        ch = list(w)
        lab = rng.randrange(len(ch) + 1)
        ch.insert(lab, a)
        out.append((c, ch, lab))
    return out


def sft_rows(tasks, seed, n, form="continue"):
    """SFT pairs of the tasks. ``continue``: the task context as input, its answer as output.
    ``list``: a repetition item's list as input and the whole list again as output, so every
    response token is read from the (under 3B bidirectional) prompt by the induction circuit.
    ``plain``: no Alpaca template, the task context is the prompt and its answer the response:
    the finetune then trains the very condition the evaluation scores."""
    rng = random.Random(f"{seed}:sft")
    rows = []
    for _ in range(n):
        c, a, _ = task_fn(rng.choice(tasks))(rng)
        listed, again, repeated = c.partition(" . again : ")
        if form == "list" and again:
            rows.append(
                {"instruction": "repeat the list .", "input": listed + " .", "output": listed}
            )
        elif form == "plain":  # sft_data's plain rows: the response as written, its space too
            rows.append({"prompt": c, "output": " " + a})
        elif form == "rest":  # plain, and the response goes on to the end of the list
            items, k = listed.split(), len(repeated.split())
            out = " ".join(items[k:]) if again and items[k : k + 1] == [a] else a
            rows.append({"prompt": c, "output": " " + out})
        else:
            rows.append({"instruction": "continue the text .", "input": c, "output": a})
    return rows


def lr_at(step, total, base, warm):
    w = max(1, int(total * warm))
    if step < w:
        return base * (step + 1) / w
    prog = (step - w) / max(1, total - w)
    return base * 0.5 * (1 + math.cos(math.pi * prog))


def train(model, batches, steps, lr, warm, policy, device, log, wd=0.0, head_loss=None):
    """AdamW, linear warmup then cosine, grad-norm clip 1; ``head_loss`` (the pipeline's
    ``trainer.vocab_head_loss``) replaces the full-vocabulary loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    model.train()
    losses = []
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(s, steps, lr, warm)
        ids, am, labels, pls = batches(s)
        kw = masks.policy_forward_kwargs(model, ids.to(device), am.to(device), pls, policy)
        tgt = labels[:, 1:].to(device)
        if head_loss is not None:
            h = model.model(**kw).last_hidden_state[:, :-1]
            keep = tgt != -100
            loss = head_loss(model.lm_head, h[keep], tgt[keep]) / keep.sum()
        else:
            logits = model(**kw).logits[:, :-1].float()
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100
            )
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if log and (s % 20 == 0 or s == steps - 1):
            print(f"  step {s} loss {sum(losses[-20:]) / len(losses[-20:]):.3f}", file=sys.stderr)
    model.eval()
    return losses


@torch.no_grad()
def evaluate(model, tok, its, policy, device):
    correct = []
    for ctx, choices, lab in its:
        cids = tok(ctx, add_special_tokens=True)["input_ids"]
        scores = []
        seqs = []
        for ch in choices:
            ans = tok(" " + ch, add_special_tokens=False)["input_ids"]
            seqs.append((cids + ans, len(cids), len(ans)))
        L = max(len(s) - 1 for s, _, _ in seqs)
        ids = torch.full((len(seqs), L), tok.pad_token_id)
        am = torch.zeros((len(seqs), L), dtype=torch.long)
        for i, (s, _, _) in enumerate(seqs):
            ids[i, : len(s) - 1] = torch.tensor(s[:-1])
            am[i, : len(s) - 1] = 1
        kw = masks.policy_forward_kwargs(model, ids.to(device), am.to(device), None, policy)
        lp = model(**kw).logits.float().log_softmax(-1).cpu()
        for i, (s, nc, na) in enumerate(seqs):
            tot = sum(lp[i, nc - 1 + j, s[nc + j]].item() for j in range(na))
            scores.append(tot)
        correct.append(int(max(range(len(scores)), key=scores.__getitem__) == lab))
    return correct


def summarize(folder: str) -> None:
    import glob
    import os

    def mean(v):
        return sum(v) / len(v)

    for f in sorted(glob.glob(os.path.join(folder, "*.json"))):
        r = json.load(open(f))
        tasks = list(r["base"]["causal"])
        print(
            f"== {os.path.basename(f)[:-5]}  pretrain loss {r['pre_loss']:.3f}  "
            f"SFT loss 3A {r['3A_loss']:.2f} 3B {r['3B_loss']:.2f}"
        )
        print(f"{'':>18}" + "".join(f"{t[:9]:>10}" for t in tasks) + "     macro")
        for stage in ("base", *r.get("finetunes", ("3A", "3B"))):
            for pol in ("causal", "prefill_bidir"):
                vals = [mean(r[stage][pol][t]) for t in tasks]
                row = "".join(f"{v:10.3f}" for v in vals)
                print(f"{stage:>4} {pol:>13}{row}{mean(vals):10.3f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--summarize", metavar="DIR", help="print the tables of DIR/*.json and exit")
    ap.add_argument("--tasks", default="recall,next,prev,count,repeat")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--inter", type=int, default=192)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--steps", type=int, default=160)
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--docs", type=int, default=1200)
    ap.add_argument("--per-doc", type=int, default=3)
    ap.add_argument("--ft-steps", type=int, default=60)
    ap.add_argument("--ft-lr", type=float, default=1e-3)
    ap.add_argument("--ft-bs", type=int, default=8)
    ap.add_argument("--ft-n", type=int, default=400)
    ap.add_argument(
        "--ft",
        action="append",
        default=[],
        metavar="NAME:POLICY:STEPS:LR[:BATCH]",
        help="another finetune of the same base (repeatable), e.g. 5B:prefix_bidir:400:5e-4",
    )
    ap.add_argument("--sft-form", choices=("continue", "list", "plain", "rest"), default="continue")
    ap.add_argument("--rope-theta", type=float, default=0, help="0: the pipeline's 1e6")
    ap.add_argument("--things", type=int, default=0, help="repetition items (8-20; 0: the 8)")
    ap.add_argument("--n-items", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tok", help="Tekken tokenizer folder")
    ap.add_argument("--log", action="store_true")
    ap.add_argument("--tag", default="")
    ap.add_argument("--restrict", action="store_true")
    ap.add_argument("--instruct", type=int, default=0)
    a = ap.parse_args(argv)
    if a.summarize:
        return summarize(a.summarize)
    torch.set_num_threads(a.threads)
    if a.things:  # a larger item vocabulary for the repetition tasks
        THINGS[:] = (list(embedded.THINGS) + MORE_THINGS)[: a.things]
    t0 = time.time()
    tasks = a.tasks.split(",")
    tok = modeling.load_tokenizer(a.tok)
    docs = corpus(tasks, a.seed, a.docs, a.per_doc)
    for r in sft_rows(tasks, a.seed + 99, a.instruct, a.sft_form):
        end = " ." if sft_data.is_plain(r) else ""  # a plain pair is a corpus sentence
        docs.append(sft_data.format_prompt(r) + r["output"] + end)
    random.Random(a.seed).shuffle(docs)
    stream = []
    for ids in tok(docs, add_special_tokens=True)["input_ids"]:
        stream += ids + [tok.eos_token_id]
    blocks = [stream[i : i + a.seq] for i in range(0, len(stream) - a.seq + 1, a.seq)]
    g = torch.Generator().manual_seed(a.seed)
    cfg = tiny.tiny_ministral3_config(
        vocab_size=len(tok),
        hidden_size=a.hidden,
        intermediate_size=a.inter,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        num_key_value_heads=a.kv,
        head_dim=a.head_dim,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=tok.pad_token_id,
    )
    if a.rope_theta:
        cfg.rope_parameters["rope_theta"] = a.rope_theta
    model = random_model(cfg, seed=a.seed, device=a.device, attn_implementation="sdpa")
    model.config.use_cache = False
    bt = torch.tensor(blocks)

    def pre_batches(s):
        idx = torch.randint(0, len(bt), (a.bs,), generator=g)
        ids = bt[idx]
        return ids, torch.ones_like(ids), ids.clone(), None

    head_loss = vocab_head_loss(stream) if a.restrict else None
    losses = train(
        model, pre_batches, a.steps, a.lr, 0.1, "causal", a.device, a.log, head_loss=head_loss
    )
    t_pre = time.time() - t0
    its = {t: items(t, a.seed + 1000, a.n_items) for t in tasks}
    res = {
        "args": vars(a),
        "pre_loss": sum(losses[-10:]) / 10,
        "t_pre": t_pre,
        "blocks": len(blocks),
    }

    def ev(tag):
        out = {}
        for pol in ("causal", "prefill_bidir"):
            out[pol] = {t: evaluate(model, tok, its[t], pol, a.device) for t in tasks}
        res[tag] = out
        summ = {pol: {t: round(sum(v) / len(v), 3) for t, v in out[pol].items()} for pol in out}
        print(tag, json.dumps(summ), file=sys.stderr)

    ev("base")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rows = sft_rows(tasks, a.seed, a.ft_n, a.sft_form)
    pairs = sft_data.tokenize_rows(tok, rows, 128)
    finetunes = [
        ("3A", "causal", a.ft_steps, a.ft_lr, a.ft_bs),
        ("3B", "prefix_bidir", a.ft_steps, a.ft_lr, a.ft_bs),
    ]
    for spec in a.ft:  # NAME:POLICY:STEPS:LR[:BATCH], e.g. 5B:prefix_bidir:400:5e-4
        name, pol, steps, lr, *bs = spec.split(":")
        finetunes.append((name, pol, int(steps), float(lr), int(bs[0]) if bs else a.ft_bs))
    res["finetunes"] = [f[0] for f in finetunes]
    for name, pol, ft_steps, ft_lr, ft_bs in finetunes:
        model.load_state_dict(state)
        gg = torch.Generator().manual_seed(a.seed + 7)

        def ft_batches(s, gg=gg, ft_bs=ft_bs):
            idx = torch.randint(0, len(pairs), (ft_bs,), generator=gg).tolist()
            sel = [pairs[i] for i in idx]
            L = max(len(p.input_ids) for p in sel)
            ids = torch.full((len(sel), L), tok.pad_token_id)
            am = torch.zeros_like(ids)
            lab = torch.full_like(ids, -100)
            for i, p in enumerate(sel):
                n = len(p.input_ids)
                ids[i, :n] = torch.tensor(p.input_ids)
                am[i, :n] = 1
                lab[i, p.prompt_length : n] = ids[i, p.prompt_length : n]
            return ids, am, lab, [p.prompt_length for p in sel]

        fl = train(model, ft_batches, ft_steps, ft_lr, 0.05, pol, a.device, a.log)
        res[name + "_loss"] = sum(fl[-10:]) / 10
        ev(name)
    res["t_total"] = time.time() - t0
    json.dump(res, sys.stdout)


if __name__ == "__main__":
    main()
