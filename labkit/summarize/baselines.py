"""Calibration baselines: what ROUGE gives text that does not summarize *this* meeting.

QMSum's references share a generic vocabulary, so ROUGE is far from zero for text that knows
nothing about the meeting. Two baselines put that floor in the main table, scored through the
same ROUGE + bootstrap path as every system:

* :class:`ConstantSummary`: one training-split reference, the one with the highest mean ROUGE
  (ROUGE-1 and ROUGE-2 F, stemmed, as ``rouge_score`` tokenizes) against the *other* training
  references, returned unchanged for every test item. A system that does not beat it has not
  shown that it reads the transcript.
* :class:`RandomSentences`: transcript sentences in a seeded random order, kept while they fit
  the item's reference length (at least one), in transcript order. It reads the reference's
  *length* (like the oracle reads its words), so it is a calibration, not a system.

Both report ``kind = "baseline"``; the constant one is degenerate by construction (one output
for every item) and :mod:`labkit.summarize.guards` marks it so.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any, Sequence

import numpy as np

from labkit import io
from labkit.errors import DataError, ParameterError
from labkit.summarize.base import Summarizer
from labkit.summarize.data import Instruction, Item
from labkit.summarize.extractive import sentences


def _f(overlap: int, pred: int, ref: int) -> float:
    if not overlap or not pred or not ref:
        return 0.0
    p, r = overlap / pred, overlap / ref
    return 2 * p * r / (p + r)


def best_constant(references: Sequence[str]) -> tuple[int, np.ndarray]:
    """Index of the reference with the highest mean ROUGE-1/2 F against all the others, and
    every reference's mean score (x 100).

    Counts n-grams with ``rouge_score``'s own stemming tokenizer, so the values equal
    ``rouge_score``'s ROUGE-1/2 F; all pairs cost milliseconds for a few hundred references.
    """
    from rouge_score import tokenizers

    refs = [r for r in references]
    if len(refs) < 2:
        raise ParameterError(f"the constant baseline needs at least 2 training references, "
                             f"got {len(refs)}")
    tok = tokenizers.DefaultTokenizer(use_stemmer=True)
    grams = []
    for i, ref in enumerate(refs):
        tokens = tok.tokenize(ref or "")
        if not tokens:
            raise DataError(f"training reference {i} has no words; every item needs a reference")
        grams.append((Counter(tokens), Counter(zip(tokens, tokens[1:]))))
    n = len(grams)
    score = np.zeros((n, n))
    for i in range(n):
        c1, c2 = grams[i]
        l1, l2 = sum(c1.values()), sum(c2.values())
        for j in range(i + 1, n):
            d1, d2 = grams[j]
            m1, m2 = sum(d1.values()), sum(d2.values())
            s = 0.5 * (_f(sum((c1 & d1).values()), l1, m1) + _f(sum((c2 & d2).values()), l2, m2))
            score[i, j] = score[j, i] = s  # F is symmetric in prediction and reference
    means = 100 * score.sum(axis=1) / (n - 1)
    return int(np.argmax(means)), means


class ConstantSummary(Summarizer):
    """The best single training reference, returned for every item (see :func:`best_constant`).

    Args:
        train: training items (their references are the candidates and the judges).
    """

    kind = "baseline"

    def __init__(self, train: Sequence[Item], name: str = "Constant (best train reference)",
                 warn=None):
        super().__init__(name, batch_size=64, warn=warn)
        if not train:
            raise ParameterError("ConstantSummary needs the training items (argument 'train'); "
                                 "none were given")
        refs = [it.reference for it in train]
        index, means = best_constant(refs)
        self.summary = refs[index]
        self.source = train[index].source or train[index].item_id
        self.train_score = float(means[index])
        self.candidates = len(refs)

    def fingerprint(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "summary": io.sha256_text(self.summary)}

    def describe(self) -> dict[str, Any]:
        """What the run record keeps about this baseline (which reference, how it was chosen)."""
        return {"chosen_reference": self.source, "train_candidates": self.candidates,
                "train_mean_rouge12_f": round(self.train_score, 2),
                "rule": "training reference with the highest mean ROUGE-1/2 F against the "
                        "other training references, returned for every item"}

    def _summarize_batch(self, items: Sequence[Item], inst: Instruction) -> list[str]:
        return [self.summary for _ in items]


class RandomSentences(Summarizer):
    """Random transcript sentences up to the reference's length (seeded per item and seed)."""

    kind = "baseline"

    def __init__(self, seed: int = 0, name: str = "Random sentences", min_words: int = 5,
                 warn=None):
        super().__init__(name, batch_size=64, warn=warn)
        self.seed = int(seed)
        self.min_words = min_words

    def fingerprint(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "seed": self.seed, "min_words": self.min_words}

    def describe(self) -> dict[str, Any]:
        return {"seed": self.seed, "rule": "random transcript sentences (>= min_words words) "
                "up to the reference's word count, in transcript order"}

    def _rng(self, item: Item) -> np.random.Generator:
        # seeded by item, not by position: the same item gets the same draw in any batch
        digest = hashlib.sha256(f"{self.seed}|{item.item_id}|{item.transcript}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def _summarize_batch(self, items: Sequence[Item], inst: Instruction) -> list[str]:
        out = []
        for item in items:
            cands = sentences(item.transcript, self.min_words) or sentences(item.transcript, 1)
            budget = len(item.reference.split())
            chosen, used = [], 0
            for i in self._rng(item).permutation(len(cands)):
                size = len(cands[i].split())
                if chosen and used + size > budget:
                    continue
                chosen.append(int(i))
                used += size
                if used >= budget:
                    break
            out.append("\n".join(cands[i] for i in sorted(chosen)))
        return out
