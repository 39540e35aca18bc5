"""Sizes of the meeting-summarization study per profile (``smoke`` / ``default`` / ``paper``)."""

from __future__ import annotations

from pathlib import Path

from labkit import params
from labkit.params import Param

_COMMON = {
    "split": "test",
    # QMSum's general ("summarize the whole meeting") and specific queries, each item scored
    # against its own reference; every instruction type is scored against that one reference
    "query_kinds": ["general", "specific"],
    "instructions": ["long", "medium", "short"],
    "embedder": "all-MiniLM-L6-v2",
    "token_counter": "all-MiniLM-L6-v2",
    "bootstrap": 1000,
    # USD: a rented 2-core CPU machine for local systems (cost = time); add API prices per system
    "price_table": {"default": {"usd_per_hour": 0.10}},
    "items_jsonl": None,  # a user's JSONL (transcript, summary, optional query) instead of QMSum
    "zero_shot_model": None,  # a local HF causal LM / seq2seq name for the zero-shot row
    "country": "USA",
    "generate_batch": 16,  # prompts per generate() call (map-reduce chunks are batched too)
    "contexts": {"tiny LM (ours)": 256, "FLAN-T5 (Tiny Titans)": 2048, "LLaMA-2": 4096, "GPT-3.5-turbo-16k": 16384},
}

PROFILES = {
    "smoke": {
        **_COMMON,
        "max_meetings": 3,
        "bootstrap": 200,
        "selector": {"positives_per_query": 1, "epochs": 1, "max_queries": 24},
        "tiny_lm": {
            "vocab_size": 1024,
            "hidden_size": 64,
            "num_layers": 2,
            "num_heads": 2,
            "context_length": 256,
            "train_tokens": 200_000,
        },
        "finetune_model": "",
        "finetune_train_meetings": 6,
        "finetune_epochs": 1,
        "finetune_max_target_tokens": 64,
        "generate_meetings": 1,
        "chunk_study_meetings": 1,
        "max_new_tokens": 64,
    },
    # The generative tiny LM is a calibration row: at 1M and 2M pre-training tokens it wrote
    # the same flagged word salad (1M took 5.5 minutes on 2 cores), so it gets 300k tokens at
    # hidden 96 x 3 layers, fine-tunes 1 epoch and generates for the
    # queries of 3 meetings (about 25 items); the chunking study reads the 2 longest meetings.
    # The minutes go to the MiniLM selector, fine-tuned on QMSum train and scored on every
    # test query (general and specific, ~280 items), the study's compact-vs-zero-shot answer.
    "default": {
        **_COMMON,
        "max_meetings": 0,
        "selector": {"positives_per_query": 1, "epochs": 1, "max_queries": 0},
        "tiny_lm": {"hidden_size": 96, "num_layers": 3, "num_heads": 4, "context_length": 512, "train_tokens": 300_000},
        "finetune_model": "",
        "finetune_train_meetings": 0,
        "finetune_epochs": 1,
        "finetune_max_target_tokens": 128,
        "generate_meetings": 3,
        "chunk_study_meetings": 2,
        "max_new_tokens": 128,
    },
    "paper": {
        **_COMMON,
        "max_meetings": 0,
        "selector": {"positives_per_query": 4, "epochs": 2, "max_queries": 0},
        "tiny_lm": {"hidden_size": 256, "num_layers": 6, "context_length": 1024, "train_tokens": 20_000_000},
        "finetune_model": "google/flan-t5-large",
        "finetune_train_meetings": 0,
        "finetune_epochs": 3,
        "finetune_max_target_tokens": 192,
        "generate_meetings": 0,
        "chunk_study_meetings": 0,
        "max_new_tokens": 512,
    },
}

_PRICE = Param("price", float, min=0)

SCHEMA = params.declare(
    "meeting_summarization",
    PROFILES,
    [
        Param(
            "items_jsonl",
            Path,
            parse="labkit.summarize.data:load_jsonl",  # read and validated before any kernel starts
            none_means="QMSum",
            help="your data: JSON lines with transcript, summary, optional query",
        ),
        Param("max_meetings", int, min=0, none_means="profile", help="evaluation meetings (0: the whole split)"),
        Param(
            "instructions",
            list[str],
            choices=("long", "medium", "short"),
            min_items=1,
            none_means="profile",
            help="summary lengths asked for",
        ),
        Param(
            "finetune_model",
            str,
            none_means="profile",
            help="HF name or folder of the compact model; '': labkit's tiny LM",
        ),
        Param("zero_shot_model", str, none_means="no zero-shot row", help="a local HF model for the zero-shot row"),
        Param(
            "generate_meetings",
            int,
            min=0,
            none_means="profile",
            help="meetings the generative systems summarize (0: all)",
        ),
        Param(
            "price_table",
            dict,
            none_means="profile",
            values=Param(
                "prices", dict, fields={k: _PRICE for k in ("usd_per_hour", "usd_per_1m_input", "usd_per_1m_output")}
            ),
            help="{system or 'default': {usd_per_hour | usd_per_1m_input | usd_per_1m_output}}",
        ),
        params.COUNTRY,
    ],
)
