"""AnSAN: the anchor-based self-attention mask (AnLLM, Pang et al. 2024, Eq. 4).

The text is cut into sequences (sentences); the last token of each is its *anchor*. For a query
token ``i`` in sequence ``k`` and a key ``j <= i`` (causal always):

* ``i`` is not an anchor: ``j`` is visible if it is in sequence ``k`` or is the anchor of an
  earlier sequence;
* ``i`` is the anchor of ``k``: only tokens of sequence ``k`` are visible (not earlier anchors).

Both cases are one rule: ``visible(i, j) = j <= i and (seq[j] == seq[i] or (anchor[j] and not
anchor[i]))``. :func:`rule_mask` evaluates it for arbitrary query / key metadata, which is what
lets :mod:`labkit.anchor.cache` apply the *same* rule to a pruned KV cache.

Output is an additive float mask ``(B, 1, Lq, Lk)`` (0 = visible, ``finfo(dtype).min`` =
blocked), passed to transformers as-is (``masking_utils`` returns 4-D masks untouched), so
padding is handled here: padded keys are blocked and padded query rows see only themselves. No
row is ever fully blocked, so SDPA never yields NaN. Left and right padding (and holes) are both
supported; the caller must pass explicit ``position_ids`` (:func:`position_ids_from_attention_mask`).
"""

from __future__ import annotations

import torch

from labkit.errors import ParameterError

__all__ = [
    "sequence_ids",
    "anchor_mask",
    "rule_mask",
    "reference_anchor_mask",
    "position_ids_from_attention_mask",
    "bool_to_additive",
]


def _check_flags(anchor_flags: torch.Tensor, attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if not torch.is_tensor(anchor_flags) or anchor_flags.dim() != 2:
        shape = tuple(anchor_flags.shape) if torch.is_tensor(anchor_flags) else type(anchor_flags).__name__
        raise ParameterError(f"anchor_flags must be a (batch, length) tensor, got {shape}")
    flags = anchor_flags.bool()
    if attention_mask is None:
        valid = torch.ones_like(flags)
    else:
        if not torch.is_tensor(attention_mask) or attention_mask.shape != flags.shape:
            got = tuple(attention_mask.shape) if torch.is_tensor(attention_mask) else type(attention_mask).__name__
            raise ParameterError(
                f"attention_mask must be a 2-D tensor shaped like anchor_flags {tuple(flags.shape)}, got {got}"
            )
        valid = attention_mask.bool().to(flags.device)
    return flags & valid, valid


def sequence_ids(anchor_flags: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.LongTensor:
    """Sentence index of every token: the number of anchors strictly before it (``(B, L)``).

    The anchor itself belongs to the sentence it closes. Padded positions (``attention_mask``
    0) are never anchors.
    """
    flags, _ = _check_flags(anchor_flags, attention_mask)
    counts = flags.long().cumsum(dim=1)
    return counts - flags.long()


def position_ids_from_attention_mask(attention_mask: torch.Tensor) -> torch.LongTensor:
    """Absolute positions that skip padding: 0 at each row's first real token (left or right pad)."""
    pos = attention_mask.long().cumsum(dim=1) - 1
    return pos.clamp(min=0)


def rule_mask(
    q_pos: torch.Tensor,
    q_seq: torch.Tensor,
    q_anchor: torch.Tensor,
    k_pos: torch.Tensor,
    k_seq: torch.Tensor,
    k_anchor: torch.Tensor,
    k_valid: torch.Tensor,
    q_valid: torch.Tensor | None = None,
    self_index: torch.Tensor | None = None,
) -> torch.BoolTensor:
    """Boolean ``(B, 1, Lq, Lk)`` visibility (True = attend) for the AnSAN rule.

    Queries and keys are described by absolute position, sentence id and anchor flag, so the
    same function serves a full sequence (keys = queries) and a pruned cache plus new tokens.
    ``k_valid`` blocks padded / empty cache slots. Padded queries (``q_valid`` False) attend to
    the key column ``self_index`` (their own slot) only, so no row is empty.
    """
    qp, qs, qa = q_pos[:, :, None], q_seq[:, :, None], q_anchor[:, :, None].bool()
    kp, ks, ka = k_pos[:, None, :], k_seq[:, None, :], k_anchor[:, None, :].bool()
    allowed = (kp <= qp) & ((ks == qs) | (ka & ~qa)) & k_valid[:, None, :].bool()
    if q_valid is not None:
        if self_index is None:
            raise ParameterError("rule_mask: self_index is required with q_valid")
        own = torch.zeros_like(allowed)
        own.scatter_(2, self_index[:, :, None].long(), True)
        qv = q_valid[:, :, None].bool()
        allowed = torch.where(qv, allowed, own)
    return allowed[:, None]


def bool_to_additive(allowed: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """0 where ``allowed``, ``finfo(dtype).min`` elsewhere (never -inf: eager adds the mask)."""
    if not dtype.is_floating_point:
        raise ParameterError(f"mask dtype must be a floating point dtype, got {dtype}")
    # one fill of a fresh zero tensor: no scalar tensors built per call (a decode step calls
    # this once per token, where two host-built scalars cost as much as the fill itself)
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, torch.finfo(dtype).min)


def anchor_mask(
    anchor_flags: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    as_bool: bool = False,
) -> torch.Tensor:
    """The AnSAN mask for a (padded) batch.

    Args:
        anchor_flags: ``(B, L)`` bool, True at anchor tokens (:func:`labkit.anchor.anchor_flags`).
        attention_mask: optional ``(B, L)`` 0/1 padding mask (left, right or holes).
        dtype: float dtype of the additive mask (use the model's dtype).
        as_bool: return the boolean visibility instead (True = attend; SDPA accepts it too).

    Returns:
        ``(B, 1, L, L)`` additive mask: 0 = visible, ``finfo(dtype).min`` = blocked.
    """
    flags, valid = _check_flags(anchor_flags, attention_mask)
    seq = sequence_ids(flags)
    B, L = flags.shape
    pos = torch.arange(L, device=flags.device).expand(B, L)
    allowed = rule_mask(pos, seq, flags, pos, seq, flags, valid, q_valid=valid, self_index=pos)
    return allowed if as_bool else bool_to_additive(allowed, dtype)


def reference_anchor_mask(anchor_flags, attention_mask=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Brute-force, per-element statement of the rule (slow; for tests only).

    Written independently of :func:`anchor_mask`, following the paper's wording and the
    official code's loop: walk each row, track the current sentence and earlier anchors.
    """
    flags = torch.as_tensor(anchor_flags).bool()
    B, L = flags.shape
    valid = torch.ones_like(flags) if attention_mask is None else torch.as_tensor(attention_mask).bool()
    out = torch.full((B, 1, L, L), torch.finfo(dtype).min, dtype=dtype)
    for b in range(B):
        real = [t for t in range(L) if valid[b, t]]
        # sentence of each real token and whether it is an anchor
        sentence = {}
        current = 0
        for t in real:
            sentence[t] = current
            if flags[b, t]:
                current += 1
        anchor_positions = [t for t in real if flags[b, t]]
        for i in range(L):
            if not valid[b, i]:
                out[b, 0, i, i] = 0
                continue
            is_anchor = bool(flags[b, i])
            for j in real:
                if j > i:
                    break
                same = sentence[j] == sentence[i]
                earlier_anchor = j in anchor_positions and sentence[j] < sentence[i]
                if same or (not is_anchor and earlier_anchor):
                    out[b, 0, i, j] = 0
    return out
