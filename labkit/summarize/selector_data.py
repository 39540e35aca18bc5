"""What the MiniLM turn selector learns from: transcript units and QMSum training labels.

**Units.** Turns are what QMSum labels (relevant spans are turn ranges) and what is selected;
sentences (those of at least ``min_words`` words, the candidates of every extractive system)
are what is embedded.

**Labels** (:func:`training_triplets`): a sentence of a turn inside one of a specific query's
relevant spans is a positive, a sentence of a turn of the same meeting outside them a hard
negative. A general query ("summarize the whole meeting") has no spans, so its positives are
the sentences a greedy ROUGE oracle picks against the reference. How they are trained on:
:mod:`labkit.summarize.selector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labkit import io
from labkit.errors import DataError
from labkit.summarize.data import Item, clean_text
from labkit.summarize.extractive import GreedyOracle, sentences

#: The query text of a general item (QMSum's general queries all ask this).
GENERAL_QUERY = "Summarize the whole meeting."
#: Turns a general query's greedy oracle chooses from: those sharing most words with the
#: reference (the oracle's cost grows with candidates x chosen turns).
ORACLE_POOL = 60


# --------------------------------------------------------------------------- units
def turn_text(speaker: str, content: str) -> str:
    """One turn as a transcript line: ``Speaker: text`` without QMSum's markers."""
    return clean_text(f"{speaker}: {content}")


def turn_units(lines: Sequence[str], min_words: int) -> tuple[list[int], list[list[str]]]:
    """The selectable turns (line indices) and each one's candidate sentences: a turn can be
    selected when it holds at least one sentence of ``min_words`` words. Concatenated, the
    sentences are exactly :func:`labkit.summarize.extractive.sentences` of the transcript, the
    list Centroid and TextRank embed (so the zero-shot selector embeds nothing new)."""
    index, cands = [], []
    for i, line in enumerate(lines):
        found = sentences(line, min_words)
        if found:
            index.append(i)
            cands.append(found)
    return index, cands


# --------------------------------------------------------------------------- training data
def _oracle_sentences(cands: list[str], reference: str) -> list[int]:
    """Indices (into ``cands``) a greedy ROUGE oracle picks for ``reference``, among the
    :data:`ORACLE_POOL` sentences sharing most words with it."""
    ref = set(reference.lower().split())
    pool = sorted(range(len(cands)), key=lambda i: -len(ref & set(cands[i].lower().split())))
    pool = sorted(pool[:ORACLE_POOL])
    probe = Item("oracle", "\n".join(cands[i] for i in pool), reference)
    chosen = GreedyOracle()._select([cands[i] for i in pool], probe, len(reference.split()))
    return [pool[i] for i in chosen]


@dataclass(frozen=True)
class TrainQuery:
    """One training query: its text, the transcript lines (turns) it is asked of, the turns
    that answer it (``None``: unknown, the greedy oracle's sentences against ``reference`` are
    the positives) and its kind (``general`` / ``specific``)."""

    anchor: str
    lines: tuple[str, ...]
    relevant: frozenset[int] | None
    reference: str
    kind: str


def queries_from_meetings(meetings: Sequence, max_meetings: int = 0) -> list[TrainQuery]:
    """QMSum training meetings (:class:`labkit.data.Meeting`): specific queries with their
    relevant spans (QMSum's turn ranges, inclusive), general queries with none (oracle)."""
    out = []
    for meeting in list(meetings)[: max_meetings or None]:
        lines = tuple(turn_text(t.speaker, t.content) for t in meeting.turns)
        for q in meeting.queries:
            relevant = (
                frozenset(i for a, b in q.spans for i in range(a, b + 1)) if q.kind == "specific" and q.spans else None
            )
            anchor = q.query.strip() if q.kind == "specific" else GENERAL_QUERY
            out.append(TrainQuery(anchor, lines, relevant, q.answer, q.kind))
    return out


def queries_from_items(items: Sequence[Item]) -> list[TrainQuery]:
    """A user's own training items (no relevant spans: the oracle labels every query)."""
    return [
        TrainQuery(it.query or GENERAL_QUERY, tuple(it.transcript.splitlines()), None, it.reference, it.kind)
        for it in items
    ]


def training_triplets(
    queries: Sequence[TrainQuery], *, seed: int, max_queries: int, min_words: int, positives_per_query: int
) -> dict[str, dict[str, list[str]]]:
    """``{"specific": {anchor, positive, negative}, "general": {...}}`` columns, seeded by
    ``seed``; the other arguments are the selector config's fields of the same names.

    Units are candidate sentences, labelled by their turn: a sentence of a turn inside one of
    the query's relevant spans is a positive, one of a turn outside them a hard negative; a
    query without spans (QMSum's general ones) takes the greedy oracle's sentences as its
    positives and any other sentence of its transcript as a negative. A general query trains
    with the triplet loss (one text for every meeting), every other with in-batch negatives.
    """
    rng = np.random.default_rng(seed)
    out = {kind: {"anchor": [], "positive": [], "negative": []} for kind in ("specific", "general")}
    units: dict[tuple[str, ...], list[tuple[int, str]]] = {}
    if max_queries and len(queries) > max_queries:
        queries = [queries[i] for i in sorted(rng.choice(len(queries), max_queries, replace=False))]
    for query in queries:
        if query.lines not in units:
            turns, per_turn = turn_units(query.lines, min_words)
            units[query.lines] = [(t, s) for t, found in zip(turns, per_turn) for s in found]
        flat = units[query.lines]
        if len(flat) < 2 or not query.anchor:
            continue
        if query.relevant is not None:
            positives = [k for k, (t, _) in enumerate(flat) if t in query.relevant]
            negatives = [k for k, (t, _) in enumerate(flat) if t not in query.relevant]
        else:
            positives = _oracle_sentences([s for _, s in flat], query.reference)
            chosen = set(positives)
            negatives = [k for k in range(len(flat)) if k not in chosen]
        if not positives or not negatives:
            continue
        cols = out["general" if query.anchor == GENERAL_QUERY else "specific"]
        for k in rng.permutation(len(positives))[:positives_per_query]:
            cols["anchor"].append(query.anchor)
            cols["positive"].append(flat[positives[k]][1])
            cols["negative"].append(flat[negatives[int(rng.integers(len(negatives)))]][1])
    if not out["specific"]["anchor"] and not out["general"]["anchor"]:
        raise DataError(
            f"no training triplets from {len(queries)} queries: none has an "
            f"answering sentence of at least {min_words} words"
        )
    return {kind: cols for kind, cols in out.items() if cols["anchor"]}


def data_key(queries: Sequence[TrainQuery]) -> str:
    """Content hash of what the triplets are drawn from (so a cache hit builds none)."""
    transcripts = {q.lines: io.sha256_text(*q.lines) for q in queries}
    return io.sha256_text(
        *[
            f"{q.kind}|{q.anchor}|{q.reference}|{transcripts[q.lines]}|"
            f"{sorted(q.relevant) if q.relevant is not None else None}"
            for q in queries
        ]
    )
