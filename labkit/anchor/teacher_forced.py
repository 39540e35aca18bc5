"""Teacher-forced logits under the anchor rule: through the pruned cache, and the dense reference.

:func:`anchor_cache_logits` feeds a text chunk by chunk through :mod:`labkit.anchor.cache`
(pruning after each chunk), so later tokens really are predicted from the reduced cache: the
perplexity and few-shot scores of anchor inference. :func:`masked_forward_logits` is one dense
forward under the AnSAN mask, what training sees; the two agree exactly (tested per family).
"""

from __future__ import annotations

import torch

from labkit.anchor.cache import _empty_state, _forward_chunk, _prepare, prefill_chunk
from labkit.anchor.cache_state import _check_open_policy
from labkit.anchor.masks import anchor_mask, position_ids_from_attention_mask
from labkit.anchor.support import model_dtype
from labkit.errors import ParameterError


@torch.no_grad()
def anchor_cache_logits(
    model,
    input_ids: torch.Tensor,
    anchor_flags: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    chunk: int = 64,
    open_limit: int | None = None,
    open_policy: str = "warn",
) -> torch.Tensor:
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
        parts.append(_forward_chunk(model, state, input_ids[:, sl], attention_mask[:, sl], flags[:, sl], want="all"))
    return torch.cat(parts, dim=1)


@torch.no_grad()
def masked_forward_logits(
    model, input_ids: torch.Tensor, anchor_flags: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """One full forward pass under the AnSAN mask with padding-aware absolute positions.

    This is what training sees and what the pruned-cache path must reproduce. It builds the
    dense ``L x L`` mask, so it is the *reference* for tests and short texts, never the
    inference path.
    """
    input_ids, flags, attention_mask = _prepare(model, input_ids, anchor_flags, attention_mask)
    mask = anchor_mask(flags, attention_mask, dtype=model_dtype(model))
    pos = position_ids_from_attention_mask(attention_mask)
    return model(input_ids=input_ids, attention_mask=mask, position_ids=pos, use_cache=False).logits.float()
