"""The data-overview study (``notebooks/data_overview.ipynb``): what each registered dataset
holds -- counts, length distributions, label balance, QMSum transcript lengths in tokens
against model context windows.

A study package like the others; the datasets themselves live in :mod:`labkit.data`, which
knows nothing about this study.
"""

from labkit.overview.figures import (
    context_coverage,
    mqp_by_doctor,
    mqp_lengths,
    qmsum_lengths,
    qmsum_lengths_figure,
    text_summary,
)
from labkit.overview.profiles import PROFILES
from labkit.text import token_counter, word_count

__all__ = [
    "PROFILES",
    "context_coverage",
    "mqp_by_doctor",
    "mqp_lengths",
    "qmsum_lengths",
    "qmsum_lengths_figure",
    "text_summary",
    "token_counter",
    "word_count",
]
