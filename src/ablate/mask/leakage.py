"""Label-leakage probe: does a mask policy let response tokens see the labels they predict?

The response-token loss under ``causal`` and under the policy, same weights and pairs; a leak is a
loss ratio below the threshold, or response losses that move when only a later token changes,
which needs no trained weights: a causally trained model does not yet exploit a bidirectional
view. The measurements behind both: docs/masks.md, "The leakage probe". ``ablate probe`` exits 0
whenever it ran: the training gate reads ``leaks``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ablate.core.outputs import io
from ablate.core.training.data import PolicyCollator
from ablate.core.training.params import IGNORE_INDEX
from ablate.mask import families, masks
from ablate.mask.commands import DEFAULT_THRESHOLD, PROBE_ATTN_IMPLEMENTATION, probe_parser
from ablate.mask.sft_data import TokenizedPair

#: |change| in nats of a response-token loss, above which the policy reads later tokens.
#: Leak-free policies give exactly 0 change (the computation for those positions is identical);
#: leaking ones move it by >1e-2 even in bf16 on random weights.
_DEFAULT_DEPENDENCE_TOL = 1e-3


class LeakageProbeError(ValueError):
    pass


def _batch(pairs: list[TokenizedPair], device) -> tuple[torch.Tensor, ...]:
    """The training collator's batch on ``device``: ids, padding mask, labels, prompt lengths
    (pads are masked out: any pad id gives the same losses)."""
    b = PolicyCollator(pad_token_id=0)(
        [{"input_ids": p.input_ids, "prompt_length": p.prompt_length} for p in pairs]
    )
    keys = ("input_ids", "attention_mask", "labels", "prompt_lengths")
    return tuple(b[k].to(device) for k in keys)


def _token_nll(model, ids, mask, labels, lengths, policy) -> torch.Tensor:
    """NLL of each label token (0 where there is no label), shape (B, T-1)."""
    logits = model(**masks.policy_forward_kwargs(model, ids, mask, lengths, policy)).logits
    target = labels[:, 1:]
    nll = F.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), target, ignore_index=IGNORE_INDEX, reduction="none"
    )
    return nll * (target != IGNORE_INDEX)


def _check_pairs(pairs: list[TokenizedPair]) -> None:
    if not pairs:
        raise LeakageProbeError("leakage probe needs at least one prompt/response pair")
    for i, p in enumerate(pairs):
        if not 1 <= p.prompt_length < len(p.input_ids):
            raise LeakageProbeError(
                f"pair {i}: prompt_length {p.prompt_length} leaves no response token "
                f"(sequence length {len(p.input_ids)})"
            )


@dataclass
class _Totals:
    """The probe's sums over batches."""

    causal: float = 0.0
    policy: float = 0.0
    n_tokens: int = 0
    n_dep: int = 0
    sensitivity: float = 0.0


def _probe_batch(model, batch, policy: str, vocab: int, totals: _Totals) -> None:
    """Add one batch's losses and future dependence to ``totals``."""
    ids, mask, labels, lengths = batch
    nll_c = _token_nll(model, ids, mask, labels, lengths, "causal")
    nll_p = nll_c if policy == "causal" else _token_nll(model, ids, mask, labels, lengths, policy)
    totals.causal += nll_c.double().sum().item()
    totals.policy += nll_p.double().sum().item()
    totals.n_tokens += int((labels[:, 1:] != IGNORE_INDEX).sum())
    # Future dependence: change each row's last token; the loss of a label at index
    # t <= last-1 is predicted from inputs < t, all unchanged, so it must not move.
    last = mask.sum(1) - 1
    rows = torch.arange(len(ids), device=ids.device)
    perturbed = ids.clone()
    perturbed[rows, last] = (ids[rows, last] + 1) % vocab
    nll_x = _token_nll(model, perturbed, mask, labels, lengths, policy)
    label_idx = torch.arange(1, ids.shape[1], device=ids.device)[None]
    keep = (labels[:, 1:] != IGNORE_INDEX) & (label_idx < last[:, None])
    totals.n_dep += int(keep.sum())
    if keep.any():
        totals.sensitivity = max(totals.sensitivity, (nll_x - nll_p)[keep].abs().max().item())


@torch.no_grad()
def probe(
    model,
    pairs: list[TokenizedPair],
    policy: str,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 8,
    dependence_tol: float = _DEFAULT_DEPENDENCE_TOL,
) -> dict[str, Any]:
    """Response-token loss under ``causal`` vs ``policy`` on the same weights and pairs, and the
    evidence behind ``leaks`` (docs/masks.md); ``future_dependent`` None: no row has two response
    tokens."""
    masks.check_policy(policy)
    _check_pairs(pairs)
    device = next(model.parameters()).device
    vocab = model.get_output_embeddings().weight.shape[0]
    was_training = model.training
    model.eval()
    totals = _Totals()
    n_batches = (len(pairs) + batch_size - 1) // batch_size
    t0 = time.time()
    try:
        for k in range(n_batches):
            chunk = pairs[k * batch_size : (k + 1) * batch_size]
            _probe_batch(model, _batch(chunk, device), policy, vocab, totals)
            if n_batches > 1:
                print(
                    f"[probe {policy}] batch {k + 1}/{n_batches} ({time.time() - t0:.1f}s)",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        model.train(was_training)
    return _verdict(totals, policy, threshold, dependence_tol, len(pairs))


def _verdict(
    totals: _Totals, policy: str, threshold: float, dependence_tol: float, n_examples: int
) -> dict[str, Any]:
    """The probe's result from its totals: leaks by the loss ratio or by future dependence."""
    loss_causal = totals.causal / totals.n_tokens
    loss_policy = totals.policy / totals.n_tokens
    ratio = loss_policy / loss_causal if loss_causal > 0 else float("nan")
    leaks_by_loss = bool(ratio < threshold)
    future_dependent = bool(totals.sensitivity > dependence_tol) if totals.n_dep else None
    return {
        "policy": policy,
        "loss_causal": loss_causal,
        "loss_policy": loss_policy,
        "ratio": ratio,
        "threshold": threshold,
        "leaks": leaks_by_loss or bool(future_dependent),
        "leaks_by_loss": leaks_by_loss,
        "future_dependent": future_dependent,
        "future_sensitivity": totals.sensitivity,
        "dependence_tol": dependence_tol,
        "n_examples": n_examples,
        "n_response_tokens": totals.n_tokens,
        "n_dependence_positions": totals.n_dep,
    }


#: The probe's config keys (config ``mask.leakage``: the job's ``Job.config``).
PROBE_KEYS = ("n_pairs", "max_seq_len", "batch_size", "dtype", "threshold")


@dataclass(frozen=True)
class ProbeSpec:
    """A probe's config slice (config ``mask.leakage``), one field per key; ``threshold`` None is
    :data:`DEFAULT_THRESHOLD`. ``device`` and ``attn_implementation`` are the command line's, not
    in the recorded slice. The pipeline builds it as ``ProbeSpec(**slice)``."""

    n_pairs: int
    max_seq_len: int
    batch_size: int
    dtype: str
    threshold: float | None = None
    device: str | None = None
    attn_implementation: str = PROBE_ATTN_IMPLEMENTATION

    def config_slice(self) -> dict[str, Any]:
        """The slice it records in its provenance: its config keys."""
        return {k: getattr(self, k) for k in PROBE_KEYS}


def verdict(result: dict[str, Any], record: str | os.PathLike) -> dict[str, Any]:
    """What a finetune takes from a probe: its verdict (the fields its leakage gate acts on) and
    the record that holds the evidence. A finetune reads this, not the record, so a probe rerun to
    other evidence and the same verdict (another ``n_pairs``) leaves the finetune's run-cache key
    as it was: restored, not retrained to the same weights."""
    return {"policy": result["policy"], "leaks": result["leaks"], "record": str(record)}


def run_probe(
    spec: ProbeSpec,
    *,
    model: str,
    data: str | os.PathLike,
    policy: str,
    out: str | os.PathLike,
    revision: str | None = None,
    tokenizer: str | None = None,
) -> dict[str, Any]:
    """Probe ``model`` on ``data``'s first pairs; write the result (JSON) to ``out``."""
    from ablate.core.models import modeling
    from ablate.core.outputs import provenance
    from ablate.core.outputs.phases import Phases
    from ablate.mask import sft_data

    phases = Phases()
    if spec.n_pairs < 1:
        raise LeakageProbeError(f"the probe needs n >= 1 pairs (got {spec.n_pairs})")
    threshold = DEFAULT_THRESHOLD if spec.threshold is None else spec.threshold
    device = spec.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows = sft_data.load_rows(data)[: spec.n_pairs]
    tok = modeling.load_tokenizer(tokenizer or model, revision=None if tokenizer else revision)
    pairs = sft_data.tokenize_rows(tok, rows, spec.max_seq_len)
    print(f"[probe] {len(pairs)} pairs from {data}; loading {model}", file=sys.stderr)
    with phases("load_model"):
        lm = modeling.load_causal_lm(
            model,
            revision=revision,
            dtype=spec.dtype,
            attn_implementation=spec.attn_implementation,
            device=device,
            config_check=families.check_config,  # an unproven family: refused before its weights
        )
    with phases("probe"):
        result = probe(lm, pairs, policy, threshold=threshold, batch_size=spec.batch_size)
    inputs = {"data": data}
    if Path(model).exists():
        inputs["model"] = model
    result |= {"model": str(model), "revision": revision, "data": str(data)}
    result["provenance"] = provenance.collect(
        config_slice=spec.config_slice(), inputs=inputs, started=phases.started
    )
    result["phases"] = phases.as_dict()
    io.write_json(out, result, indent=2)
    print(
        f"[probe] {policy}: loss causal {result['loss_causal']:.4f}, policy "
        f"{result['loss_policy']:.4f}, ratio {result['ratio']:.3f} (threshold {threshold}), "
        f"future-dependent {result['future_dependent']} -> leaks={result['leaks']}; wrote {out}",
        file=sys.stderr,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    """``ablate probe``: :func:`run_probe` from a command line."""
    p = probe_parser()
    args = vars(p.parse_args(argv))
    args["n_pairs"] = args.pop("n")
    # the spec's fields from their options; the rest (model, data, policy, ...) run_probe's
    spec = ProbeSpec(**{f.name: args.pop(f.name) for f in dataclasses.fields(ProbeSpec)})
    try:
        run_probe(spec, **args)
    except LeakageProbeError as exc:
        p.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
