"""Anchor-based inference: keep only anchors + the open sentence in the KV cache (AnLLM Alg. 1).

Why a hand-written loop: ``generate()`` derives positions and masks from the cache length, which
is wrong once the cache is pruned. Here every call passes

* an explicit 4-D additive mask built by the same rule as training
  (:func:`labkit.anchor.masks.rule_mask`), sized ``cached slots + new tokens``;
* explicit absolute ``position_ids`` (the official code numbered new tokens from the compressed
  cache length, distorting RoPE distances; training used true positions, and so do we);

and after every forward the cache of **every layer** is gathered down to the anchors of closed
sentences plus the tokens of the still-open sentence (the paper's REDUCTION step), per row.

Batches: each row carries its own bookkeeping (absolute position, sentence id and anchor flag
of every cache slot, plus a validity bit), so rows of different lengths and pruning histories
share one rectangular ``DynamicCache``; invalid slots are masked out. Left and right padding are
both accepted (left padding is the usual choice for generation).

Exactness: the logits of :func:`anchor_cache_logits` equal one full forward pass under
:func:`labkit.anchor.masks.anchor_mask` with the same positions, because no pruned key is
visible to any later query under the AnSAN rule (tested per supported family).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

import torch

from labkit.anchor.anchors import AnchorSpec, anchor_token_ids, insert_anchor_tokens
from labkit.anchor.masks import bool_to_additive, position_ids_from_attention_mask, rule_mask
from labkit.errors import ModelError, ParameterError

__all__ = [
    "SUPPORTED_FAMILIES", "AnchorCacheWarning", "AnchorState", "GenerationResult",
    "check_supported", "anchor_prefill", "anchor_step", "anchor_generate", "anchor_cache_logits",
    "full_cache_generate", "no_cache_generate", "masked_forward_logits", "kv_cache_bytes",
    "kv_bytes_per_token", "encode_prompts",
]

#: ``config.model_type`` → family name. All three use RoPE on absolute ``position_ids``, accept
#: a 4-D mask as-is and store K/V in ``DynamicCache.layers[l].keys/.values``.
SUPPORTED_FAMILIES = {"llama": "Llama", "qwen2": "Qwen2", "gpt_neox": "GPT-NeoX"}
SUPPORTED_ATTENTION = ("eager", "sdpa")
OPEN_POLICIES = ("warn", "cap", "error")


class AnchorCacheWarning(UserWarning):
    """The open sentence grew past ``open_limit``: the cache is not being reduced."""


# --------------------------------------------------------------------------- model checks
def check_supported(model) -> str:
    """Return the family name of ``model`` or raise :class:`ModelError` naming supported ones."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_FAMILIES:
        names = ", ".join(f"{v} ({k!r})" for k, v in SUPPORTED_FAMILIES.items())
        raise ModelError(f"anchor inference does not support model_type {model_type!r} "
                         f"({type(model).__name__}); supported families: {names}")
    impl = getattr(config, "_attn_implementation", None) or "eager"
    if impl not in SUPPORTED_ATTENTION:
        raise ModelError(f"anchor inference needs attn_implementation in {SUPPORTED_ATTENTION} "
                         f"(arbitrary 4-D masks), the model uses {impl!r}; load it with "
                         "attn_implementation='sdpa'")
    if getattr(config, "use_sliding_window", False) and getattr(config, "sliding_window", None):
        raise ModelError(f"{SUPPORTED_FAMILIES[model_type]} model with use_sliding_window=True: "
                         "sliding-window caches cannot be pruned by anchors; set "
                         "config.use_sliding_window=False")
    return SUPPORTED_FAMILIES[model_type]


def _model_dtype(model) -> torch.dtype:
    return next(model.parameters()).dtype


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


def _max_positions(model) -> int | None:
    value = getattr(model.config, "max_position_embeddings", None)
    return int(value) if value else None


def _new_cache(model):
    from transformers import DynamicCache
    return DynamicCache(config=model.config)


def _cache_layers(cache) -> list:
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise ModelError(f"expected a transformers DynamicCache with .layers, got {type(cache).__name__}")
    return list(layers)


def kv_cache_bytes(cache) -> int:
    """Bytes held by the key and value tensors of every layer of ``cache``."""
    total = 0
    for layer in _cache_layers(cache):
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if torch.is_tensor(t):
                total += t.numel() * t.element_size()
    return total


def kv_bytes_per_token(model) -> int:
    """K+V bytes one token occupies across all layers (for the 'full cache' counterfactual)."""
    c = model.config
    heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    elem = torch.finfo(_model_dtype(model)).bits // 8
    return 2 * c.num_hidden_layers * heads * head_dim * elem


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
    return AnchorState(cache=_new_cache(model), pos=z, seq=z.clone(), anchor=zb, valid=zb.clone(),
                       next_pos=zeros, next_seq=zeros.clone(), seen=zeros.clone(),
                       open_limit=open_limit, open_policy=open_policy,
                       max_positions=_max_positions(model))


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
    mask = bool_to_additive(allowed, _model_dtype(model))

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
    for layer in _cache_layers(state.cache):
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
    device = _model_device(model)
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
    max_pos = _max_positions(model)
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
            result, attention cost ~ L x (chunk + kept) instead of L x L). ``None`` = one pass.
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
    step = L if chunk is None else int(chunk)
    if step < 1:
        raise ParameterError(f"chunk must be a positive int or None, got {chunk!r}")
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
    if not isinstance(chunk, int) or chunk < 1:
        raise ParameterError(f"chunk must be a positive int, got {chunk!r}")
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

    This is what training sees and what the pruned-cache path must reproduce.
    """
    from labkit.anchor.masks import anchor_mask

    input_ids, flags, attention_mask = _prepare(model, input_ids, anchor_flags, attention_mask)
    mask = anchor_mask(flags, attention_mask, dtype=_model_dtype(model))
    pos = position_ids_from_attention_mask(attention_mask)
    return model(input_ids=input_ids, attention_mask=mask, position_ids=pos, use_cache=False).logits.float()


# --------------------------------------------------------------------------- generation
@dataclass
class GenerationResult:
    """Greedy continuation ``sequences`` (``(B, max_new_tokens)``, ``pad_id`` after a row ends)
    and measurements in ``stats`` (tokens kept, KV bytes, seconds)."""

    sequences: torch.Tensor
    stats: dict

    def __iter__(self):  # allows ``ids, stats = anchor_generate(...)``
        return iter((self.sequences, self.stats))


def encode_prompts(tokenizer, prompts: str | Sequence[str], spec: AnchorSpec | None = None, *,
                   insert_anchors: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize prompts left-padded (``(ids, attention_mask)``); AC anchors inserted on request."""
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise ParameterError("prompts is an empty list")
    if insert_anchors:
        if spec is None:
            raise ParameterError("insert_anchors=True needs an AnchorSpec (spec)")
        prompts = [insert_anchor_tokens(p, spec) for p in prompts]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ModelError("the tokenizer has neither a pad nor an eos token to pad batches with")
    rows = [tokenizer.encode(p) for p in prompts]
    empty = [i for i, r in enumerate(rows) if len(r) == 0]
    if empty:
        raise ParameterError(f"prompts {empty} tokenize to nothing: every prompt needs a token")
    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), int(pad_id), dtype=torch.long)
    att = torch.zeros((len(rows), L), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, L - len(r):] = torch.tensor(r, dtype=torch.long)
        att[i, L - len(r):] = 1
    return ids, att


def _resolve_ids(tokenizer, spec, anchor_ids) -> set[int]:
    if anchor_ids is not None:
        return {int(i) for i in anchor_ids}
    if tokenizer is None or spec is None:
        raise ParameterError("pass a tokenizer and an AnchorSpec, or anchor_ids")
    return anchor_token_ids(tokenizer, spec)


def _inputs(tokenizer, input_ids, attention_mask, spec, insert_anchors):
    if isinstance(input_ids, (str, list, tuple)) and (isinstance(input_ids, str)
                                                      or all(isinstance(p, str) for p in input_ids)):
        if tokenizer is None:
            raise ParameterError("text prompts need a tokenizer")
        return encode_prompts(tokenizer, input_ids, spec, insert_anchors=insert_anchors)
    if not torch.is_tensor(input_ids):
        raise ParameterError(f"input_ids must be a LongTensor or text prompts, got {type(input_ids).__name__}")
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
        attention_mask = None if attention_mask is None else attention_mask.reshape(1, -1)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    return input_ids, attention_mask


def _check_budget(model, attention_mask, max_new_tokens) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ParameterError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    max_pos = _max_positions(model)
    longest = int(attention_mask.sum(dim=1).max())
    if max_pos is not None and longest + max_new_tokens > max_pos:
        raise ParameterError(f"prompt of {longest} tokens + max_new_tokens={max_new_tokens} exceeds "
                             f"the model's context of {max_pos} (config.max_position_embeddings)")


def _require_left_padding(attention_mask, who: str) -> None:
    if not bool(attention_mask[:, -1].bool().all()):
        rows = (~attention_mask[:, -1].bool()).nonzero()[:, 0].tolist()
        raise ParameterError(f"{who} needs left padding (rows {rows} end with padding in "
                             "attention_mask); use encode_prompts() or tokenizer.padding_side='left'")


def _eos(tokenizer, eos_token_id):
    if eos_token_id is not None:
        return eos_token_id
    return getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None


def _pad(tokenizer, eos):
    pad = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
    return pad if pad is not None else (eos if eos is not None else 0)


def _greedy(first_logits, step_fn, max_new_tokens, eos, pad_id):
    """Shared greedy loop: identical token handling for anchor and baseline paths."""
    B = first_logits.shape[0]
    device = first_logits.device
    out = torch.full((B, max_new_tokens), int(pad_id), dtype=torch.long, device=device)
    active = torch.ones(B, dtype=torch.bool, device=device)
    logits = first_logits
    steps = 0
    for t in range(max_new_tokens):
        tok = logits.argmax(dim=-1)
        out[:, t] = torch.where(active, tok, torch.full_like(tok, int(pad_id)))
        steps = t + 1
        if eos is not None:
            active = active & (tok != eos)
        if t == max_new_tokens - 1 or not bool(active.any()):
            break
        logits = step_fn(tok, active)
    return out[:, :steps] if steps < max_new_tokens else out


@torch.no_grad()
def anchor_generate(model, tokenizer, input_ids, spec: AnchorSpec | None = None,
                    max_new_tokens: int = 32, attention_mask: torch.Tensor | None = None, *,
                    anchor_ids: Iterable[int] | None = None, eos_token_id: int | None = None,
                    chunk: int | None = None, open_limit: int | None = 4096,
                    open_policy: str = "warn", insert_anchors: bool = False) -> GenerationResult:
    """Greedy decoding with the anchor-pruned cache.

    Prefill under the AnSAN mask, prune to anchors + open sentence, then decode one token per
    step with explicit absolute positions, pruning again whenever a row generates an anchor.

    Args:
        input_ids: ``(B, L)`` LongTensor (with ``attention_mask``) or text prompt(s), which are
            left-padded by ``tokenizer`` (with ``insert_anchors=True`` AC anchors are inserted).
        spec / anchor_ids: which tokens are anchors (``anchor_ids`` overrides the tokenizer).
        chunk, open_limit, open_policy: see :func:`anchor_prefill`.

    Returns:
        :class:`GenerationResult` (unpacks as ``ids, stats``). ``stats`` has per-row
        ``prompt_tokens``, ``kept_after_prefill``, ``kept_final``, ``total_tokens``, the
        reduction ``1 - kept/total`` after the prompt, actual ``kv_bytes`` of the pruned cache vs
        ``full_kv_bytes`` of a cache holding every token, and ``prefill_s`` / ``decode_s``.
    """
    ids_set = _resolve_ids(tokenizer, spec, anchor_ids)
    input_ids, attention_mask = _inputs(tokenizer, input_ids, attention_mask, spec, insert_anchors)
    _check_budget(model, attention_mask, max_new_tokens)
    from labkit.anchor.anchors import anchor_flags as _flags

    device = _model_device(model)
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    flags = _flags(input_ids, ids_set)
    eos = _eos(tokenizer, eos_token_id)
    t0 = time.perf_counter()
    state = anchor_prefill(model, input_ids, flags, attention_mask, chunk=chunk,
                           open_limit=open_limit, open_policy=open_policy)
    t1 = time.perf_counter()
    kept_prefill = state.kept_tokens.clone()
    bytes_prefill = state.kv_bytes()
    seen_prefill = state.seen.clone()
    no_anchor_rows = (~flags.any(dim=1)).nonzero()[:, 0].tolist()
    peak = [int(state.kept_tokens.max())]

    def step(tok, active):
        logits = anchor_step(model, state, tok, ids_set, active)
        peak.append(int(state.kept_tokens.max()))
        return logits

    seqs = _greedy(state.last_logits, step, max_new_tokens, eos, _pad(tokenizer, eos))
    t2 = time.perf_counter()
    per_tok = kv_bytes_per_token(model)
    stats = {
        "batch": int(input_ids.shape[0]),
        "prompt_tokens": seen_prefill.tolist(),
        "kept_after_prefill": kept_prefill.tolist(),
        "kv_reduction_after_prefill": float(1 - kept_prefill.sum() / seen_prefill.sum()),
        "kv_bytes_after_prefill": int(bytes_prefill),
        "full_kv_bytes_after_prefill": int(per_tok * int(seen_prefill.sum())),
        "total_tokens": state.seen.tolist(),
        "kept_final": state.kept_tokens.tolist(),
        "peak_cache_slots": max(peak),
        "kv_bytes": int(state.kv_bytes()),
        "full_kv_bytes": int(per_tok * int(state.seen.sum())),
        "kv_reduction": float(1 - state.kept_tokens.sum() / state.seen.sum()),
        "rows_without_anchor_in_prompt": no_anchor_rows,
        "capped_tokens": state.capped_tokens,
        "generated_tokens": int(seqs.shape[1]),
        "prefill_s": t1 - t0,
        "decode_s": t2 - t1,
    }
    return GenerationResult(seqs, stats)


@torch.no_grad()
def full_cache_generate(model, tokenizer, input_ids, max_new_tokens: int = 32,
                        attention_mask: torch.Tensor | None = None, *,
                        eos_token_id: int | None = None) -> GenerationResult:
    """Baseline: greedy decoding with an ordinary full ``DynamicCache`` and causal attention."""
    check_supported(model)
    input_ids, attention_mask = _inputs(tokenizer, input_ids, attention_mask, None, False)
    _check_budget(model, attention_mask, max_new_tokens)
    device = _model_device(model)
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device).long()
    if not bool(attention_mask.any(dim=1).all()):
        raise ParameterError(f"batch rows {(~attention_mask.bool().any(1)).nonzero()[:, 0].tolist()} are empty")
    _require_left_padding(attention_mask, "full_cache_generate")
    eos = _eos(tokenizer, eos_token_id)
    cache = _new_cache(model)
    pos = position_ids_from_attention_mask(attention_mask)
    next_pos = attention_mask.sum(dim=1)
    t0 = time.perf_counter()
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos,
                past_key_values=cache, use_cache=True, logits_to_keep=1)
    t1 = time.perf_counter()
    state = {"mask": attention_mask, "next_pos": next_pos}
    bytes_prefill = kv_cache_bytes(cache)

    def step(tok, active):
        state["mask"] = torch.cat([state["mask"], active.long()[:, None]], dim=1)
        o = model(input_ids=tok[:, None], attention_mask=state["mask"],
                  position_ids=state["next_pos"][:, None], past_key_values=cache, use_cache=True)
        state["next_pos"] = state["next_pos"] + active.long()
        return o.logits[:, -1].float()

    seqs = _greedy(out.logits[:, -1].float(), step, max_new_tokens, eos, _pad(tokenizer, eos))
    t2 = time.perf_counter()
    return GenerationResult(seqs, {"kv_bytes_after_prefill": int(bytes_prefill),
                                   "kv_bytes": int(kv_cache_bytes(cache)),
                                   "generated_tokens": int(seqs.shape[1]),
                                   "prefill_s": t1 - t0, "decode_s": t2 - t1})


@torch.no_grad()
def no_cache_generate(model, tokenizer, input_ids, max_new_tokens: int = 32,
                      attention_mask: torch.Tensor | None = None, *, spec: AnchorSpec | None = None,
                      anchor_ids: Iterable[int] | None = None,
                      eos_token_id: int | None = None) -> GenerationResult:
    """Baseline: recompute the whole sequence at every step (no KV cache).

    With ``spec`` or ``anchor_ids`` each step is a full pass under the AnSAN mask, which makes
    this the reference that :func:`anchor_generate` must match token for token; otherwise
    ordinary causal attention.
    """
    from labkit.anchor.anchors import anchor_flags as _flags
    from labkit.anchor.masks import anchor_mask

    check_supported(model)
    use_anchor = spec is not None or anchor_ids is not None
    ids_set = _resolve_ids(tokenizer, spec, anchor_ids) if use_anchor else set()
    input_ids, attention_mask = _inputs(tokenizer, input_ids, attention_mask, spec, False)
    _check_budget(model, attention_mask, max_new_tokens)
    device = _model_device(model)
    seq = {"ids": input_ids.to(device), "mask": attention_mask.to(device).long()}
    if not bool(seq["mask"].any(dim=1).all()):
        raise ParameterError(f"batch rows {(~seq['mask'].bool().any(1)).nonzero()[:, 0].tolist()} are empty")
    _require_left_padding(seq["mask"], "no_cache_generate")
    eos = _eos(tokenizer, eos_token_id)
    dtype = _model_dtype(model)

    def forward():
        pos = position_ids_from_attention_mask(seq["mask"])
        if use_anchor:
            mask = anchor_mask(_flags(seq["ids"], ids_set), seq["mask"], dtype=dtype)
        else:
            mask = seq["mask"]
        logits = model(input_ids=seq["ids"], attention_mask=mask, position_ids=pos,
                       use_cache=False, logits_to_keep=1).logits
        return logits[:, -1].float()

    def step(tok, active):
        seq["ids"] = torch.cat([seq["ids"], tok[:, None]], dim=1)
        seq["mask"] = torch.cat([seq["mask"], active.long()[:, None]], dim=1)
        return forward()

    t0 = time.perf_counter()
    first = forward()
    t1 = time.perf_counter()
    seqs = _greedy(first, step, max_new_tokens, eos, _pad(tokenizer, eos))
    t2 = time.perf_counter()
    return GenerationResult(seqs, {"generated_tokens": int(seqs.shape[1]),
                                   "prefill_s": t1 - t0, "decode_s": t2 - t1})
