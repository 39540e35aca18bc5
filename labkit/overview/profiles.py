"""Sizes of the data overview (``notebooks/data_overview.ipynb``) per profile, and its schema.

Kept apart from :mod:`labkit.overview.figures` so that ``labkit params data_overview`` and the
pre-run check read them without importing pandas and the tokenizer code.
"""

from __future__ import annotations

from labkit import params
from labkit.params import Param

PROFILES = {
    "smoke": {
        "qmsum_splits": ["test"],
        "max_meetings": 8,
        "tokenizer": "all-MiniLM-L6-v2",
        "contexts": [512, 2048, 4096, 8192],
    },
    "default": {
        "qmsum_splits": ["train", "val", "test"],
        "max_meetings": 0,
        "tokenizer": "all-MiniLM-L6-v2",
        "contexts": [512, 2048, 4096, 8192, 32768],
    },
    "paper": {
        "qmsum_splits": ["train", "val", "test"],
        "max_meetings": 0,
        "tokenizer": "all-MiniLM-L6-v2",
        "contexts": [512, 2048, 4096, 8192, 32768],
    },
}

SCHEMA = params.declare(
    "data_overview",
    PROFILES,
    [
        Param(
            "qmsum_splits",
            list[str],
            choices=("train", "val", "test"),
            min_items=1,
            none_means="profile",
            help="QMSum splits to describe",
        ),
        Param("max_meetings", int, min=0, none_means="profile", help="0: every meeting"),
        Param("tokenizer", str, none_means="profile", help="any model name with a tokenizer"),
        Param(
            "contexts",
            list[int],
            min=1,
            min_items=1,
            none_means="profile",
            help="context sizes (tokens) to compare transcript lengths with",
        ),
    ],
)
