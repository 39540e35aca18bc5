"""The HF data collator of continued training with the dense AnSAN mask, and the padding that
the flex-attention collator (:mod:`labkit.anchor.flex`) shares with it.

Why a module of its own: both :mod:`labkit.anchor.training` and :mod:`labkit.anchor.flex`
need it, and training also picks the flex path; keeping the collator here keeps the two
modules from importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from labkit.anchor.anchors import anchor_flags
from labkit.anchor.masks import anchor_mask, position_ids_from_attention_mask
from labkit.errors import ParameterError

__all__ = ["IGNORE_INDEX", "AnchorCollator", "pad_batch"]

IGNORE_INDEX = -100


def pad_batch(features: Sequence[dict], pad_id: int, who: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad a batch of ``{"input_ids", "labels"?}`` features: ``(input_ids, labels, att)``,
    labels -100 and attention 0 at padding; one ParameterError naming the bad feature.
    Shared by the dense and the flex-attention collators."""
    if not features:
        raise ParameterError(f"{who} got an empty batch")
    rows, labels = [], []
    for i, feat in enumerate(features):
        if "input_ids" not in feat:
            raise ParameterError(f"feature {i} has no 'input_ids' field")
        ids = torch.as_tensor(feat["input_ids"], dtype=torch.long).reshape(-1)
        if ids.numel() == 0:
            raise ParameterError(f"feature {i} of the batch is empty (input_ids has no token)")
        lab = torch.as_tensor(feat.get("labels", ids), dtype=torch.long).reshape(-1)
        if lab.shape != ids.shape:
            raise ParameterError(f"feature {i}: labels has {lab.numel()} entries, input_ids {ids.numel()}")
        rows.append(ids)
        labels.append(lab)
    B, L = len(rows), max(r.numel() for r in rows)
    input_ids = torch.full((B, L), int(pad_id), dtype=torch.long)
    label_t = torch.full((B, L), IGNORE_INDEX, dtype=torch.long)
    att = torch.zeros((B, L), dtype=torch.long)
    for b, (ids, lab) in enumerate(zip(rows, labels)):
        n = ids.numel()
        input_ids[b, :n], label_t[b, :n], att[b, :n] = ids, lab, 1
    return input_ids, label_t, att


class AnchorCollator:
    """HF data collator: right-pads a batch and adds the AnSAN mask and absolute positions.

    Each feature is a dict with ``input_ids`` (list or 1-D tensor, any length >= 1) and
    optionally ``labels`` (same length; default = ``input_ids``). Returns ``input_ids``,
    ``attention_mask`` (additive float ``(B, 1, L, L)``, pads blocked, pad rows see only
    themselves, so no NaN in SDPA), ``position_ids`` (0 at each row's first token) and ``labels``
    (``-100`` at padding).

    Args:
        anchor_ids: the anchor token ids (:func:`labkit.anchor.anchor_token_ids`).
        pad_id: id used for padding (its value never matters: padded keys are masked).
        dtype: dtype of the additive mask; use the model's parameter dtype.
    """

    def __init__(self, anchor_ids: Iterable[int], pad_id: int, dtype: torch.dtype = torch.float32):
        self.anchor_ids = sorted({int(i) for i in anchor_ids})
        if not self.anchor_ids:
            raise ParameterError("AnchorCollator needs at least one anchor id (anchor_ids is empty)")
        if pad_id is None:
            raise ParameterError("AnchorCollator: pad_id is None; set tokenizer.pad_token")
        self.pad_id = int(pad_id)
        self.dtype = dtype

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        input_ids, label_t, att = pad_batch(features, self.pad_id, "AnchorCollator")
        flags = anchor_flags(input_ids, self.anchor_ids) & att.bool()
        return {
            "input_ids": input_ids,
            "attention_mask": anchor_mask(flags, att, dtype=self.dtype),
            "position_ids": position_ids_from_attention_mask(att),
            "labels": label_t,
        }
