"""The state of an anchor-pruned KV cache and its pruning (AnLLM's REDUCTION step).

Split from :mod:`labkit.anchor.cache` (which runs the forwards): :class:`AnchorState` holds the
cache plus per-slot bookkeeping of every row; :func:`_mark_pruned` invalidates, on the device,
the slots no later query may see, and :func:`_compact` gathers every layer's K/V down to the
valid slots (one host read), applying the open-sentence limit policy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from labkit.anchor.support import cache_layers, kv_cache_bytes, max_positions, new_cache
from labkit.errors import ParameterError

OPEN_POLICIES = ("warn", "cap", "error")


class AnchorCacheWarning(UserWarning):
    """The open sentence grew past ``open_limit``: the cache is not being reduced."""


@dataclass
class AnchorState:
    """A pruned cache plus per-slot bookkeeping for every row of the batch.

    ``pos``, ``seq``, ``anchor``, ``valid`` are ``(B, T)``: absolute position, sentence id, anchor
    flag and validity of each cache slot. ``next_pos`` / ``next_seq`` (``(B,)``) describe the next
    token of each row. ``seen`` counts the real tokens processed per row (the full-cache size).

    Pruning has two halves. The *logical* half runs after every forward on the device: slots that
    no later query may see are marked invalid (so the mask blocks them), with no host sync. The
    *physical* half (:func:`_compact`) gathers every layer's K/V down to the valid slots; it needs
    one host read (the new slot count), so it runs after every prefill chunk and, while decoding,
    once ``compact_every`` slots were appended since the last compaction. ``compact_every=1``
    (the default of :func:`anchor_prefill`) compacts after every step; :func:`anchor_generate`
    uses a larger value so a decode step makes no data-dependent host sync.
    """

    cache: object
    pos: torch.Tensor
    seq: torch.Tensor
    anchor: torch.Tensor
    valid: torch.Tensor
    next_pos: torch.Tensor
    next_seq: torch.Tensor
    seen: torch.Tensor
    last_logits: torch.Tensor | None = None
    open_limit: int | None = None
    open_policy: str = "warn"
    max_positions: int | None = None
    warned_rows: set = field(default_factory=set)
    capped_tokens: int = 0
    compact_every: int = 1
    #: host-side upper bound of ``next_pos.max()``: the context check needs no sync below it
    pos_bound: int = 0
    #: cache slots right after the last compaction
    compacted_slots: int = 0
    #: tokens dropped by ``open_policy="cap"`` since the last compaction (device counter)
    pending_capped: torch.Tensor | None = None

    @property
    def kept_tokens(self) -> torch.Tensor:
        """Valid cache slots per row (what the anchor cache holds once compacted)."""
        return self.valid.sum(dim=1)

    @property
    def cache_slots(self) -> int:
        """Physical slots per row of the cache (valid ones plus any not yet compacted away)."""
        return int(self.valid.shape[1])

    def kv_bytes(self) -> int:
        return kv_cache_bytes(self.cache)


def _empty_state(model, batch: int, device, open_limit, open_policy) -> AnchorState:
    z = torch.zeros(batch, 0, dtype=torch.long, device=device)
    zb = torch.zeros(batch, 0, dtype=torch.bool, device=device)
    zeros = torch.zeros(batch, dtype=torch.long, device=device)
    return AnchorState(
        cache=new_cache(model),
        pos=z,
        seq=z.clone(),
        anchor=zb,
        valid=zb.clone(),
        next_pos=zeros,
        next_seq=zeros.clone(),
        seen=zeros.clone(),
        open_limit=open_limit,
        open_policy=open_policy,
        max_positions=max_positions(model),
        pending_capped=torch.zeros((), dtype=torch.long, device=device),
    )


def _check_open_policy(open_limit, open_policy) -> None:
    if open_policy not in OPEN_POLICIES:
        raise ParameterError(f"open_policy must be one of {OPEN_POLICIES}, got {open_policy!r}")
    if open_limit is not None and (not isinstance(open_limit, int) or open_limit < 1):
        raise ParameterError(f"open_limit must be a positive int or None, got {open_limit!r}")


def _check_compact_every(compact_every) -> int:
    if isinstance(compact_every, bool) or not isinstance(compact_every, int) or compact_every < 1:
        raise ParameterError(f"compact_every must be a positive int, got {compact_every!r}")
    return compact_every


def _mark_pruned(state: AnchorState) -> None:
    """Logical pruning, on the device: only anchors and the open sentence of each row stay valid."""
    open_sentence = state.valid & (state.seq == state.next_seq[:, None])
    keep = state.valid & (state.anchor | open_sentence)
    if state.open_limit is not None and state.open_policy == "cap":
        # drop the oldest open tokens beyond the limit (a sliding window: departs from the mask)
        rank_from_end = open_sentence.flip(1).long().cumsum(1).flip(1)
        drop = open_sentence & (rank_from_end > state.open_limit)
        state.pending_capped = state.pending_capped + drop.sum()
        keep = keep & ~drop
    state.valid = keep


def _compact(state: AnchorState) -> None:
    """Physical pruning: gather every layer's K/V (and the bookkeeping) down to the valid slots.

    One host read per call (new slot count, position bound, open-sentence length, capped count,
    stacked into one tensor); the open-limit policy is applied here.
    """
    T = state.valid.shape[1]
    if T == 0:
        return
    open_sentence = state.valid & (state.seq == state.next_seq[:, None])
    n_open = open_sentence.sum(dim=1)
    new_T, bound, longest_open, capped = torch.stack(
        [state.valid.sum(dim=1).max(), state.next_pos.max(), n_open.max(), state.pending_capped.reshape(())]
    ).tolist()
    state.pos_bound = int(bound)
    state.capped_tokens += int(capped)
    state.pending_capped = torch.zeros_like(state.pending_capped)
    if state.open_limit is not None and state.open_policy != "cap" and longest_open > state.open_limit:
        rows = [int(r) for r in (n_open > state.open_limit).nonzero()[:, 0]]
        if state.open_policy == "error":
            raise ParameterError(
                f"rows {rows} have {int(longest_open)} tokens since their last anchor, more "
                f"than open_limit={state.open_limit}: the prompt has no anchors (check "
                "AnchorSpec / insert_anchor_tokens) or raise open_limit"
            )
        new = [r for r in rows if r not in state.warned_rows]
        if new:
            state.warned_rows.update(new)
            warnings.warn(
                f"anchor cache: rows {new} have more than open_limit={state.open_limit} "
                "tokens since their last anchor, so their cache is not being reduced "
                "(no anchor in the text?); use open_policy='cap' to bound it",
                AnchorCacheWarning,
                stacklevel=4,
            )
    new_T = int(new_T)
    state.compacted_slots = new_T
    if new_T == T:
        return
    # valid slots first, in their order: one argsort, then one gather per tensor (batched rows)
    order = torch.arange(T, device=state.valid.device).expand_as(state.valid)
    idx = torch.where(state.valid, order, order + T).argsort(dim=1)[:, :new_T]
    state.valid = state.valid.gather(1, idx)
    state.pos = state.pos.gather(1, idx)
    state.seq = state.seq.gather(1, idx)
    state.anchor = state.anchor.gather(1, idx)
    for layer in cache_layers(state.cache):
        for name in ("keys", "values"):
            t = getattr(layer, name)
            B, H, _, D = t.shape
            setattr(layer, name, t.gather(2, idx[:, None, :, None].expand(B, H, new_T, D)))


def compact(state: AnchorState) -> AnchorState:
    """Drop the slots that logical pruning invalidated (call before reading ``kv_bytes``)."""
    _compact(state)
    return state
