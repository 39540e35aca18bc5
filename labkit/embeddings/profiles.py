"""Sizes of study 1 per profile (sizes only; the code path is the same in every profile)."""

from __future__ import annotations

from pathlib import Path

from labkit import params
from labkit.params import Param

_MODELS = [
    "st:all-MiniLM-L6-v2",
    "hf-mean:all-MiniLM-L6-v2",
    "hf-cls:all-MiniLM-L6-v2",
    "tfidf-lsa",
    "openai:text-embedding-3-small",
    "google:gemini-embedding-001",
]

_COMMON = {
    "models": _MODELS,
    "pairs_csv": None,  # a user's pair CSV (question_1, question_2, label, optional dr_id)
    "test_doctors": 3,
    "val_doctors": 1,
    "finetune_base": "all-MiniLM-L6-v2",
    "head": {"hidden": 256, "out": 128, "loss": "contrastive", "max_epochs": 30, "patience": 4},
    "country": "USA",
}

PROFILES: dict[str, dict] = {
    # a few hundred pairs of every doctor, one epoch: the whole notebook in well under 2 minutes
    "smoke": {
        **_COMMON,
        "max_pairs": 400,
        "bootstrap": 200,
        "finetune_epochs": 1,
        "head": {**_COMMON["head"], "max_epochs": 3, "patience": 2},
        "inference_energy_texts": 200,
    },
    # 1 fine-tuning epoch (about 3 minutes on one core: 2,000 training pairs, 68 steps of 32)
    # keeps `make figures` within 25 minutes on 2 cores; the paper profile trains 8
    "default": {**_COMMON, "max_pairs": 0, "bootstrap": 1000, "finetune_epochs": 1, "inference_energy_texts": 1000},
    "paper": {**_COMMON, "max_pairs": 0, "bootstrap": 4000, "finetune_epochs": 8, "inference_energy_texts": 3000},
}


def _spec_problem(spec: str) -> None:
    """Parse an embedder spec without loading anything (the registry's own message)."""
    from labkit.embedders.registry import parse_spec  # at check time: keeps numpy off the -p path

    parse_spec(spec)


SCHEMA = params.declare(
    "embeddings_medical",
    PROFILES,
    [
        Param(
            "models",
            list[str],
            min_items=1,
            check=_spec_problem,
            none_means="profile",
            help="embedder specs, e.g. st:all-MiniLM-L6-v2, openai:text-embedding-3-large@1024",
        ),
        Param(
            "pairs_csv",
            Path,
            parse="labkit.data.parsers:parse_pairs_csv",  # read and validated before any kernel starts
            none_means="Curai's MQP pairs",
            help="your own pairs: question_1, question_2, label (0/1), optional dr_id",
        ),
        Param("max_pairs", int, min=0, none_means="profile", help="0: every pair; n: about n pairs"),
        Param("test_doctors", int, min=1, none_means="profile", help="doctors held out for testing"),
        Param("finetune_base", str, none_means="profile", help="sentence-transformers model to fine-tune"),
        Param("finetune_epochs", int, min=1, none_means="profile", help="fine-tuning epochs"),
        params.COUNTRY,
    ],
)
