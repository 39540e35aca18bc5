"""Former home of anchor inference, kept as a re-export for older imports.

The code now lives in :mod:`labkit.anchor.cache` (the pruned-cache state machine),
:mod:`labkit.anchor.decoding` (greedy decoders) and :mod:`labkit.anchor.support` (model checks,
KV bytes). Import from those, or from :mod:`labkit.anchor`.
"""

from labkit.anchor.cache import (
    SUPPORTED_FAMILIES,
    AnchorCacheWarning,
    AnchorState,
    anchor_cache_logits,
    anchor_prefill,
    anchor_step,
    check_supported,
    masked_forward_logits,
    prefill_chunk,
)
from labkit.anchor.decoding import (
    GenerationResult,
    anchor_generate,
    encode_prompts,
    full_cache_generate,
    no_cache_generate,
)
from labkit.anchor.support import kv_bytes_per_token, kv_cache_bytes

__all__ = [
    "SUPPORTED_FAMILIES",
    "AnchorCacheWarning",
    "AnchorState",
    "GenerationResult",
    "check_supported",
    "anchor_prefill",
    "anchor_step",
    "anchor_generate",
    "anchor_cache_logits",
    "full_cache_generate",
    "no_cache_generate",
    "masked_forward_logits",
    "kv_cache_bytes",
    "kv_bytes_per_token",
    "encode_prompts",
    "prefill_chunk",
]
