"""A long-range recall probe: in-context associative recall whose answers sit in the far context.

Why: on held-out prose the queries of the KV-budget frontier barely need the far context
(StreamingLLM keeping 2% of the cache scored as the full cache in the reference run), so that
frontier cannot tell what a cache rule keeps. This probe can: it is multi-query associative
recall in the style of MQAR (Arora et al. 2023, "Zoology", arXiv 2312.04927). A prompt is
``bindings`` short sentences, each binding a *key* word to a *value* word (`` key value.``),
each closed by the anchor (``<AC>`` after the period for AC, the period itself for EP); then
one query per distance bucket repeats the key of the binding ``d`` sentences before the end of
the bindings, and the model must produce its value. The value of a binding is drawn at random,
so nothing but the binding sentence itself can supply it: a cache that dropped every trace of
that sentence must fail the query, and one that keeps a summary of it (an anchor) may not.

Keys and values are real words: the most frequent lower-case words of the training text that
the tokenizer encodes as one token (with their leading space), split into two disjoint sets.
Every sentence is therefore exactly 3 tokens (4 with ``<AC>``), every prompt has the same
length, and all prompts of a method run as one batch.

Training data (:func:`training_blocks`): documents of the same form with a random number of
bindings (``min_bindings``..``bindings``) followed by ``train_queries`` queries of uniformly
drawn earlier bindings, packed into ``context``-token blocks (documents joined by EOS) and
mixed with blocks of real text by :mod:`labkit.anchor.recall_lm` and
:func:`labkit.anchor.training.train_anchor_lm`. Evaluation prompts use a different seed
stream (:data:`EVAL_SEED_OFFSET`), so no training binding is ever queried.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from labkit.errors import DataError, ParameterError

__all__ = [
    "RecallProbe",
    "ProbeVocab",
    "RecallPrompts",
    "probe_vocab",
    "recall_prompts",
    "training_documents",
    "training_blocks",
    "EVAL_SEED_OFFSET",
]

#: evaluation prompts draw from ``seed + EVAL_SEED_OFFSET``, never from a training seed
EVAL_SEED_OFFSET = 1_000_003
_WORD = re.compile(r"(?<![A-Za-z'])[a-z]{3,12}(?![A-Za-z'])")


@dataclass(frozen=True)
class RecallProbe:
    """Sizes of the probe (all enter the model-cache key of models trained on it).

    Attributes:
        bindings: binding sentences per evaluation prompt (and most per training document).
        buckets: query distances, in sentences before the end of the bindings (one query per
            bucket per prompt); each must be in ``1..bindings``.
        keys / values: sizes of the key and value word sets (disjoint).
        min_bindings: fewest bindings of a training document (a mix of short and long
            documents: near recall is learnt first, as in a curriculum).
        train_queries: queries per training document (uniform over its bindings).
        share: share of the training blocks that are probe blocks (the rest is real text).
    """

    bindings: int = 64
    buckets: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    keys: int = 128
    values: int = 128
    min_bindings: int = 4
    train_queries: int = 32
    share: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.buckets, list):
            object.__setattr__(self, "buckets", tuple(self.buckets))
        for name in ("bindings", "keys", "values", "min_bindings", "train_queries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"RecallProbe.{name} must be a positive int, got {value!r}")
        if self.keys < self.bindings:
            raise ParameterError(
                f"RecallProbe.keys ({self.keys}) must be >= bindings "
                f"({self.bindings}): the keys of a prompt are distinct"
            )
        if self.min_bindings > self.bindings:
            raise ParameterError(
                f"RecallProbe.min_bindings ({self.min_bindings}) must be <= bindings ({self.bindings})"
            )
        if not self.buckets or any(
            isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= self.bindings for b in self.buckets
        ):
            raise ParameterError(f"RecallProbe.buckets must be distances in 1..{self.bindings}, got {self.buckets!r}")
        if len(set(self.buckets)) != len(self.buckets):
            raise ParameterError(f"RecallProbe.buckets lists a distance twice: {self.buckets!r}")
        if not 0 <= self.share < 1:
            raise ParameterError(f"RecallProbe.share must be in [0, 1), got {self.share!r}")

    def as_dict(self) -> dict:
        out = asdict(self)
        out["buckets"] = list(self.buckets)
        return out

    @property
    def far_buckets(self) -> tuple[int, ...]:
        """The distances in the far half of the bindings (``>= bindings / 2``)."""
        return tuple(b for b in self.buckets if 2 * b >= self.bindings)


@dataclass(frozen=True)
class ProbeVocab:
    """Token ids of the probe: key and value words (one token each, leading space), the period
    and the end-of-text token that separates training documents."""

    keys: tuple[int, ...]
    values: tuple[int, ...]
    period: int
    eos: int | None
    key_words: tuple[str, ...]
    value_words: tuple[str, ...]


def probe_vocab(
    tokenizer, documents: Sequence[str], probe: RecallProbe, seed: int = 0, max_chars: int = 2_000_000
) -> ProbeVocab:
    """The key and value words: the ``keys + values`` most frequent lower-case words of
    ``documents`` (first ``max_chars`` characters) that ``tokenizer`` encodes as one token with
    a leading space, shuffled by ``seed`` and split into keys and values.

    Raises :class:`DataError` when the text has too few such words.
    """
    counts: Counter = Counter()
    seen = 0
    for doc in documents:
        counts.update(_WORD.findall(doc))
        seen += len(doc)
        if seen >= max_chars:
            break
    need = probe.keys + probe.values
    chosen: list[tuple[str, int]] = []
    for word, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        ids = tokenizer.encode(" " + word, add_special_tokens=False)
        if len(ids) == 1:
            chosen.append((word, int(ids[0])))
            if len(chosen) == need:
                break
    if len(chosen) < need:
        raise DataError(
            f"the training text has {len(chosen)} one-token words, the recall probe "
            f"needs {need} (RecallProbe.keys + values): lower them"
        )
    order = np.random.default_rng(seed).permutation(need)
    picked = [chosen[i] for i in order]
    period = tokenizer.encode(".", add_special_tokens=False)
    if len(period) != 1:
        raise DataError("the tokenizer has no single '.' token, which the recall probe needs")
    keys, values = picked[: probe.keys], picked[probe.keys :]
    return ProbeVocab(
        tuple(i for _, i in keys),
        tuple(i for _, i in values),
        int(period[0]),
        tokenizer.eos_token_id,
        tuple(w for w, _ in keys),
        tuple(w for w, _ in values),
    )


def _sentences(keys: np.ndarray, values: np.ndarray, vocab: ProbeVocab, anchor: int | None) -> np.ndarray:
    """``(..., n, 3 or 4)`` token ids of sentences `` key value.`` (+ anchor id)."""
    parts = [keys, values, np.full_like(keys, vocab.period)]
    if anchor is not None:
        parts.append(np.full_like(keys, anchor))
    return np.stack(parts, axis=-1)


@dataclass
class RecallPrompts:
    """Evaluation prompts of one anchor form: ``context`` ``(N, Lc)`` (the bindings) and
    ``queries`` ``(N, Lq)`` (one query sentence per bucket, in a random order per prompt);
    ``key_index`` ``(N, Q)`` is the position in ``queries`` of each query's key, whose
    next-token prediction is scored against ``target`` ``(N, Q)``; ``distance`` ``(N, Q)`` is
    each query's bucket."""

    context: torch.Tensor
    queries: torch.Tensor
    key_index: torch.Tensor
    target: torch.Tensor
    distance: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.context.shape[0])


def recall_prompts(
    vocab: ProbeVocab, probe: RecallProbe, n_prompts: int, seed: int = 0, anchor: int | None = None
) -> RecallPrompts:
    """``n_prompts`` evaluation prompts; ``anchor`` is the id appended to every sentence (AC's
    ``<AC>``) or ``None`` (plain text: the full cache, the presses and EP). The same ``seed``
    gives the same bindings and queries for every ``anchor``, so methods are paired."""
    if isinstance(n_prompts, bool) or not isinstance(n_prompts, int) or n_prompts < 2:
        raise ParameterError(f"n_prompts must be an int >= 2 (bootstrap over prompts), got {n_prompts!r}")
    rng = np.random.default_rng(seed + EVAL_SEED_OFFSET)
    B, Q = probe.bindings, len(probe.buckets)
    keys = np.stack([rng.choice(len(vocab.keys), B, replace=False) for _ in range(n_prompts)])
    values = rng.integers(0, len(vocab.values), size=(n_prompts, B))
    order = np.stack([rng.permutation(Q) for _ in range(n_prompts)])
    distance = np.asarray(probe.buckets)[order]
    qkeys = np.take_along_axis(keys, B - distance, axis=1)
    qvalues = np.take_along_axis(values, B - distance, axis=1)
    kid, vid = np.asarray(vocab.keys), np.asarray(vocab.values)
    context = _sentences(kid[keys], vid[values], vocab, anchor).reshape(n_prompts, -1)
    queries = _sentences(kid[qkeys], vid[qvalues], vocab, anchor)
    width = queries.shape[-1]
    key_index = np.broadcast_to(np.arange(Q) * width, (n_prompts, Q))
    as_long = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.long)  # noqa: E731
    return RecallPrompts(
        as_long(context),
        as_long(queries.reshape(n_prompts, -1)),
        as_long(key_index),
        as_long(vid[qvalues]),
        as_long(distance),
    )


def training_documents(
    vocab: ProbeVocab, probe: RecallProbe, n_docs: int, seed: int = 0, anchor: int | None = None
) -> list[np.ndarray]:
    """``n_docs`` training documents (token id arrays, no EOS): ``min_bindings..bindings``
    bindings with distinct keys, then ``train_queries`` queries of earlier bindings."""
    rng = np.random.default_rng(seed)
    kid, vid = np.asarray(vocab.keys), np.asarray(vocab.values)
    docs = []
    for _ in range(n_docs):
        b = int(rng.integers(probe.min_bindings, probe.bindings + 1))
        keys = rng.choice(len(kid), b, replace=False)
        values = rng.integers(0, len(vid), size=b)
        asked = rng.integers(0, b, size=probe.train_queries)
        docs.append(
            np.concatenate(
                [
                    _sentences(kid[keys], vid[values], vocab, anchor).reshape(-1),
                    _sentences(kid[keys[asked]], vid[values[asked]], vocab, anchor).reshape(-1),
                ]
            )
        )
    return docs


def training_blocks(
    vocab: ProbeVocab, probe: RecallProbe, n_blocks: int, context: int, seed: int = 0, anchor: int | None = None
) -> torch.Tensor:
    """``(n_blocks, context)`` token ids of probe documents joined by EOS (a document may run
    across a block boundary, as real text does)."""
    if n_blocks < 1:
        return torch.zeros(0, context, dtype=torch.long)
    need = n_blocks * context
    mean_doc = (probe.min_bindings + probe.bindings) / 2 + probe.train_queries
    per_doc = (3 + (anchor is not None)) * mean_doc + 1
    stream: list[np.ndarray] = []
    total, round_ = 0, 0
    eos = np.asarray([vocab.eos] if vocab.eos is not None else [], dtype=np.int64)
    while total < need:
        docs = training_documents(vocab, probe, int(need / per_doc) + 8, seed + 7919 * round_, anchor)
        for d in docs:
            stream.extend((d, eos))
            total += d.size + eos.size
        round_ += 1
    ids = np.concatenate(stream)[:need]
    return torch.as_tensor(ids, dtype=torch.long).view(n_blocks, context)
