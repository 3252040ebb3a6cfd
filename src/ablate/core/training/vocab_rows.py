"""A run with ``loss_vocab: corpus`` trains only the rows of a tied embedding its data uses.

The other rows get gradient 0 (an update of exactly 0 by an elementwise optimizer without weight
decay), yet a step over the whole table costs about half a CPU pretraining step
(bench/results/first_run_cpu.md). The weights equal the whole table's bit for bit on the CPU
(tests/mask/test_training.py): the clip's norm adds the same squares in the same vector lanes
because a row of d floats (d a multiple of 16) fills whole vectors; on a GPU the clip factor can
differ in its last bit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from ablate.core.execution import parallel
from ablate.core.training.params import TrainingConfigError, TrainParams, master_weights_enabled

#: the optimizers (``optim``) whose update of a row with gradient 0 and no state is exactly 0
_ELEMENTWISE = ("adamw_torch", "adamw_torch_fused", "sgd")


class _RowEmbedding(nn.Embedding):
    """The embedding over the rows ``ids`` (sorted global token ids): ids in, rows looked up."""

    def __init__(self, weight: nn.Parameter, ids: torch.Tensor, padding_idx: int | None):
        super().__init__(weight.shape[0], weight.shape[1], padding_idx=padding_idx, _weight=weight)
        self.weight = weight  # the head's Parameter itself (``_weight`` is wrapped in a new one)
        self.register_buffer("ids", ids, persistent=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        local = torch.searchsorted(self.ids, input_ids).clamp_(max=len(self.ids) - 1)
        if not bool((self.ids[local] == input_ids).all()):
            bad = sorted(set(input_ids[self.ids[local] != input_ids].tolist()))[:5]
            raise TrainingConfigError(f"loss_vocab: input token id(s) {bad} are outside the data's")
        return super().forward(local)


class RowHead(nn.Linear):
    """The head over the rows ``ids``: its logits are those rows' (``row_ids`` names them)."""

    def __init__(self, weight: nn.Parameter, ids: torch.Tensor):
        super().__init__(weight.shape[1], weight.shape[0], bias=False)
        self.weight = weight
        self.register_buffer("row_ids", ids, persistent=False)


class Rows:
    """A model whose tied table is cut to ``ids``; :meth:`whole` puts it back, trained, while
    the final weights are saved, and cuts it again after."""

    def __init__(self, model, ids: torch.Tensor):
        self.model = model
        self.embedding = model.get_input_embeddings()
        self.head = model.get_output_embeddings()
        table = self.embedding.weight
        self.ids = ids.to(table.device)
        weight = nn.Parameter(table.detach()[self.ids].clone(), requires_grad=table.requires_grad)
        pad = self.embedding.padding_idx
        local_pad = None if pad is None else int(torch.searchsorted(self.ids, torch.tensor(pad)))
        self.cut = (_RowEmbedding(weight, self.ids, local_pad), RowHead(weight, self.ids))
        self.weight = weight
        self._install(*self.cut)

    def _install(self, embedding: nn.Module, head: nn.Module) -> None:
        self.model.set_input_embeddings(embedding)
        self.model.set_output_embeddings(head)

    @contextlib.contextmanager
    def whole(self) -> Iterator[None]:
        """The model's own table, whole, the trained rows written into it (the final save); then
        the cut again, as a checkpoint saved after and its rerun hold it."""
        with torch.no_grad():
            self.embedding.to(self.weight.device)  # the model may have moved since the cut
            self.embedding.weight[self.ids] = self.weight.to(self.embedding.weight.dtype)
        self._install(self.embedding, self.head)
        try:
            yield
        finally:
            self._install(*self.cut)


def why_not(model, params: TrainParams) -> str | None:
    """Why this run's table cannot be cut (None: it can)."""
    if params.loss_vocab != "corpus":
        return "the loss scores every row"
    if parallel.world_size() > 1:
        return "data-parallel"
    if params.optim not in _ELEMENTWISE or params.weight_decay != 0:
        return f"optim {params.optim} with weight_decay {params.weight_decay} moves every row"
    if master_weights_enabled(params):
        return "fp32 master weights (the optimizer's copies are the weights saved)"
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    if not isinstance(head, nn.Linear) or head.bias is not None or head.weight is not emb.weight:
        return "the embedding and the head are not one tied table"
    if emb.weight.shape[1] % 16:  # a row of whole vectors: the clip's norm adds the same squares
        return f"rows of {emb.weight.shape[1]} floats, not whole vectors of 16"
    return None


def cut(model, ids: Iterable[int], extra: Iterable[int | None] = ()) -> Rows:
    """``model``'s tied table cut to the rows ``ids`` and ``extra`` (e.g. the collator's padding
    id)."""
    keep = set(int(i) for i in ids) | {int(i) for i in extra if i is not None}
    pad = model.get_input_embeddings().padding_idx
    if pad is not None:
        keep.add(int(pad))
    return Rows(model, torch.tensor(sorted(keep), dtype=torch.long))
