"""The anchor-pruned KV cache: keep only anchors + the open sentence (AnLLM Alg. 1).

Why a hand-written loop: ``generate()`` derives positions and masks from the cache length, which
is wrong once the cache is pruned. Here every call passes

* an explicit 4-D additive mask built by the same rule as training
  (:func:`labkit.anchor.masks.rule_mask`), sized ``cached slots + new tokens``;
* explicit absolute ``position_ids`` (the official code numbered new tokens from the compressed
  cache length, distorting RoPE distances; training used true positions, and so do we);

and after every forward the cache of **every layer** is gathered down to the anchors of closed
sentences plus the tokens of the still-open sentence (the paper's REDUCTION step), per row.

Memory first: a prompt is always encoded in chunks (:func:`prefill_chunk` picks the size unless
``chunk=`` is given), each chunk's mask built only against the kept keys (cached slots + chunk),
so neither the mask nor the cache ever reaches ``L x L`` / ``L`` slots for a long prompt, and the
anchor prefill peaks below a full-cache prefill.

Batches: each row carries its own bookkeeping (absolute position, sentence id and anchor flag
of every cache slot, plus a validity bit), so rows of different lengths and pruning histories
share one rectangular ``DynamicCache``; invalid slots are masked out. Left and right padding are
both accepted (left padding is the usual choice for generation).

Exactness: the logits of :func:`anchor_cache_logits` equal one full forward pass under
:func:`labkit.anchor.masks.anchor_mask` with the same positions, because no pruned key is
visible to any later query under the AnSAN rule (tested per supported family).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Iterable, Literal

import torch

from labkit.anchor.masks import (anchor_mask, bool_to_additive, position_ids_from_attention_mask,
                                 rule_mask)
from labkit.anchor.support import (SUPPORTED_FAMILIES, cache_layers, check_supported,
                                   kv_bytes_per_token, kv_cache_bytes, max_positions, model_device,
                                   model_dtype, new_cache)
from labkit.errors import ParameterError

__all__ = [
    "SUPPORTED_FAMILIES", "AnchorCacheWarning", "AnchorState", "check_supported", "prefill_chunk",
    "anchor_prefill", "anchor_step", "anchor_cache_logits", "masked_forward_logits",
    "kv_cache_bytes", "kv_bytes_per_token",
]

OPEN_POLICIES = ("warn", "cap", "error")
#: Prompt tokens encoded per forward when ``chunk=None``: big enough that matrix products stay
#: efficient, small enough that the chunk's mask and attention scores stay far below ``L x L``.
DEFAULT_CHUNK = {"cpu": 512, "cuda": 2048}


class AnchorCacheWarning(UserWarning):
    """The open sentence grew past ``open_limit``: the cache is not being reduced."""


def prefill_chunk(length: int, device: torch.device | str = "cpu", chunk: int | None = None) -> int:
    """Tokens per prefill forward: ``chunk`` if given, else ``min(length, DEFAULT_CHUNK[device])``.

    Raises :class:`ParameterError` naming ``chunk`` when it is not a positive int.
    """
    if chunk is not None:
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ParameterError(f"chunk must be a positive int or None, got {chunk!r}")
        return chunk
    kind = torch.device(device).type
    return max(1, min(int(length), DEFAULT_CHUNK.get(kind, DEFAULT_CHUNK["cpu"])))


# --------------------------------------------------------------------------- state
@dataclass
class AnchorState:
    """A pruned cache plus per-slot bookkeeping for every row of the batch.

    ``pos``, ``seq``, ``anchor``, ``valid`` are ``(B, T)``: absolute position, sentence id, anchor
    flag and validity of each cache slot. ``next_pos`` / ``next_seq`` (``(B,)``) describe the next
    token of each row. ``seen`` counts the real tokens processed per row (the full-cache size).
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

    @property
    def kept_tokens(self) -> torch.Tensor:
        """Valid cache slots per row (what the anchor cache holds)."""
        return self.valid.sum(dim=1)

    @property
    def cache_slots(self) -> int:
        return int(self.valid.shape[1])

    def kv_bytes(self) -> int:
        return kv_cache_bytes(self.cache)


def _empty_state(model, batch: int, device, open_limit, open_policy) -> AnchorState:
    z = torch.zeros(batch, 0, dtype=torch.long, device=device)
    zb = torch.zeros(batch, 0, dtype=torch.bool, device=device)
    zeros = torch.zeros(batch, dtype=torch.long, device=device)
    return AnchorState(cache=new_cache(model), pos=z, seq=z.clone(), anchor=zb, valid=zb.clone(),
                       next_pos=zeros, next_seq=zeros.clone(), seen=zeros.clone(),
                       open_limit=open_limit, open_policy=open_policy,
                       max_positions=max_positions(model))


def _check_open_policy(open_limit, open_policy) -> None:
    if open_policy not in OPEN_POLICIES:
        raise ParameterError(f"open_policy must be one of {OPEN_POLICIES}, got {open_policy!r}")
    if open_limit is not None and (not isinstance(open_limit, int) or open_limit < 1):
        raise ParameterError(f"open_limit must be a positive int or None, got {open_limit!r}")


# --------------------------------------------------------------------------- core step
def _forward_chunk(model, state: AnchorState, ids: torch.Tensor, valid_new: torch.Tensor,
                   flags_new: torch.Tensor, want: Literal["all", "last", "none"] = "all"):
    """Run ``ids`` (``(B, n)``) through the model on top of ``state`` and prune afterwards.

    Returns logits ``(B, n, V)`` (``want="all"``) or the logits of each row's last valid new token
    (``(B, V)``, rows without one get ``None``-free zeros and keep ``state.last_logits``).
    """
    B, n = ids.shape
    valid_new = valid_new.bool()
    flags_new = flags_new.bool() & valid_new
    steps = valid_new.long().cumsum(dim=1)
    pos_new = state.next_pos[:, None] + (steps - 1).clamp(min=0)
    seq_new = state.next_seq[:, None] + flags_new.long().cumsum(dim=1) - flags_new.long()
    if state.max_positions is not None:
        too_far = (pos_new.masked_fill(~valid_new, 0).max(dim=1).values >= state.max_positions)
        if bool(too_far.any()):
            row = int(too_far.nonzero()[0, 0])
            need = int((state.next_pos[row] + valid_new[row].sum()).item())
            raise ParameterError(f"row {row} needs {need} positions but the model's context is "
                                 f"{state.max_positions} (config.max_position_embeddings): shorten "
                                 "input_ids / max_new_tokens")

    T = state.pos.shape[1]
    k_pos = torch.cat([state.pos, pos_new], dim=1)
    k_seq = torch.cat([state.seq, seq_new], dim=1)
    k_anchor = torch.cat([state.anchor, flags_new], dim=1)
    k_valid = torch.cat([state.valid, valid_new], dim=1)
    self_index = T + torch.arange(n, device=ids.device).expand(B, n)
    allowed = rule_mask(pos_new, seq_new, flags_new, k_pos, k_seq, k_anchor, k_valid,
                        q_valid=valid_new, self_index=self_index)
    mask = bool_to_additive(allowed, model_dtype(model))

    decoder = model.get_decoder()
    out = decoder(input_ids=ids, attention_mask=mask, position_ids=pos_new,
                  past_key_values=state.cache, use_cache=True)
    hidden = out.last_hidden_state
    head = model.get_output_embeddings()

    state.pos, state.seq, state.anchor, state.valid = k_pos, k_seq, k_anchor, k_valid
    n_valid = valid_new.long().sum(dim=1)
    state.next_pos = state.next_pos + n_valid
    state.next_seq = state.next_seq + flags_new.long().sum(dim=1)
    state.seen = state.seen + n_valid

    logits = None
    if want == "all":
        logits = head(hidden).float()
    if n_valid.gt(0).any():
        last_idx = (steps.argmax(dim=1))  # first index reaching the row's count = last valid token
        last_hidden = hidden[torch.arange(B, device=ids.device), last_idx]
        last = head(last_hidden).float()
        if state.last_logits is None:
            state.last_logits = torch.zeros_like(last)
        state.last_logits = torch.where(n_valid.gt(0)[:, None], last, state.last_logits)
    _prune(state)
    return logits


def _prune(state: AnchorState) -> None:
    """Keep anchors and the open sentence of each row; gather every layer's K/V to match."""
    open_sentence = state.valid & (state.seq == state.next_seq[:, None])
    keep = state.valid & (state.anchor | open_sentence)
    if state.open_limit is not None:
        n_open = open_sentence.sum(dim=1)
        over = n_open > state.open_limit
        if bool(over.any()):
            rows = [int(r) for r in over.nonzero()[:, 0]]
            if state.open_policy == "error":
                raise ParameterError(
                    f"rows {rows} have {int(n_open.max())} tokens since their last anchor, more "
                    f"than open_limit={state.open_limit}: the prompt has no anchors (check "
                    "AnchorSpec / insert_anchor_tokens) or raise open_limit")
            if state.open_policy == "warn":
                new = [r for r in rows if r not in state.warned_rows]
                if new:
                    state.warned_rows.update(new)
                    warnings.warn(
                        f"anchor cache: rows {new} have more than open_limit={state.open_limit} "
                        "tokens since their last anchor, so their cache is not being reduced "
                        "(no anchor in the text?); use open_policy='cap' to bound it",
                        AnchorCacheWarning, stacklevel=3)
            else:  # cap: drop the oldest open tokens beyond the limit (deviates from the mask)
                rank_from_end = open_sentence.flip(1).long().cumsum(1).flip(1)
                drop = open_sentence & (rank_from_end > state.open_limit)
                state.capped_tokens += int(drop.sum())
                keep = keep & ~drop
    T = keep.shape[1]
    new_T = int(keep.sum(dim=1).max()) if T else 0
    if new_T == T:
        return
    order = torch.arange(T, device=keep.device).expand_as(keep)
    sort_key = torch.where(keep, order, order + T)
    idx = sort_key.argsort(dim=1)[:, :new_T]
    state.valid = keep.gather(1, idx)
    state.pos = state.pos.gather(1, idx)
    state.seq = state.seq.gather(1, idx)
    state.anchor = state.anchor.gather(1, idx)
    for layer in cache_layers(state.cache):
        for name in ("keys", "values"):
            t = getattr(layer, name)
            B, H, _, D = t.shape
            setattr(layer, name, t.gather(2, idx[:, None, :, None].expand(B, H, new_T, D)))


# --------------------------------------------------------------------------- public API
def _prepare(model, input_ids, anchor_flags, attention_mask):
    check_supported(model)
    if not torch.is_tensor(input_ids) or input_ids.dim() != 2:
        raise ParameterError("input_ids must be a (batch, length) LongTensor, got "
                             f"{tuple(input_ids.shape) if torch.is_tensor(input_ids) else type(input_ids).__name__}")
    if input_ids.shape[1] == 0 or input_ids.shape[0] == 0:
        raise ParameterError(f"input_ids is empty (shape {tuple(input_ids.shape)})")
    device = model_device(model)
    input_ids = input_ids.to(device)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
    if attention_mask.shape != input_ids.shape:
        raise ParameterError(f"attention_mask shape {tuple(attention_mask.shape)} != input_ids "
                             f"shape {tuple(input_ids.shape)}")
    attention_mask = attention_mask.to(device).bool()
    empty = (~attention_mask.any(dim=1)).nonzero()[:, 0].tolist()
    if empty:
        raise ParameterError(f"batch rows {empty} are empty (attention_mask all 0): every row "
                             "needs at least one token")
    if anchor_flags is None or anchor_flags.shape != input_ids.shape:
        raise ParameterError(f"anchor_flags must have input_ids' shape {tuple(input_ids.shape)}, got "
                             f"{None if anchor_flags is None else tuple(anchor_flags.shape)}")
    max_pos = max_positions(model)
    longest = int(attention_mask.sum(dim=1).max())
    if max_pos is not None and longest > max_pos:
        raise ParameterError(f"input_ids has a row of {longest} tokens, longer than the model's "
                             f"context of {max_pos} (config.max_position_embeddings)")
    return input_ids, anchor_flags.to(device).bool() & attention_mask, attention_mask


@torch.no_grad()
def anchor_prefill(model, input_ids: torch.Tensor, anchor_flags: torch.Tensor,
                   attention_mask: torch.Tensor | None = None, *, chunk: int | None = None,
                   open_limit: int | None = 4096, open_policy: str = "warn") -> AnchorState:
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

    Returns:
        :class:`AnchorState` with the pruned cache and ``last_logits`` (``(B, V)``, the next-token
        logits after each row's last real token).
    """
    _check_open_policy(open_limit, open_policy)
    input_ids, flags, attention_mask = _prepare(model, input_ids, anchor_flags, attention_mask)
    B, L = input_ids.shape
    state = _empty_state(model, B, input_ids.device, open_limit, open_policy)
    step = prefill_chunk(L, input_ids.device, chunk)
    for start in range(0, L, step):
        sl = slice(start, start + step)
        _forward_chunk(model, state, input_ids[:, sl], attention_mask[:, sl], flags[:, sl], want="none")
    return state


@torch.no_grad()
def anchor_step(model, state: AnchorState, next_ids: torch.Tensor, anchor_ids: Iterable[int],
                active: torch.Tensor | None = None) -> torch.Tensor:
    """Feed one token per row (``(B,)``), prune if it is an anchor, return next logits ``(B, V)``.

    Rows with ``active`` False (finished) feed nothing; their cache does not grow.
    """
    next_ids = next_ids.reshape(-1, 1).to(state.pos.device)
    B = next_ids.shape[0]
    if active is None:
        active = torch.ones(B, dtype=torch.bool, device=next_ids.device)
    active = active.reshape(B, 1).bool().to(next_ids.device)
    ids_t = torch.as_tensor(sorted(int(i) for i in anchor_ids), dtype=next_ids.dtype, device=next_ids.device)
    flags = torch.isin(next_ids, ids_t) & active
    _forward_chunk(model, state, next_ids, active, flags, want="none")
    return state.last_logits


@torch.no_grad()
def anchor_cache_logits(model, input_ids: torch.Tensor, anchor_flags: torch.Tensor,
                        attention_mask: torch.Tensor | None = None, *, chunk: int = 64,
                        open_limit: int | None = None, open_policy: str = "warn") -> torch.Tensor:
    """Teacher-forced logits ``(B, L, V)`` computed through the pruned cache (for perplexity).

    The text is fed ``chunk`` tokens at a time; after each chunk the cache is pruned to anchors
    plus the open sentence, so later tokens really are predicted from the reduced cache.
    Logits at padded positions are meaningless (finite).
    """
    _check_open_policy(open_limit, open_policy)
    input_ids, flags, attention_mask = _prepare(model, input_ids, anchor_flags, attention_mask)
    if chunk is None:
        raise ParameterError("chunk must be a positive int, got None")
    chunk = prefill_chunk(input_ids.shape[1], input_ids.device, chunk)
    B, L = input_ids.shape
    state = _empty_state(model, B, input_ids.device, open_limit, open_policy)
    parts = []
    for start in range(0, L, chunk):
        sl = slice(start, start + chunk)
        parts.append(_forward_chunk(model, state, input_ids[:, sl], attention_mask[:, sl],
                                    flags[:, sl], want="all"))
    return torch.cat(parts, dim=1)


@torch.no_grad()
def masked_forward_logits(model, input_ids: torch.Tensor, anchor_flags: torch.Tensor,
                          attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One full forward pass under the AnSAN mask with padding-aware absolute positions.

    This is what training sees and what the pruned-cache path must reproduce. It builds the
    dense ``L x L`` mask, so it is the *reference* for tests and short texts, never the
    inference path.
    """
    input_ids, flags, attention_mask = _prepare(model, input_ids, anchor_flags, attention_mask)
    mask = anchor_mask(flags, attention_mask, dtype=model_dtype(model))
    pos = position_ids_from_attention_mask(attention_mask)
    return model(input_ids=input_ids, attention_mask=mask, position_ids=pos, use_cache=False).logits.float()


