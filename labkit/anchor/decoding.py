"""Greedy decoding on top of the anchor-pruned cache, and the two baselines it is measured against.

:func:`anchor_generate` (pruned cache, :mod:`labkit.anchor.cache`), :func:`full_cache_generate`
(ordinary ``DynamicCache``, causal) and :func:`no_cache_generate` (recompute every step; under the
AnSAN mask it is the token-for-token reference for the anchor path) share one greedy loop and one
input handling, so their timings and outputs differ only by the cache. Clock readings go through
:class:`labkit.timing.Stopwatch`, which synchronises CUDA before reading the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from labkit.anchor.anchors import AnchorSpec, anchor_flags, anchor_token_ids, insert_anchor_tokens
from labkit.anchor.cache import anchor_id_tensor, anchor_prefill, anchor_step, compact
from labkit.anchor.masks import anchor_mask, position_ids_from_attention_mask
from labkit.anchor.support import (
    check_supported,
    kv_bytes_per_token,
    kv_cache_bytes,
    max_positions,
    model_device,
    model_dtype,
    new_cache,
)
from labkit.errors import ModelError, ParameterError
from labkit.timing import Stopwatch

__all__ = ["GenerationResult", "encode_prompts", "anchor_generate", "full_cache_generate", "no_cache_generate"]


@dataclass
class GenerationResult:
    """Greedy continuation ``sequences`` (``(B, max_new_tokens)``, ``pad_id`` after a row ends)
    and measurements in ``stats`` (tokens kept, KV bytes, seconds)."""

    sequences: torch.Tensor
    stats: dict

    def __iter__(self):  # allows ``ids, stats = anchor_generate(...)``
        return iter((self.sequences, self.stats))


def encode_prompts(
    tokenizer, prompts: str | Sequence[str], spec: AnchorSpec | None = None, *, insert_anchors: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
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
        ids[i, L - len(r) :] = torch.tensor(r, dtype=torch.long)
        att[i, L - len(r) :] = 1
    return ids, att


def _resolve_ids(tokenizer, spec, anchor_ids) -> set[int]:
    if anchor_ids is not None:
        return {int(i) for i in anchor_ids}
    if tokenizer is None or spec is None:
        raise ParameterError("pass a tokenizer and an AnchorSpec, or anchor_ids")
    return anchor_token_ids(tokenizer, spec)


def _inputs(tokenizer, input_ids, attention_mask, spec, insert_anchors):
    if isinstance(input_ids, (str, list, tuple)) and (
        isinstance(input_ids, str) or all(isinstance(p, str) for p in input_ids)
    ):
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
    max_pos = max_positions(model)
    longest = int(attention_mask.sum(dim=1).max())
    if max_pos is not None and longest + max_new_tokens > max_pos:
        raise ParameterError(
            f"prompt of {longest} tokens + max_new_tokens={max_new_tokens} exceeds "
            f"the model's context of {max_pos} (config.max_position_embeddings)"
        )


def _require_left_padding(attention_mask, who: str) -> None:
    if not bool(attention_mask[:, -1].bool().all()):
        rows = (~attention_mask[:, -1].bool()).nonzero()[:, 0].tolist()
        raise ParameterError(
            f"{who} needs left padding (rows {rows} end with padding in "
            "attention_mask); use encode_prompts() or tokenizer.padding_side='left'"
        )


def _eos(tokenizer, eos_token_id):
    if eos_token_id is not None:
        return eos_token_id
    return getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None


def _pad(tokenizer, eos):
    pad = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
    return pad if pad is not None else (eos if eos is not None else 0)


def _greedy(first_logits, step_fn, max_new_tokens, eos, pad_id):
    """Shared greedy loop: identical token handling for anchor and baseline paths.

    The host reads the device once per step only when an ``eos`` can end rows early (to stop
    when every row has finished); without one the loop queues work and never waits for it.
    """
    if eos is not None and int(eos) < 0:  # a negative id (benchmarks' "no EOS") never matches
        eos = None
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
        if t == max_new_tokens - 1 or (eos is not None and not bool(active.any())):
            break
        logits = step_fn(tok, active)
    return out[:, :steps] if steps < max_new_tokens else out


@torch.no_grad()
def anchor_generate(
    model,
    tokenizer,
    input_ids,
    spec: AnchorSpec | None = None,
    max_new_tokens: int = 32,
    attention_mask: torch.Tensor | None = None,
    *,
    anchor_ids: Iterable[int] | None = None,
    eos_token_id: int | None = None,
    chunk: int | None = None,
    open_limit: int | None = 4096,
    open_policy: str = "warn",
    insert_anchors: bool = False,
    compact_every: int = 32,
) -> GenerationResult:
    """Greedy decoding with the anchor-pruned cache.

    Prefill under the AnSAN mask, prune to anchors + open sentence, then decode one token per
    step with explicit absolute positions, pruning again whenever a row generates an anchor.
    A decode step makes no data-dependent host sync: pruning marks slots invalid on the device
    and the cache is gathered down every ``compact_every`` steps (one host read each).

    Args:
        input_ids: ``(B, L)`` LongTensor (with ``attention_mask``) or text prompt(s), which are
            left-padded by ``tokenizer`` (with ``insert_anchors=True`` AC anchors are inserted).
        spec / anchor_ids: which tokens are anchors (``anchor_ids`` overrides the tokenizer).
        chunk, open_limit, open_policy, compact_every: see :func:`anchor_prefill`.

    Returns:
        :class:`GenerationResult` (unpacks as ``ids, stats``). ``stats`` has per-row
        ``prompt_tokens``, ``kept_after_prefill``, ``kept_final``, ``total_tokens``, the
        reduction ``1 - kept/total`` after the prompt, actual ``kv_bytes`` of the pruned cache vs
        ``full_kv_bytes`` of a cache holding every token, and ``prefill_s`` / ``decode_s``.
    """
    ids_set = _resolve_ids(tokenizer, spec, anchor_ids)
    input_ids, attention_mask = _inputs(tokenizer, input_ids, attention_mask, spec, insert_anchors)
    _check_budget(model, attention_mask, max_new_tokens)
    device = model_device(model)
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    flags = anchor_flags(input_ids, ids_set)
    eos = _eos(tokenizer, eos_token_id)
    clock = Stopwatch(device).start()
    state = anchor_prefill(
        model,
        input_ids,
        flags,
        attention_mask,
        chunk=chunk,
        open_limit=open_limit,
        open_policy=open_policy,
        compact_every=compact_every,
    )
    prefill_s = clock.lap()
    kept_prefill = state.kept_tokens.clone()
    bytes_prefill = state.kv_bytes()
    seen_prefill = state.seen.clone()
    no_anchor_rows = (~flags.any(dim=1)).nonzero()[:, 0].tolist()
    ids_t = anchor_id_tensor(ids_set, device)  # once, not per step
    peak = {"slots": state.kept_tokens.max()}  # running max on the device: no read per step

    def step(tok, active):
        logits = anchor_step(model, state, tok, ids_t, active)
        peak["slots"] = torch.maximum(peak["slots"], state.kept_tokens.max())
        return logits

    seqs = _greedy(state.last_logits, step, max_new_tokens, eos, _pad(tokenizer, eos))
    compact(state)  # drop stale slots so kv_bytes is the pruned cache's
    decode_s = clock.lap()
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
        "peak_cache_slots": int(peak["slots"]),
        "kv_bytes": int(state.kv_bytes()),
        "full_kv_bytes": int(per_tok * int(state.seen.sum())),
        "kv_reduction": float(1 - state.kept_tokens.sum() / state.seen.sum()),
        "rows_without_anchor_in_prompt": no_anchor_rows,
        "capped_tokens": state.capped_tokens,
        "generated_tokens": int(seqs.shape[1]),
        "prefill_s": prefill_s,
        "decode_s": decode_s,
    }
    return GenerationResult(seqs, stats)


@torch.no_grad()
def full_cache_generate(
    model,
    tokenizer,
    input_ids,
    max_new_tokens: int = 32,
    attention_mask: torch.Tensor | None = None,
    *,
    eos_token_id: int | None = None,
) -> GenerationResult:
    """Baseline: greedy decoding with an ordinary full ``DynamicCache`` and causal attention."""
    check_supported(model)
    input_ids, attention_mask = _inputs(tokenizer, input_ids, attention_mask, None, False)
    _check_budget(model, attention_mask, max_new_tokens)
    device = model_device(model)
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device).long()
    if not bool(attention_mask.any(dim=1).all()):
        raise ParameterError(f"batch rows {(~attention_mask.bool().any(1)).nonzero()[:, 0].tolist()} are empty")
    _require_left_padding(attention_mask, "full_cache_generate")
    eos = _eos(tokenizer, eos_token_id)
    cache = new_cache(model)
    pos = position_ids_from_attention_mask(attention_mask)
    next_pos = attention_mask.sum(dim=1)
    clock = Stopwatch(device).start()
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=pos,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    prefill_s = clock.lap()
    state = {"mask": attention_mask, "next_pos": next_pos}
    bytes_prefill = kv_cache_bytes(cache)

    def step(tok, active):
        state["mask"] = torch.cat([state["mask"], active.long()[:, None]], dim=1)
        o = model(
            input_ids=tok[:, None],
            attention_mask=state["mask"],
            position_ids=state["next_pos"][:, None],
            past_key_values=cache,
            use_cache=True,
        )
        state["next_pos"] = state["next_pos"] + active.long()
        return o.logits[:, -1].float()

    seqs = _greedy(out.logits[:, -1].float(), step, max_new_tokens, eos, _pad(tokenizer, eos))
    decode_s = clock.lap()
    return GenerationResult(
        seqs,
        {
            "kv_bytes_after_prefill": int(bytes_prefill),
            "kv_bytes": int(kv_cache_bytes(cache)),
            "generated_tokens": int(seqs.shape[1]),
            "prefill_s": prefill_s,
            "decode_s": decode_s,
        },
    )


@torch.no_grad()
def no_cache_generate(
    model,
    tokenizer,
    input_ids,
    max_new_tokens: int = 32,
    attention_mask: torch.Tensor | None = None,
    *,
    spec: AnchorSpec | None = None,
    anchor_ids: Iterable[int] | None = None,
    eos_token_id: int | None = None,
) -> GenerationResult:
    """Baseline: recompute the whole sequence at every step (no KV cache).

    With ``spec`` or ``anchor_ids`` each step is a full pass under the AnSAN mask, which makes
    this the reference that :func:`anchor_generate` must match token for token; otherwise
    ordinary causal attention.
    """
    check_supported(model)
    use_anchor = spec is not None or anchor_ids is not None
    ids_set = _resolve_ids(tokenizer, spec, anchor_ids) if use_anchor else set()
    input_ids, attention_mask = _inputs(tokenizer, input_ids, attention_mask, spec, False)
    _check_budget(model, attention_mask, max_new_tokens)
    device = model_device(model)
    seq = {"ids": input_ids.to(device), "mask": attention_mask.to(device).long()}
    if not bool(seq["mask"].any(dim=1).all()):
        raise ParameterError(f"batch rows {(~seq['mask'].bool().any(1)).nonzero()[:, 0].tolist()} are empty")
    _require_left_padding(seq["mask"], "no_cache_generate")
    eos = _eos(tokenizer, eos_token_id)
    dtype = model_dtype(model)

    def forward():
        pos = position_ids_from_attention_mask(seq["mask"])
        if use_anchor:
            mask = anchor_mask(anchor_flags(seq["ids"], ids_set), seq["mask"], dtype=dtype)
        else:
            mask = seq["mask"]
        logits = model(
            input_ids=seq["ids"], attention_mask=mask, position_ids=pos, use_cache=False, logits_to_keep=1
        ).logits
        return logits[:, -1].float()

    def step(tok, active):
        seq["ids"] = torch.cat([seq["ids"], tok[:, None]], dim=1)
        seq["mask"] = torch.cat([seq["mask"], active.long()[:, None]], dim=1)
        return forward()

    clock = Stopwatch(device).start()
    first = forward()
    prefill_s = clock.lap()
    seqs = _greedy(first, step, max_new_tokens, eos, _pad(tokenizer, eos))
    decode_s = clock.lap()
    return GenerationResult(
        seqs, {"generated_tokens": int(seqs.shape[1]), "prefill_s": prefill_s, "decode_s": decode_s}
    )
