"""Study 2: anchor-based attention (AnSAN) and anchor-pruned KV caches (AnLLM, Pang et al. 2024).

``anchors`` (EP / AC anchors, sentence splitting), ``masks`` (the AnSAN mask), ``support``
(supported model families, KV bytes), ``cache`` (the pruned-cache state machine: chunked
prefill, one-token steps, pruning), ``decoding`` (greedy decoding with the anchor cache and the
full-cache / no-cache baselines), ``training`` (continued training through HF Trainer with a
mask-building collator), ``prompts`` (k-shot prompts from held-out text), ``latency``
(interleaved timing, speed-ups with bootstrap intervals), ``fewshot`` (k-shot accuracy),
``figures``, ``study`` (the notebook's measurements and targets) and ``profiles`` (sizes).
"""

from labkit.anchor import study
from labkit.anchor.anchors import (
    AnchorSpec,
    add_anchor_token,
    anchor_flags,
    anchor_token_ids,
    insert_anchor_tokens,
    split_sentences,
)
from labkit.anchor.cache import (
    AnchorCacheWarning,
    AnchorState,
    anchor_prefill,
    anchor_step,
    prefill_chunk,
)
from labkit.anchor.decoding import (
    GenerationResult,
    anchor_generate,
    encode_prompts,
    full_cache_generate,
    no_cache_generate,
)
from labkit.anchor.fewshot import FEWSHOT_TASKS, fewshot_accuracy, fewshot_items, fewshot_panel
from labkit.anchor.figures import figure1, latency_figure, memory_throughput_figure
from labkit.anchor.latency import latency_sweep, speedup_table
from labkit.anchor.masks import anchor_mask
from labkit.anchor.profiles import PROFILES
from labkit.anchor.study import (
    STUDY,
    TARGETS,
    headline,
    kept_anchor_examples,
    kv_cache_table,
    quality_table,
    results_table,
    save_kept_anchors,
    setup_models,
    train_config,
)
from labkit.anchor.support import (
    SUPPORTED_FAMILIES,
    check_supported,
    kv_bytes_per_token,
    kv_cache_bytes,
)
from labkit.anchor.teacher_forced import anchor_cache_logits, masked_forward_logits

__all__ = [
    "FEWSHOT_TASKS",
    "PROFILES",
    "STUDY",
    "SUPPORTED_FAMILIES",
    "TARGETS",
    "AnchorCacheWarning",
    "AnchorSpec",
    "AnchorState",
    "GenerationResult",
    "add_anchor_token",
    "anchor_cache_logits",
    "anchor_flags",
    "anchor_generate",
    "anchor_mask",
    "anchor_prefill",
    "anchor_step",
    "anchor_token_ids",
    "check_supported",
    "encode_prompts",
    "fewshot_accuracy",
    "fewshot_items",
    "fewshot_panel",
    "figure1",
    "full_cache_generate",
    "headline",
    "insert_anchor_tokens",
    "kept_anchor_examples",
    "kv_bytes_per_token",
    "kv_cache_bytes",
    "kv_cache_table",
    "latency_figure",
    "latency_sweep",
    "memory_throughput_figure",
    "masked_forward_logits",
    "no_cache_generate",
    "prefill_chunk",
    "quality_table",
    "results_table",
    "save_kept_anchors",
    "setup_models",
    "speedup_table",
    "split_sentences",
    "study",
    "train_config",
]
