"""Which models anchor inference supports, and what their KV cache costs.

Kept apart from the cache state machine (:mod:`labkit.anchor.cache`) because training
(:mod:`labkit.anchor.training`) checks the same families before spending minutes on a model
that inference could never use, and the study tables price a full cache with the same rule.
"""
from __future__ import annotations

import torch

from labkit.errors import ModelError

__all__ = ["SUPPORTED_FAMILIES", "SUPPORTED_ATTENTION", "check_supported", "kv_cache_bytes",
           "kv_bytes_per_token", "model_device", "model_dtype", "max_positions", "new_cache",
           "cache_layers"]

#: ``config.model_type`` -> family name. All three use RoPE on absolute ``position_ids``, accept
#: a 4-D mask as-is and store K/V in ``DynamicCache.layers[l].keys/.values``.
SUPPORTED_FAMILIES = {"llama": "Llama", "qwen2": "Qwen2", "gpt_neox": "GPT-NeoX"}
SUPPORTED_ATTENTION = ("eager", "sdpa")


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


def model_dtype(model) -> torch.dtype:
    """dtype of the model's weights (masks and byte counts follow it)."""
    return next(model.parameters()).dtype


def model_device(model) -> torch.device:
    """Device of the model's weights (inputs are moved there)."""
    return next(model.parameters()).device


def max_positions(model) -> int | None:
    """``config.max_position_embeddings`` (``None`` when the config does not say)."""
    value = getattr(model.config, "max_position_embeddings", None)
    return int(value) if value else None


def new_cache(model):
    """An empty ``DynamicCache`` shaped for ``model`` (one layer object per decoder layer)."""
    from transformers import DynamicCache
    return DynamicCache(config=model.config)


def cache_layers(cache) -> list:
    """The per-layer K/V holders of a ``DynamicCache`` (what pruning gathers)."""
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise ModelError(f"expected a transformers DynamicCache with .layers, got {type(cache).__name__}")
    return list(layers)


def kv_cache_bytes(cache) -> int:
    """Bytes held by the key and value tensors of every layer of ``cache``."""
    total = 0
    for layer in cache_layers(cache):
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if torch.is_tensor(t):
                total += t.numel() * t.element_size()
    return total


def kv_bytes_per_token(model) -> int:
    """K+V bytes one token occupies across all layers (for the 'full cache' counterfactual)."""
    c = model.config
    heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    elem = torch.finfo(model_dtype(model)).bits // 8
    return 2 * c.num_hidden_layers * heads * head_dim * elem
