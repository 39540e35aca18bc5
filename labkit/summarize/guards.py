"""Degenerate-output guards: catch a system whose ROUGE is not a summary's ROUGE.

ROUGE rewards word overlap, and QMSum's references share a generic vocabulary ("The meeting
was about ... the team discussed ..."). A model that writes the same meeting-flavoured word
salad for every transcript therefore scores like a real summarizer (the default run once put
labkit's 1.6M-parameter tiny LM above TextRank and the extractive oracle). These guards look at
the outputs themselves, never at the references' words, and say why a system's scores must not
be read as summary quality.

Measures (per system and instruction; per-output values are averaged over items):

* ``distinct1`` / ``distinct2``: distinct uni-/bigrams over all uni-/bigrams in one output;
* ``repeated_trigram_rate``: share of an output's trigrams that repeat an earlier trigram of
  the same output (loops such as "was about the team was about the team");
* ``duplicate_share``: share of items whose output is also the output of an item with a
  *different* transcript (items sharing a transcript, e.g. two queries on one meeting, may
  legitimately get the same extract);
* ``cross_item_overlap``: mean bigram Jaccard between outputs for different transcripts
  (near-constant text that varies a word or two);
* ``novel_bigram_rate``: share of output bigrams absent from its transcript (0 for extraction;
  reported, not a flag: good abstractive summaries are novel too);
* ``length_ratio``: mean output words over mean reference words.

A system is **degenerate** when any of these holds (thresholds are the constants below):
``duplicate_share > DUPLICATE_SHARE_MAX``, ``repeated_trigram_rate > REPEATED_TRIGRAM_MAX``,
``distinct1 < DISTINCT1_MIN``, ``distinct2 < DISTINCT2_MIN``,
``cross_item_overlap > CROSS_ITEM_OVERLAP_MAX`` or ``length_ratio < LENGTH_RATIO_MIN``.
The thresholds sit far from what real extractive sentences and human references give (tested
on QMSum in ``tests/summarize/test_guards.py``), so a flag means "look at the outputs".
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from labkit.errors import ParameterError

#: More than this share of items get an output another transcript also got.
DUPLICATE_SHARE_MAX = 0.10
#: More than this share of an output's trigrams repeat an earlier trigram of the same output.
REPEATED_TRIGRAM_MAX = 0.20
#: Mean distinct-1 below this: an output uses few different words.
DISTINCT1_MIN = 0.30
#: Mean distinct-2 below this: an output repeats its word pairs.
DISTINCT2_MIN = 0.50
#: Mean bigram Jaccard between outputs for different transcripts above this: one text for all.
CROSS_ITEM_OVERLAP_MAX = 0.25
#: Mean output length below this share of the mean reference length: (nearly) empty outputs.
LENGTH_RATIO_MIN = 0.10
#: Pairs of outputs compared for ``cross_item_overlap`` (a deterministic sample beyond this).
MAX_PAIRS = 5000

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
FLAG_MARK = "⚠ degenerate"


def words(text: str) -> list[str]:
    """Lower-cased word tokens (punctuation dropped), the unit every guard counts."""
    return _WORD.findall((text or "").lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _distinct(tokens: Sequence[str], n: int) -> float:
    grams = ngrams(tokens, n)
    return len(set(grams)) / len(grams) if grams else float("nan")


def _repeated(tokens: Sequence[str], n: int = 3) -> float:
    grams = ngrams(tokens, n)
    if not grams:
        return float("nan")
    return sum(c - 1 for c in Counter(grams).values()) / len(grams)


def _mean(values: Sequence[float]) -> float:
    x = np.asarray([v for v in values if v == v], dtype=float)  # drop NaN (too-short outputs)
    return float(x.mean()) if x.size else float("nan")


def _cross_overlap(bigram_sets: Sequence[set], transcripts: Sequence[str]) -> float:
    pairs = [(i, j) for i, j in combinations(range(len(bigram_sets)), 2) if transcripts[i] != transcripts[j]]
    if len(pairs) > MAX_PAIRS:
        rng = np.random.default_rng(0)
        pairs = [pairs[k] for k in rng.choice(len(pairs), MAX_PAIRS, replace=False)]
    sims = []
    for i, j in pairs:
        a, b = bigram_sets[i], bigram_sets[j]
        if a or b:
            sims.append(len(a & b) / len(a | b))
    return float(np.mean(sims)) if sims else float("nan")


@functools.lru_cache(maxsize=512)
def _source_bigrams(transcript: str) -> frozenset[tuple[str, ...]]:
    """A transcript's word bigrams, once per transcript (every system x instruction asks)."""
    return frozenset(ngrams(words(transcript), 2))


def output_stats(predictions: Sequence[str], transcripts: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """The guard measures of one system's outputs (see the module docstring)."""
    if not len(predictions) == len(transcripts) == len(references):
        raise ParameterError(
            f"output_stats needs one transcript and reference per prediction "
            f"({len(predictions)}, {len(transcripts)}, {len(references)})"
        )
    tokens = [words(p) for p in predictions]
    norm = [" ".join(t) for t in tokens]
    by_output: dict[str, set[str]] = {}
    for text, transcript in zip(norm, transcripts):
        by_output.setdefault(text, set()).add(transcript)
    duplicated = [bool(text) and len(by_output[text]) > 1 for text in norm]
    novel = []
    for toks, transcript in zip(tokens, transcripts):
        grams = ngrams(toks, 2)
        if grams:
            source = _source_bigrams(transcript)
            novel.append(sum(g not in source for g in grams) / len(grams))
    ref_words = float(np.mean([len(words(r)) for r in references])) if references else float("nan")
    out_words = float(np.mean([len(t) for t in tokens])) if tokens else float("nan")
    return {
        "distinct1": _mean([_distinct(t, 1) for t in tokens]),
        "distinct2": _mean([_distinct(t, 2) for t in tokens]),
        "repeated_trigram_rate": _mean([_repeated(t) for t in tokens]),
        "duplicate_share": float(np.mean(duplicated)) if duplicated else float("nan"),
        "cross_item_overlap": _cross_overlap([set(ngrams(t, 2)) for t in tokens], transcripts),
        "novel_bigram_rate": _mean(novel),
        "length_ratio": out_words / ref_words if ref_words else float("nan"),
    }


#: (measure, direction, threshold, reason template, few-word tag for figure labels)
_CHECKS = [
    (
        "duplicate_share",
        ">",
        DUPLICATE_SHARE_MAX,
        "{:.0%} of items share their output with another transcript",
        "duplicates",
    ),
    ("repeated_trigram_rate", ">", REPEATED_TRIGRAM_MAX, "{:.0%} of trigrams repeat", "loops"),
    ("distinct1", "<", DISTINCT1_MIN, "distinct-1 {:.2f}", "few words"),
    ("distinct2", "<", DISTINCT2_MIN, "distinct-2 {:.2f}", "repeated pairs"),
    (
        "cross_item_overlap",
        ">",
        CROSS_ITEM_OVERLAP_MAX,
        "outputs for different transcripts overlap {:.0%} (bigram Jaccard)",
        "same text",
    ),
    ("length_ratio", "<", LENGTH_RATIO_MIN, "outputs {:.0%} of the reference length", "near-empty"),
]


def _broken(stats: dict[str, float]):
    for key, op, limit, text, tag in _CHECKS:
        value = stats.get(key, float("nan"))
        if value == value and (value > limit if op == ">" else value < limit):
            yield text.format(value), tag


def tags(stats: dict[str, float]) -> list[str]:
    """A few words per broken threshold, for axis and legend labels."""
    return [tag for _, tag in _broken(stats)]


def reasons(stats: dict[str, float]) -> list[str]:
    """Why ``stats`` count as degenerate: one short phrase per broken threshold (empty: fine)."""
    return [text for text, _ in _broken(stats)]


def assess(predictions: Sequence[str], transcripts: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """``output_stats`` plus ``degenerate`` (bool) and ``degenerate_reason`` ("" when fine)."""
    stats = output_stats(predictions, transcripts, references)
    why = reasons(stats)
    return {
        **stats,
        "degenerate": bool(why),
        "degenerate_reason": "; ".join(why),
        "degenerate_tags": ", ".join(tags(stats)),
    }


def label(name: str, reason: str) -> str:
    """``name`` with the degenerate mark, e.g. ``"tiny LM ⚠ degenerate: loops, duplicates"``
    (pass the tags for figure labels, the reasons for tables); no reason: ``name`` unchanged."""
    return f"{name} {FLAG_MARK}: {reason}" if reason else name
