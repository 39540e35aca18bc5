"""The AnSAN rule as a flex-attention ``mask_mod`` / ``BlockMask`` (no dense ``L x L`` mask).

Why: the dense additive mask (:func:`labkit.anchor.masks.anchor_mask`) costs ``B x L x L``
elements per batch, which rules out AnLLM's 4k-8k training contexts on one GPU. PyTorch's
flex-attention takes the rule as a predicate over ``(batch, head, q_idx, kv_idx)`` instead and
stores only which ``block x block`` tiles are empty, full or partial (``BlockMask``); the fused
kernel then skips empty tiles. The predicate here reads three ``(B, L)`` tensors (sentence ids,
anchor flags, padding) and states exactly the rule of :func:`labkit.anchor.masks.rule_mask`:

``visible(q, k) = valid[k] and k <= q and (seq[k] == seq[q] or (anchor[k] and not anchor[q]))``,
and a padded query sees only itself (so no row is empty, as in the dense mask).

The dense mask stays the reference (tests compare every ``(q, k)`` pair and attention outputs).
transformers 5.x passes a ``BlockMask`` given as ``attention_mask`` straight to its
``flex_attention`` implementation (models loaded with ``attn_implementation="flex_attention"``),
so continued training needs only a collator that emits one (:class:`FlexAnchorCollator`).

Limits: flex-attention needs ``torch.compile`` to be fast and memory-lean; without it
(``torch.nn.attention.flex_attention.flex_attention`` called eagerly) PyTorch materialises the
scores, so on CPU the flex path is a correctness path unless inductor can compile it (a C++
compiler; the first compile of each shape takes minutes on 2 cores).
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch

from labkit.anchor.anchors import anchor_flags as flags_of
from labkit.anchor.masks import _check_flags, position_ids_from_attention_mask, sequence_ids
from labkit.errors import ParameterError

__all__ = ["flex_available", "flex_training_available", "anchor_mask_mod", "anchor_block_mask", "dense_from_mask_mod",
           "FlexAnchorCollator"]


def flex_available() -> tuple[bool, str]:
    """Whether this torch build has flex-attention (``(True, "")`` or ``(False, reason)``)."""
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention  # noqa: F401
    except ImportError as err:  # torch < 2.5
        return False, f"torch {torch.__version__} has no torch.nn.attention.flex_attention ({err})"
    return True, ""


def flex_training_available(device: torch.device | str) -> tuple[bool, str]:
    """Whether flex-attention can *train* (run backward) on ``device``'s type.

    PyTorch (up to 2.13 at least) runs flex-attention's backward only on CUDA (and XPU); on CPU
    it raises ``NotImplementedError``, so continued training on CPU keeps the dense mask.
    """
    ok, why = flex_available()
    if not ok:
        return False, why
    kind = torch.device(device).type
    if kind in ("cpu", "mps"):
        return False, (f"torch {torch.__version__} has no flex-attention backward on {kind} "
                       "(forward only); train with the dense mask there")
    return True, ""


def _metadata(anchor_flags: torch.Tensor, attention_mask: torch.Tensor | None):
    flags, valid = _check_flags(anchor_flags, attention_mask)
    return sequence_ids(flags), flags, valid


def anchor_mask_mod(anchor_flags: torch.Tensor, attention_mask: torch.Tensor | None = None
                    ) -> Callable:
    """A flex-attention ``mask_mod(b, h, q_idx, kv_idx) -> bool`` for a (padded) batch.

    Args:
        anchor_flags: ``(B, L)`` bool, True at anchors (padding is never an anchor).
        attention_mask: optional ``(B, L)`` 0/1 padding mask (left, right or holes).

    The returned function closes over ``(B, L)`` tensors on ``anchor_flags``' device; build the
    ``BlockMask`` on that device.
    """
    seq, anchor, valid = _metadata(anchor_flags, attention_mask)

    def mask_mod(b, h, q_idx, kv_idx):
        q_valid = valid[b, q_idx]
        rule = ((kv_idx <= q_idx) & valid[b, kv_idx]
                & ((seq[b, kv_idx] == seq[b, q_idx]) | (anchor[b, kv_idx] & ~anchor[b, q_idx])))
        return (q_valid & rule) | (~q_valid & (kv_idx == q_idx))

    return mask_mod


def anchor_block_mask(anchor_flags: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                      block_size: int = 128, device: torch.device | str | None = None,
                      compile: bool = False):
    """The AnSAN rule as a ``BlockMask`` of shape ``(B, 1, L, L)`` (heads broadcast).

    ``compile=True`` builds it with ``torch.compile`` (``_compile=True``), which avoids
    materialising ``L x L`` booleans while building; the eager build evaluates the predicate on
    the whole grid once (``B x L x L`` bools, freed afterwards).
    """
    ok, why = flex_available()
    if not ok:
        raise ParameterError(f"flex-attention masks need torch >= 2.5: {why}")
    from torch.nn.attention.flex_attention import create_block_mask

    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ParameterError(f"block_size must be a positive int, got {block_size!r}")
    device = torch.device(device) if device is not None else anchor_flags.device
    anchor_flags = anchor_flags.to(device)
    attention_mask = None if attention_mask is None else attention_mask.to(device)
    B, L = anchor_flags.shape
    mod = anchor_mask_mod(anchor_flags, attention_mask)
    return create_block_mask(mod, B, None, L, L, device=device, BLOCK_SIZE=block_size,
                             _compile=compile)


def dense_from_mask_mod(mask_mod: Callable, batch: int, length: int,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """Evaluate ``mask_mod`` on every ``(q, k)`` pair: boolean ``(B, 1, L, L)`` (for tests)."""
    from torch.nn.attention.flex_attention import create_mask

    from labkit.device import resolve_device

    device = device if device is not None else resolve_device()
    return create_mask(mask_mod, batch, 1, length, length, device=device)


class FlexAnchorCollator:
    """HF data collator like :class:`labkit.anchor.training.AnchorCollator`, with a ``BlockMask``.

    Right-pads a batch; returns ``input_ids``, ``position_ids`` (0 at each row's first token),
    ``labels`` (-100 at padding) and ``attention_mask`` = :func:`anchor_block_mask` built on
    ``device`` (the model's: Trainer moves tensors, not BlockMasks). Use it with a model loaded
    with ``attn_implementation="flex_attention"``.
    """

    def __init__(self, anchor_ids: Iterable[int], pad_id: int, device: torch.device | str | None = None,
                 block_size: int = 128, compile_mask: bool = False):
        self.anchor_ids = sorted({int(i) for i in anchor_ids})
        if not self.anchor_ids:
            raise ParameterError("FlexAnchorCollator needs at least one anchor id (anchor_ids is empty)")
        if pad_id is None:
            raise ParameterError("FlexAnchorCollator: pad_id is None; set tokenizer.pad_token")
        from labkit.device import resolve_device

        self.pad_id = int(pad_id)
        self.device = torch.device(device if device is not None else resolve_device())
        self.block_size, self.compile_mask = block_size, compile_mask

    def __call__(self, features: Sequence[dict]) -> dict:
        from labkit.anchor.training import pad_batch

        input_ids, label_t, att = pad_batch(features, self.pad_id, "FlexAnchorCollator")
        flags = flags_of(input_ids, self.anchor_ids) & att.bool()
        return {"input_ids": input_ids,
                "attention_mask": anchor_block_mask(flags, att, block_size=self.block_size,
                                                    device=self.device, compile=self.compile_mask),
                "position_ids": position_ids_from_attention_mask(att),
                "labels": label_t}
