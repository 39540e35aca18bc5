"""Sizes of study 2 per profile (sizes only; the code path is the same in every profile).

``smoke`` trains its own tiny base LM from an empty cache and still finishes the whole notebook
in well under 3 minutes on 2 CPU cores; ``default`` (``labkit run anchor_attention``) is sized
to about 20 minutes on one core including all three trainings; ``paper`` is for a bigger machine.
Context lengths of the latency sweep may run past the base LM's ``context_length`` (only speed
is measured there; the tables say so), no-cache recompute runs up to ``no_cache_up_to`` tokens
and the longer contexts use ``long_repeats`` repeats. The frontier's prompts (``frontier_k``
demonstrations of ``demo_tokens`` plus the query) must fit the context. ``recall`` sizes the
long-range recall probe (:class:`labkit.anchor.recall.RecallProbe`), which the base LM and both
continued trainings mix into their text (``share`` of the blocks).
"""

from __future__ import annotations

from labkit import params
from labkit.params import Param

#: kvpress presses of the KV-budget frontier: name -> (label, kvpress class, what it keeps).
#: Here, not in :mod:`labkit.anchor.presses`, so checking parameters never imports torch.
PRESSES: dict[str, tuple[str, str, str]] = {
    "streaming_llm": ("StreamingLLM", "StreamingLLMPress", "4 sink tokens + the most recent ones"),
    "snapkv": ("SnapKV", "SnapKVPress", "keys the last window's queries attend to most"),
    "knorm": ("key norm", "KnormPress", "keys of the smallest L2 norm"),
    "expected_attention": (
        "expected attention",
        "ExpectedAttentionPress",
        "keys future queries are expected to attend to (query statistics)",
    ),
    "observed_attention": (
        "observed attention (H2O)",
        "ObservedAttentionPress",
        "keys with the highest attention received during prefill (eager)",
    ),
}

PROFILES: dict[str, dict] = {
    "smoke": {
        "base_lm": {
            "vocab_size": 1024,
            "hidden_size": 64,
            "num_layers": 2,
            "num_heads": 2,
            "context_length": 256,
            "train_tokens": 100_000,
            "batch_size": 8,
            "learning_rate": 3e-3,
        },
        "mode": "ac",
        "ac_init": "period",
        "symbols": ["."],
        "anchor_train_tokens": 24_000,
        "anchor_batch_size": 8,
        "anchor_learning_rate": 1e-3,
        "recall": {
            "bindings": 8,
            "buckets": [1, 2, 4, 8],
            "keys": 16,
            "values": 16,
            "min_bindings": 2,
            "train_queries": 8,
            "share": 0.5,
        },
        "recall_prompts": 8,
        "recall_budgets": [0.25, 0.1],
        "demo_tokens": 24,
        "query_tokens": 8,
        "kv_prompts": 3,
        "contexts": [64, 128, 512],
        "new_tokens": 8,
        "latency_batch": 1,
        "repeats": 3,
        "no_cache_up_to": 128,
        "long_repeats": 2,
        "prefill_chunk": 64,
        "ppl_tokens": 3_000,
        "ppl_batch": 8,
        "fewshot_k": 5,
        "fewshot_items": 10,
        "frontier_prompts": 4,
        "frontier_k": 5,
        "frontier_budgets": [0.25, 0.1],
        "frontier_modes": ["ac"],
        "frontier_presses": ["streaming_llm", "snapkv", "knorm"],
    },
    "default": {
        # batch 4: more optimiser steps per token, which in-context recall needs to emerge.
        # Sized for `make figures` on 2 cores (issue 25): the base LM is 400k tokens at a
        # 512-token context (about 5 minutes on one thread; 800k at 1,024 took 3x that and
        # still did not answer the recall probe), each continued training 100k tokens
        "base_lm": {
            "vocab_size": 2048,
            "hidden_size": 128,
            "num_layers": 4,
            "num_heads": 4,
            "context_length": 512,
            "train_tokens": 400_000,
            "batch_size": 4,
            "learning_rate": 3e-3,
        },
        "mode": "ac",
        "ac_init": "period",
        "symbols": ["."],
        "anchor_train_tokens": 100_000,
        "anchor_batch_size": 4,
        "anchor_learning_rate": 1e-3,
        "recall": {
            "bindings": 32,
            "buckets": [1, 2, 4, 8, 16, 32],
            "keys": 128,
            "values": 128,
            "min_bindings": 2,
            "train_queries": 16,
            "share": 0.5,
        },
        "recall_prompts": 40,
        "recall_budgets": [0.25, 0.1],
        "demo_tokens": 80,
        "query_tokens": 12,
        "kv_prompts": 20,
        "contexts": [128, 512, 2048, 8192],
        "new_tokens": 48,
        "latency_batch": 4,
        "repeats": 5,
        "no_cache_up_to": 128,
        "long_repeats": 3,
        "prefill_chunk": 256,
        "ppl_tokens": 30_000,
        "ppl_batch": 8,
        "fewshot_k": 5,
        "fewshot_items": 60,
        "frontier_prompts": 20,
        "frontier_k": 5,
        "frontier_budgets": [0.25, 0.1, 0.02],
        "frontier_modes": ["ac", "ep"],  # AnLLM-EP: a second continued training (cached)
        "frontier_presses": list(PRESSES),
    },
    "paper": {
        "base_lm": {
            "vocab_size": 8192,
            "hidden_size": 256,
            "num_layers": 8,
            "num_heads": 8,
            "context_length": 2048,
            "train_tokens": 20_000_000,
            "batch_size": 16,
            "learning_rate": 2e-3,
        },
        "mode": "ac",
        "ac_init": "period",
        "symbols": ["."],
        "anchor_train_tokens": 4_000_000,
        "anchor_batch_size": 8,
        "anchor_learning_rate": 5e-4,
        "recall": {
            "bindings": 64,
            "buckets": [1, 2, 4, 8, 16, 32, 64],
            "keys": 256,
            "values": 256,
            "min_bindings": 2,
            "train_queries": 32,
            "share": 0.3,
        },
        "recall_prompts": 200,
        "recall_budgets": [0.25, 0.1],
        "demo_tokens": 200,
        "query_tokens": 16,
        "kv_prompts": 50,
        "contexts": [256, 1024, 4096, 8192],
        "new_tokens": 48,
        "latency_batch": 8,
        "repeats": 7,
        "no_cache_up_to": 1024,
        "long_repeats": 5,
        "prefill_chunk": 256,
        "ppl_tokens": 200_000,
        "ppl_batch": 8,
        "fewshot_k": 5,
        "fewshot_items": 500,
        "frontier_prompts": 100,
        "frontier_k": 5,
        "frontier_budgets": [0.5, 0.25, 0.1, 0.05, 0.02],
        "frontier_modes": ["ac", "ep"],
        "frontier_presses": list(PRESSES),
    },
}

SCHEMA = params.declare(
    "anchor_attention",
    PROFILES,
    [
        Param(
            "base_model",
            str,
            none_means="labkit's tiny LM, trained here on real text",
            help="any Hugging Face causal-LM name or local folder (Llama / Qwen2 families)",
        ),
        Param("mode", str, choices=("ac", "ep"), help="anchors: an added <AC> token or punctuation"),
        Param(
            "ac_init", str, choices=("period", "mean"), help="<AC> embedding initialised from '.' or the mean embedding"
        ),
        Param(
            "anchor_train_tokens",
            int,
            min=1,
            none_means="profile",
            help="continued-training token budget under the anchor mask",
        ),
        Param(
            "contexts",
            list[int],
            min=2,
            min_items=1,
            none_means="profile",
            help="prompt lengths (tokens) of the latency sweep",
        ),
        Param("latency_batch", int, min=1, none_means="profile", help="prompts decoded together in the latency sweep"),
        Param(
            "frontier_presses",
            list[str],
            choices=tuple(PRESSES),
            none_means="profile",
            help="kvpress presses of the KV-budget frontier",
        ),
        Param(
            "frontier_budgets",
            list[float],
            min=0,
            exclusive_min=True,
            max=1,
            min_items=1,
            none_means="profile",
            help="kept KV shares of the frontier's press sweep",
        ),
        Param(
            "frontier_modes",
            list[str],
            choices=("ac", "ep"),
            min_items=1,
            none_means="profile",
            help="anchor-trained models on the frontier (the other mode is trained once, cached)",
        ),
        Param(
            "frontier_prompts",
            int,
            min=2,
            none_means="profile",
            help="held-out k-shot prompts of the KV-budget frontier",
        ),
        Param(
            "recall_prompts",
            int,
            min=2,
            none_means="profile",
            help="prompts of the long-range recall probe (one query per distance each)",
        ),
        params.COUNTRY,
    ],
)
