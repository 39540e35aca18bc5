"""Study 2: anchor-based attention (AnSAN) and anchor-pruned KV caches (AnLLM, Pang et al. 2024).

``anchors`` (EP / AC anchors, sentence splitting), ``masks`` (the AnSAN mask), ``inference``
(pruned-cache prefill and decoding), ``training`` (continued training through HF Trainer with a
mask-building collator), ``prompts`` (k-shot prompts from held-out text), ``study``
(measurements and figures) and ``profiles`` (sizes per profile).
"""
from labkit.anchor.anchors import (AnchorSpec, add_anchor_token, anchor_flags, anchor_token_ids,
                                   insert_anchor_tokens, split_sentences)
from labkit.anchor.inference import (SUPPORTED_FAMILIES, anchor_cache_logits, anchor_generate,
                                     anchor_prefill, full_cache_generate, no_cache_generate)
from labkit.anchor.masks import anchor_mask
from labkit.anchor.profiles import PROFILES

__all__ = ["PROFILES", "SUPPORTED_FAMILIES", "AnchorSpec", "add_anchor_token", "anchor_cache_logits",
           "anchor_flags", "anchor_generate", "anchor_mask", "anchor_prefill", "anchor_token_ids",
           "full_cache_generate", "insert_anchor_tokens", "no_cache_generate", "split_sentences"]
