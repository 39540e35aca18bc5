"""Which models anchor inference supports, and what their KV cache costs.

Kept apart from the cache state machine (:mod:`labkit.anchor.cache`) because training
(:mod:`labkit.anchor.training`) checks the same families before spending minutes on a model
that inference could never use, and the study tables price a full cache with the same rule.

:data:`FAMILIES` is the one table of supported decoder families. Each entry carries the tiny
random-weight config(s) that ``tests/anchor/test_families.py`` builds for it and on which the
pruned-cache logits are checked against the masked full pass (eager and SDPA, chunk sizes
1/7/64, left and right padding, batch 3). A family is listed here only with such a config, so
:data:`SUPPORTED_FAMILIES` (the allow-list) is exactly the set of families that test covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from labkit.errors import ModelError

__all__ = [
    "FAMILIES",
    "Family",
    "NOT_SUPPORTED",
    "SUPPORTED_FAMILIES",
    "SUPPORTED_ATTENTION",
    "check_config",
    "check_supported",
    "kv_cache_bytes",
    "kv_bytes_per_token",
    "kv_heads",
    "lm_logits",
    "model_device",
    "model_dtype",
    "max_positions",
    "new_cache",
    "cache_layers",
]


@dataclass(frozen=True)
class Family:
    """One supported decoder family.

    ``tiny``: keyword arguments of ``AutoConfig.for_model(model_type, ...)`` for the tiny
    random-weight test configs (one dict per variant worth testing, e.g. Falcon's old and new
    decoder architectures); the test adds vocabulary, context and padding ids.
    """

    name: str
    tiny: tuple[dict[str, Any], ...]
    note: str = ""


_GQA = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
_MHA = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
_GPT2 = dict(n_embd=32, n_inner=64, n_layer=2, n_head=4)

#: ``config.model_type`` -> :class:`Family`. Every entry is backed by the exactness matrix of
#: ``tests/anchor/test_families.py``; all use absolute ``position_ids`` (RoPE or learned),
#: accept a 4-D additive mask as-is and keep K/V in ``DynamicCache.layers[l].keys/.values``.
FAMILIES: dict[str, Family] = {
    "llama": Family("Llama", (_GQA,)),
    "mistral": Family(
        "Mistral", ({**_GQA, "sliding_window": None},), "without a sliding window (Mistral-7B-v0.2 and later)"
    ),
    "mixtral": Family("Mixtral", ({**_GQA, "sliding_window": None, "num_local_experts": 4, "num_experts_per_tok": 2},)),
    "qwen2": Family("Qwen2", (_GQA,), "use_sliding_window=False (the released checkpoints)"),
    "qwen2_moe": Family(
        "Qwen2-MoE", ({**_GQA, "moe_intermediate_size": 32, "num_experts": 4, "shared_expert_intermediate_size": 32},)
    ),
    "qwen3": Family("Qwen3", ({**_GQA, "head_dim": 8},)),
    "qwen3_moe": Family(
        "Qwen3-MoE", ({**_GQA, "head_dim": 8, "moe_intermediate_size": 32, "num_experts": 4, "num_experts_per_tok": 2},)
    ),
    "gpt_neox": Family("GPT-NeoX", ({**_MHA, "rotary_pct": 0.5},)),
    "gpt2": Family("GPT-2", (_GPT2,)),
    "gpt_bigcode": Family("GPTBigCode", (_GPT2, {**_GPT2, "multi_query": False})),
    "phi": Family("Phi", ({**_GQA, "partial_rotary_factor": 0.5},)),
    "phi3": Family(
        "Phi-3", ({**_GQA, "sliding_window": None},), "without a sliding window (Phi-3-mini-4k sets one: refused)"
    ),
    "phimoe": Family("PhiMoE", ({**_GQA, "sliding_window": None, "num_local_experts": 4},)),
    "gemma": Family("Gemma", ({**_GQA, "head_dim": 8},)),
    "opt": Family("OPT", ({**_MHA, "ffn_dim": 64}, {**_MHA, "ffn_dim": 64, "word_embed_proj_dim": 16})),
    "falcon": Family(
        "Falcon",
        (
            {**_MHA, "new_decoder_architecture": True, "num_kv_heads": 2},
            {**_MHA, "new_decoder_architecture": False, "multi_query": True},
        ),
        "rotary only (alibi=True is refused)",
    ),
    "olmo": Family("OLMo", (_GQA,)),
    "olmo2": Family("OLMo-2", (_GQA,)),
    "stablelm": Family("StableLM", (_GQA,)),
    "starcoder2": Family("StarCoder2", ({**_GQA, "sliding_window": None},)),
    "glm": Family("GLM", ({**_GQA, "head_dim": 8},)),
    "glm4": Family("GLM-4", ({**_GQA, "head_dim": 8},)),
    "smollm3": Family("SmolLM3", ({**_GQA, "num_hidden_layers": 4},), "incl. its NoPE layers"),
    "helium": Family("Helium", ({**_GQA, "head_dim": 8},)),
    "ernie4_5": Family("ERNIE-4.5", (_GQA,)),
    "apertus": Family("Apertus", (_GQA,)),
    "seed_oss": Family("Seed-OSS", (_GQA,)),
    "arcee": Family("Arcee", (_GQA,)),
    "nemotron": Family("Nemotron", (_GQA,)),
    "persimmon": Family("Persimmon", (_MHA,)),
    "biogpt": Family("BioGPT", (_MHA,)),
    "jetmoe": Family("JetMoE", (dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4),)),
    "bitnet": Family("BitNet", (_GQA,)),
    "hunyuan_v1_dense": Family(
        "Hunyuan-V1-Dense",
        ({**_GQA, "head_dim": 8, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}},),
    ),
}

#: ``config.model_type`` -> family name; the allow-list every entry point checks.
SUPPORTED_FAMILIES: dict[str, str] = {k: f.name for k, f in FAMILIES.items()}
SUPPORTED_ATTENTION = ("eager", "sdpa")

#: Families tried and left out, with the reason the error message gives.
NOT_SUPPORTED: dict[str, str] = {
    "cohere": "its logits are scaled after lm_head (config.logit_scale), which the cached path "
    "does not apply yet (labkit.anchor.support.lm_logits does)",
    "granite": "its logits are divided by config.logits_scaling after lm_head, which the cached "
    "path does not apply yet (labkit.anchor.support.lm_logits does)",
    "granitemoe": "its logits are divided by config.logits_scaling after lm_head, which the cached "
    "path does not apply yet (labkit.anchor.support.lm_logits does)",
    "gemma2": "hybrid cache: every other layer attends through a sliding window",
    "gemma3_text": "hybrid cache: sliding-window layers",
    "cohere2": "hybrid cache: sliding-window layers",
    "bloom": "ALiBi biases are built from a 2-D padding mask, which anchor inference replaces",
    "mpt": "ALiBi biases; no SDPA in transformers",
    "gptj": "no SDPA attention in transformers",
    "codegen": "no SDPA attention in transformers",
    "deepseek_v3": "multi-head latent attention caches a compressed KV of another shape",
}

# model_type -> (config attribute, "mul" | "div"): scalings the CausalLM head applies after lm_head
_POST_HEAD = {
    "cohere": ("logit_scale", "mul"),
    "cohere2": ("logit_scale", "mul"),
    "granite": ("logits_scaling", "div"),
    "granitemoe": ("logits_scaling", "div"),
    "granitemoeshared": ("logits_scaling", "div"),
}


# --------------------------------------------------------------------------- model checks
def _names() -> str:
    return ", ".join(f"{v} ({k!r})" for k, v in SUPPORTED_FAMILIES.items())


def check_config(config, who: str = "model") -> str:
    """Return the family name for a model ``config`` or raise one clear :class:`ModelError`.

    Checks, before any weights are used: the family is in :data:`FAMILIES`; attention is eager
    or SDPA (the only ones that take an arbitrary 4-D mask); every cache layer is a plain
    full-attention ``DynamicLayer`` (sliding-window, chunked, hybrid or linear-attention caches
    cannot be pruned by anchors and otherwise fail deep inside transformers with a shape
    mismatch); and family options that anchor masks cannot express (Falcon ALiBi).
    """
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_FAMILIES:
        why = f" ({NOT_SUPPORTED[model_type]})" if model_type in NOT_SUPPORTED else ""
        raise ModelError(
            f"anchor inference does not support model_type {model_type!r}{why} [{who}]; supported families: {_names()}"
        )
    name = SUPPORTED_FAMILIES[model_type]
    impl = getattr(config, "_attn_implementation", None) or "eager"
    if impl not in SUPPORTED_ATTENTION:
        raise ModelError(
            f"anchor inference needs attn_implementation in {SUPPORTED_ATTENTION} "
            f"(arbitrary 4-D masks), the {who} uses {impl!r}; load it with "
            "attn_implementation='sdpa'"
        )
    if getattr(config, "use_sliding_window", False) and getattr(config, "sliding_window", None):
        raise ModelError(
            f"{name} {who} with use_sliding_window=True: sliding-window caches "
            "cannot be pruned by anchors (window-aware pruning is not implemented)"
        )
    if model_type == "falcon" and getattr(config, "alibi", False):
        raise ModelError(
            f"Falcon {who} with alibi=True: ALiBi biases are built from a 2-D "
            "padding mask, which anchor inference replaces by a 4-D mask; only "
            "rotary Falcon models are supported"
        )
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        layers = DynamicCache(config=config).layers
    except Exception as exc:  # a config transformers cannot build a cache for
        raise ModelError(f"cannot build a KV cache for this {name} {who}: {exc}") from exc
    odd = [i for i, layer in enumerate(layers) if type(layer) is not DynamicLayer]
    if odd:
        kinds = sorted({type(layers[i]).__name__ for i in odd})
        window = getattr(config, "sliding_window", None) or getattr(config, "attention_chunk_size", None)
        raise ModelError(
            f"{name} {who} has layers {odd[:8]}{'...' if len(odd) > 8 else ''} with "
            f"{'/'.join(kinds)} caches (sliding_window={window}): anchor inference "
            "prunes full-attention caches only (window-aware pruning is not "
            "implemented); sliding-window and hybrid models are not supported"
        )
    return name


def check_supported(model) -> str:
    """Return the family name of ``model`` or raise :class:`ModelError` (see :func:`check_config`)."""
    config = getattr(model, "config", None)
    if config is None:
        raise ModelError(f"anchor inference needs a transformers causal LM, got {type(model).__name__}")
    return check_config(config, who=type(model).__name__)


def lm_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """Logits from the decoder's last hidden states exactly as the model's own head computes
    them: ``lm_head`` plus the scalings some families apply after it (Cohere ``logit_scale``,
    Granite ``logits_scaling``), which calling ``get_output_embeddings()`` alone would miss."""
    logits = model.get_output_embeddings()(hidden)
    rule = _POST_HEAD.get(getattr(model.config, "model_type", None))
    if rule is not None:
        value = getattr(model.config, rule[0], None)
        if value is not None:
            logits = logits * value if rule[1] == "mul" else logits / value
    return logits


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


def kv_heads(config) -> int:
    """Key/value heads one layer caches (GQA / MQA aware, incl. Falcon's older multi-query)."""
    if getattr(config, "model_type", None) == "falcon" and not getattr(config, "new_decoder_architecture", False):
        return 1 if getattr(config, "multi_query", False) else config.num_attention_heads
    return getattr(config, "num_key_value_heads", None) or config.num_attention_heads


def kv_bytes_per_token(model) -> int:
    """K+V bytes one token occupies across all layers (for the 'full cache' counterfactual)."""
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    elem = torch.finfo(model_dtype(model)).bits // 8
    return 2 * c.num_hidden_layers * kv_heads(c) * head_dim * elem
