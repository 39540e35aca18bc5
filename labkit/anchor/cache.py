"""The anchor-pruned KV cache: keep only anchors + the open sentence (AnLLM Alg. 1).

Why a hand-written loop: ``generate()`` derives positions and masks from the cache length, which
is wrong once the cache is pruned. Here every call passes

* an explicit 4-D additive mask built by the same rule as training
  (:func:`labkit.anchor.masks.rule_mask`), sized ``cached slots + new tokens``;
* explicit absolute ``position_ids`` (the official code numbered new tokens from the compressed
  cache length, distorting RoPE distances; training used true positions, and so do we);

and after every forward the cache of **every layer** is gathered down to the anchors of closed
sentences plus the tokens of the still-open sentence (the paper's REDUCTION step), per row
(the state and its pruning live in :mod:`labkit.anchor.cache_state`).

Memory first: a prompt is always encoded in chunks (:func:`prefill_chunk` picks the size unless
``chunk=`` is given), each chunk's mask built only against the kept keys (cached slots + chunk),
so neither the mask nor the cache ever reaches ``L x L`` / ``L`` slots for a long prompt, and the
anchor prefill peaks below a full-cache prefill.

Lean decode: a decode step makes no data-dependent host sync. Pruning is split in two: after
every forward the slots no later query can see are marked invalid on the device (the mask
blocks them; exact), and the K/V of every layer is gathered down to the valid slots (one host
read for the new size) after each prefill chunk and every ``compact_every`` decode steps.
The context-length check uses a host-side bound, so it reads the device only near the limit.

Batches: each row carries its own bookkeeping (absolute position, sentence id and anchor flag
of every cache slot, plus a validity bit), so rows of different lengths and pruning histories
share one rectangular ``DynamicCache``; invalid slots are masked out. Left and right padding are
both accepted (left padding is the usual choice for generation).

Exactness: the logits of :func:`labkit.anchor.teacher_forced.anchor_cache_logits` (the same
steps, teacher-forced) equal one full forward pass under
:func:`labkit.anchor.masks.anchor_mask` with the same positions, because no pruned key is
visible to any later query under the AnSAN rule (tested per supported family).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch

from labkit.anchor.cache_state import (
    OPEN_POLICIES,
    AnchorCacheWarning,
    AnchorState,
    _check_compact_every,
    _check_open_policy,
    _compact,
    _empty_state,
    _mark_pruned,
    compact,
)
from labkit.anchor.masks import (
    bool_to_additive,
    rule_mask,
)
from labkit.anchor.support import (
    SUPPORTED_FAMILIES,
    check_supported,
    kv_bytes_per_token,
    kv_cache_bytes,
    max_positions,
    model_device,
    model_dtype,
)
from labkit.device import resolve_device
from labkit.errors import ParameterError

__all__ = [
    "SUPPORTED_FAMILIES",
    "AnchorCacheWarning",
    "AnchorState",
    "check_supported",
    "prefill_chunk",
    "anchor_prefill",
    "anchor_step",
    "anchor_extend",
    "anchor_id_tensor",
    "compact",
    "kv_cache_bytes",
    "kv_bytes_per_token",
    "OPEN_POLICIES",
]

#: Prompt tokens encoded per forward when ``chunk=None``: big enough that matrix products stay
#: efficient, small enough that the chunk's mask and attention scores stay far below ``L x L``.
DEFAULT_CHUNK = {"cpu": 512, "cuda": 2048}
#: Prompts longer than this are prefilled in at least two chunks (see :func:`prefill_chunk`).
MIN_SPLIT = 256


def prefill_chunk(length: int, device: torch.device | str | None = None, chunk: int | None = None) -> int:
    """Tokens per prefill forward: ``chunk`` if given, else
    ``min(length, max(MIN_SPLIT, ceil(length / 2)), DEFAULT_CHUNK[device])``.

    Raises :class:`ParameterError` naming ``chunk`` when it is not a positive int.
    """
    if chunk is not None:
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ParameterError(f"chunk must be a positive int or None, got {chunk!r}")
        return chunk

    kind = torch.device(device if device is not None else resolve_device()).type
    # at least two chunks once the prompt exceeds MIN_SPLIT: a single chunk would hold the whole
    # prompt's K/V plus a dense mask and so peak above a full-cache prefill
    split = max(MIN_SPLIT, -(-int(length) // 2))
    return max(1, min(int(length), split, DEFAULT_CHUNK.get(kind, DEFAULT_CHUNK["cpu"])))


# --------------------------------------------------------------------------- core step
def _check_positions(state: AnchorState, pos_new: torch.Tensor, valid_new: torch.Tensor) -> None:
    """Raise if a new token's position reaches the model's context.

    ``state.pos_bound`` (a host int, exact after each compaction, +n per forward) bounds every
    position from above, so the device is read only when the bound reaches the context.
    """
    state.pos_bound += int(pos_new.shape[1])
    if state.max_positions is None or state.pos_bound <= state.max_positions:
        return
    too_far = pos_new.masked_fill(~valid_new, 0).max(dim=1).values >= state.max_positions
    if bool(too_far.any()):
        row = int(too_far.nonzero()[0, 0])
        need = int((state.next_pos[row] + valid_new[row].sum()).item())
        raise ParameterError(
            f"row {row} needs {need} positions but the model's context is "
            f"{state.max_positions} (config.max_position_embeddings): shorten "
            "input_ids / max_new_tokens"
        )


def _step_mask(state: AnchorState, q_seq: torch.Tensor, q_anchor: torch.Tensor, q_valid: torch.Tensor) -> torch.Tensor:
    """The AnSAN visibility ``(B, 1, 1, T + 1)`` of one new token per row over the cached slots
    plus itself: :func:`labkit.anchor.masks.rule_mask` for a single query, in four element-wise
    ops. Every cached slot precedes the query (no position test); a non-anchor sees every valid
    slot of its own sentence and every anchor, an anchor only its own sentence; an inactive row
    (``q_valid`` False) sees only its own slot, so no row is empty (SDPA would give NaN).

    Why a special case: decoding runs this once per token, and at short contexts the general
    rule's broadcasts, ``scatter`` and ``where`` cost as much as the model's attention.
    """
    seen = state.valid & ((state.seq == q_seq) | (state.anchor & ~q_anchor)) & q_valid
    return torch.cat([seen, torch.ones_like(q_valid)], dim=1)[:, None, None, :]


def _forward_chunk(
    model,
    state: AnchorState,
    ids: torch.Tensor,
    valid_new: torch.Tensor,
    flags_new: torch.Tensor,
    want: Literal["all", "last", "none"] = "all",
    compact: bool = True,
):
    """Run ``ids`` (``(B, n)``) through the model on top of ``state`` and prune afterwards.

    Returns logits ``(B, n, V)`` (``want="all"``) or ``None``; ``state.last_logits`` always gets
    the logits after each row's last valid new token (rows without one keep theirs). Makes no
    host sync unless a compaction is due (``compact`` or ``compact_every`` slots appended) or the
    context bound is reached.
    """
    B, n = ids.shape
    valid_new = valid_new.bool()
    flags_new = flags_new.bool() & valid_new
    if n == 1:  # a decode step: no cumulative sums over a length-1 axis
        steps = valid_new.long()
        pos_new, seq_new = state.next_pos[:, None], state.next_seq[:, None]
    else:
        steps = valid_new.long().cumsum(dim=1)
        pos_new = state.next_pos[:, None] + (steps - 1).clamp(min=0)
        seq_new = state.next_seq[:, None] + flags_new.long().cumsum(dim=1) - flags_new.long()
    _check_positions(state, pos_new, valid_new)

    T = state.pos.shape[1]
    if n == 1:
        allowed = _step_mask(state, seq_new, flags_new, valid_new)
    else:
        k_pos = torch.cat([state.pos, pos_new], dim=1)
        k_seq = torch.cat([state.seq, seq_new], dim=1)
        k_anchor = torch.cat([state.anchor, flags_new], dim=1)
        k_valid = torch.cat([state.valid, valid_new], dim=1)
        self_index = T + torch.arange(n, device=ids.device).expand(B, n)
        allowed = rule_mask(
            pos_new, seq_new, flags_new, k_pos, k_seq, k_anchor, k_valid, q_valid=valid_new, self_index=self_index
        )
    mask = bool_to_additive(allowed, model_dtype(model))

    decoder = model.get_decoder()
    out = decoder(input_ids=ids, attention_mask=mask, position_ids=pos_new, past_key_values=state.cache, use_cache=True)
    hidden = out.last_hidden_state
    head = model.get_output_embeddings()

    if n == 1:
        state.pos = torch.cat([state.pos, pos_new], dim=1)
        state.seq = torch.cat([state.seq, seq_new], dim=1)
        state.anchor = torch.cat([state.anchor, flags_new], dim=1)
        state.valid = torch.cat([state.valid, valid_new], dim=1)
    else:
        state.pos, state.seq, state.anchor, state.valid = k_pos, k_seq, k_anchor, k_valid
    n_valid = steps[:, -1]
    state.next_pos = state.next_pos + n_valid
    state.next_seq = state.next_seq + flags_new.long().sum(dim=1)
    state.seen = state.seen + n_valid

    logits = None
    if n == 1 and want != "all":
        last = head(hidden[:, -1]).float()
    elif want == "all":
        rows = torch.arange(B, device=ids.device)
        last_idx = steps.argmax(dim=1)  # first index reaching the row's count = last valid token
        logits = head(hidden).float()
        last = logits[rows, last_idx]
    else:
        rows = torch.arange(B, device=ids.device)
        last_idx = steps.argmax(dim=1)
        last = head(hidden[rows, last_idx]).float()
    previous = state.last_logits if state.last_logits is not None else torch.zeros_like(last)
    state.last_logits = torch.where(n_valid.gt(0)[:, None], last, previous)
    _mark_pruned(state)
    if compact or state.cache_slots - state.compacted_slots >= state.compact_every:
        _compact(state)
    return logits


# --------------------------------------------------------------------------- public API
def _prepare(model, input_ids, anchor_flags, attention_mask):
    check_supported(model)
    if not torch.is_tensor(input_ids) or input_ids.dim() != 2:
        raise ParameterError(
            "input_ids must be a (batch, length) LongTensor, got "
            f"{tuple(input_ids.shape) if torch.is_tensor(input_ids) else type(input_ids).__name__}"
        )
    if input_ids.shape[1] == 0 or input_ids.shape[0] == 0:
        raise ParameterError(f"input_ids is empty (shape {tuple(input_ids.shape)})")
    device = model_device(model)
    input_ids = input_ids.to(device)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
    if attention_mask.shape != input_ids.shape:
        raise ParameterError(
            f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}"
        )
    attention_mask = attention_mask.to(device).bool()
    empty = (~attention_mask.any(dim=1)).nonzero()[:, 0].tolist()
    if empty:
        raise ParameterError(f"batch rows {empty} are empty (attention_mask all 0): every row needs at least one token")
    if anchor_flags is None or anchor_flags.shape != input_ids.shape:
        raise ParameterError(
            f"anchor_flags must have input_ids' shape {tuple(input_ids.shape)}, got "
            f"{None if anchor_flags is None else tuple(anchor_flags.shape)}"
        )
    max_pos = max_positions(model)
    longest = int(attention_mask.sum(dim=1).max())
    if max_pos is not None and longest > max_pos:
        raise ParameterError(
            f"input_ids has a row of {longest} tokens, longer than the model's "
            f"context of {max_pos} (config.max_position_embeddings)"
        )
    return input_ids, anchor_flags.to(device).bool() & attention_mask, attention_mask


@torch.no_grad()
def anchor_prefill(
    model,
    input_ids: torch.Tensor,
    anchor_flags: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    chunk: int | None = None,
    open_limit: int | None = 4096,
    open_policy: str = "warn",
    compact_every: int = 1,
) -> AnchorState:
    """Encode a (padded) prompt batch under the AnSAN mask and prune the cache.

    Args:
        model: a supported causal LM (:data:`SUPPORTED_FAMILIES`), eager or SDPA attention.
        input_ids: ``(B, L)`` token ids; left or right padded.
        anchor_flags: ``(B, L)`` bool, True at anchors (:func:`labkit.anchor.anchor_flags`).
        attention_mask: ``(B, L)`` 0/1 padding mask (default: no padding).
        chunk: encode the prompt ``chunk`` tokens at a time, pruning after each chunk (same
            result; masks and attention scores ~ chunk x (kept + chunk) instead of L x L).
            ``None`` = :func:`prefill_chunk` picks it (512 on CPU, 2048 on CUDA, at most L).
        open_limit: tokens allowed since the last anchor before ``open_policy`` applies (a
            prompt without anchors would otherwise keep a full cache unnoticed). ``None`` = off.
        open_policy: ``"warn"`` (AnchorCacheWarning once per row), ``"cap"`` (drop the oldest
            open tokens, a sliding window that departs from the exact mask) or ``"error"``.
        compact_every: for the later :func:`anchor_step` calls, physically drop pruned slots
            once this many slots were appended since the last compaction (1 = every step, one
            host sync per step; larger = no sync in most steps, at most that many stale slots
            per row, which the mask blocks). The prompt is compacted after every chunk.

    Returns:
        :class:`AnchorState` with the pruned cache and ``last_logits`` (``(B, V)``, the next-token
        logits after each row's last real token).
    """
    _check_open_policy(open_limit, open_policy)
    _check_compact_every(compact_every)
    input_ids, flags, attention_mask = _prepare(model, input_ids, anchor_flags, attention_mask)
    B, L = input_ids.shape
    state = _empty_state(model, B, input_ids.device, open_limit, open_policy)
    state.compact_every = compact_every
    step = prefill_chunk(L, input_ids.device, chunk)
    for start in range(0, L, step):
        sl = slice(start, start + step)
        _forward_chunk(model, state, input_ids[:, sl], attention_mask[:, sl], flags[:, sl], want="none")
    return state


@torch.no_grad()
def anchor_step(
    model,
    state: AnchorState,
    next_ids: torch.Tensor,
    anchor_ids: Iterable[int] | torch.Tensor,
    active: torch.Tensor | None = None,
) -> torch.Tensor:
    """Feed one token per row (``(B,)``), prune if it is an anchor, return next logits ``(B, V)``.

    Rows with ``active`` False (finished) feed nothing (their new slot is invalid and compacted
    away). Pruning is logical at once and physical per ``state.compact_every``. ``anchor_ids``
    may be a tensor on the model's device (:func:`anchor_id_tensor`): a decode loop then makes
    no host sync and no host-to-device copy per step.
    """
    next_ids = next_ids.reshape(-1, 1).to(state.pos.device)
    B = next_ids.shape[0]
    if active is None:
        active = torch.ones(B, 1, dtype=torch.bool, device=next_ids.device)
    active = active.reshape(B, 1).bool().to(next_ids.device)
    if not torch.is_tensor(anchor_ids):
        anchor_ids = anchor_id_tensor(anchor_ids, next_ids.device)
    flags = torch.isin(next_ids, anchor_ids) & active
    _forward_chunk(model, state, next_ids, active, flags, want="none", compact=False)
    return state.last_logits


@torch.no_grad()
def anchor_extend(
    model, state: AnchorState, input_ids: torch.Tensor, anchor_ids: Iterable[int] | torch.Tensor
) -> torch.Tensor:
    """Feed a block of tokens (``(B, n)``, no padding) on top of ``state`` in one forward and
    return their logits ``(B, n, V)``; the cache is pruned afterwards.

    Teacher-forcing a whole block at once gives the same logits as feeding it token by token
    (:func:`anchor_step`): within the block the AnSAN rule is applied by the mask, so no token
    sees what pruning would have removed. The recall probe scores its queries this way.
    """
    input_ids = input_ids.to(state.pos.device)
    if input_ids.dim() != 2 or input_ids.shape[0] != state.pos.shape[0]:
        raise ParameterError(f"input_ids must be (batch={state.pos.shape[0]}, n), got {tuple(input_ids.shape)}")
    if not torch.is_tensor(anchor_ids):
        anchor_ids = anchor_id_tensor(anchor_ids, input_ids.device)
    flags = torch.isin(input_ids, anchor_ids)
    valid = torch.ones_like(input_ids, dtype=torch.bool)
    return _forward_chunk(model, state, input_ids, valid, flags, want="all")


def anchor_id_tensor(anchor_ids: Iterable[int], device: torch.device | str | None = None) -> torch.Tensor:
    """The anchor token ids as a sorted LongTensor on ``device`` (default: the device rule's;
    built once per generation)."""

    device = device if device is not None else resolve_device()
    return torch.as_tensor(sorted({int(i) for i in anchor_ids}), dtype=torch.long, device=device)
