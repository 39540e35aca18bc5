"""Extractive baselines: Lead-k, centroid and TextRank over MiniLM embeddings, greedy oracle.

(The query-focused MiniLM turn selectors live in :mod:`labkit.summarize.selector`.)

All four pick whole sentences of the (marker-free) transcript until the instruction type's
word budget is reached and return them in transcript order, one per line (so ROUGE-Lsum sees
sentence boundaries). They share the candidate filter: sentences with fewer than
``min_words`` words ("OK .", "Yeah .") are never candidates, so the comparison isolates how
sentences are *chosen*. The oracle reads the reference: it is an upper bound, not a system.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from labkit import io
from labkit.summarize.base import Summarizer
from labkit.summarize.data import Instruction, Item
from labkit.summarize.encoders import SentenceEmbedder, shared_embedder
from labkit.summarize.metrics import rouge_tokenizer
from labkit.text import transcript_sentences
from labkit.timing import timed

sentences = transcript_sentences  # the candidates every extractive system chooses from

__all__ = ["Centroid", "GreedyOracle", "LeadK", "SentenceEmbedder", "TextRank", "sentences"]


def take_budget(order: Sequence[int], cands: Sequence[str], budget: int) -> list[int]:
    """Walk ``order`` and keep sentences until ``budget`` words are reached (the sentence that
    reaches it included, as every extractive system and floor does); return them in text order."""
    chosen, words = [], 0
    for i in order:
        if words >= budget:
            break
        chosen.append(int(i))
        words += len(cands[i].split())
    return sorted(chosen)


class ExtractiveSummarizer(Summarizer):
    kind = "extractive"

    def __init__(self, name: str, min_words: int = 5, batch_size: int = 8, warn=None):
        super().__init__(name, batch_size=batch_size, warn=warn)
        self.min_words = min_words

    def fingerprint(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "min_words": self.min_words}

    def _select(self, cands: list[str], item: Item, budget: int) -> list[int]:
        raise NotImplementedError

    def _summarize_batch(self, items: Sequence[Item], inst: Instruction) -> list[str]:
        out = []
        for item in items:
            cands = sentences(item.transcript, self.min_words)
            if not cands:  # every sentence is shorter than min_words: fall back to all of them
                cands = sentences(item.transcript, 1)
            out.append("\n".join(cands[i] for i in self._select(cands, item, inst.target_words)))
        return out


class LeadK(ExtractiveSummarizer):
    """The first sentences of the meeting up to the word budget (a floor: it reads no query)."""

    is_floor = True

    def __init__(self, name: str = "Lead-k", **kwargs):
        super().__init__(name, **kwargs)

    def _select(self, cands, item, budget):
        return take_budget(range(len(cands)), cands, budget)


class _Embedded(ExtractiveSummarizer):
    """Ranks a transcript's sentences from their embeddings (one ranking per transcript, kept in
    memory: every query and instruction type of a meeting reuses it).

    Each item's latency is the ranking and selection time plus what embedding its sentences
    cost when they were computed (:meth:`SentenceEmbedder.cost`), so the three instruction
    types, and a rerun on cached vectors, report the same per-item cost.
    """

    def __init__(self, name: str, embedder: SentenceEmbedder | None = None, redundancy: float = 0.9, **kwargs):
        super().__init__(name, **kwargs)
        self.embedder = embedder or shared_embedder()
        self.redundancy = redundancy
        self._rankings: dict[str, tuple[np.ndarray, float]] = {}

    def fingerprint(self):
        return {**super().fingerprint(), "embedder": self.embedder.model_name, "redundancy": self.redundancy}

    def _scores(self, emb: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _ranking(self, cands: list[str], emb: np.ndarray) -> tuple[np.ndarray, float]:
        key = io.sha256_text(*cands)
        if key not in self._rankings:
            order, seconds = timed(lambda: np.argsort(-self._scores(emb), kind="stable"), None)
            self._rankings[key] = (order, seconds)
        return self._rankings[key]

    def _summarize_batch(self, items: Sequence[Item], inst: Instruction) -> list[str]:
        out, seconds = [], []
        for item in items:
            cands = sentences(item.transcript, self.min_words) or sentences(item.transcript, 1)
            emb = self.embedder.encode(cands)
            order, rank_s = self._ranking(cands, emb)
            chosen, select_s = timed(lambda: self._pick(order, cands, emb, inst.target_words), None)
            out.append("\n".join(cands[i] for i in chosen))
            seconds.append(self.embedder.cost(cands) + rank_s + select_s)
        self._item_seconds = seconds
        return out

    def _pick(self, order: np.ndarray, cands: list[str], emb: np.ndarray, budget: int) -> list[int]:
        kept: list[int] = []
        words = 0
        for i in order:  # skip near-duplicates of what is already chosen
            if kept and float(np.max(emb[kept] @ emb[i])) > self.redundancy:
                continue
            kept.append(int(i))
            words += len(cands[i].split())
            if words >= budget:
                break
        return sorted(kept)


class Centroid(_Embedded):
    """Sentences closest (cosine) to the mean embedding of the meeting (Radev et al. 2004)."""

    def __init__(self, name: str = "Centroid (MiniLM)", **kwargs):
        super().__init__(name, **kwargs)

    def _scores(self, emb):
        centroid = emb.mean(axis=0)
        return emb @ (centroid / (np.linalg.norm(centroid) + 1e-12))


class TextRank(_Embedded):
    """PageRank over a k-nearest-neighbour cosine graph of the sentences (Mihalcea & Tarau)."""

    def __init__(self, name: str = "TextRank (MiniLM)", neighbours: int = 10, **kwargs):
        super().__init__(name, **kwargs)
        self.neighbours = neighbours

    def fingerprint(self):
        return {**super().fingerprint(), "neighbours": self.neighbours}

    def _scores(self, emb):
        import networkx as nx

        n = len(emb)
        sim = emb @ emb.T
        np.fill_diagonal(sim, -np.inf)
        graph = nx.Graph()
        graph.add_nodes_from(range(n))
        k = min(self.neighbours, n - 1)
        if k > 0:
            nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            for i in range(n):
                for j in nearest[i]:
                    weight = float(sim[i, j])
                    if weight > 0:
                        graph.add_edge(i, int(j), weight=weight)
        rank = nx.pagerank(graph, weight="weight")
        return np.array([rank[i] for i in range(n)])


class GreedyOracle(ExtractiveSummarizer):
    """Upper bound: greedily add the sentence that most raises ROUGE-1 F + ROUGE-2 F against the
    reference (Nallapati et al. 2017), until nothing helps or the word budget is used."""

    def __init__(self, name: str = "Oracle (greedy)", **kwargs):
        super().__init__(name, **kwargs)
        self._tokenizer = rouge_tokenizer()
        # sentence -> its n-grams: a meeting's sentences are candidates for each of its queries
        # and instruction types, and stemming them again each time was most of the oracle's cost
        self._gram_memo: dict[str, tuple[Counter, Counter]] = {}

    def _grams(self, text: str) -> tuple[Counter, Counter]:
        if text not in self._gram_memo:
            tokens = self._tokenizer.tokenize(text)
            self._gram_memo[text] = (Counter(tokens), Counter(zip(tokens, tokens[1:])))
        return self._gram_memo[text]

    @staticmethod
    def _f(overlap: int, pred: int, ref: int) -> float:
        if overlap == 0 or pred == 0 or ref == 0:
            return 0.0
        p, r = overlap / pred, overlap / ref
        return 2 * p * r / (p + r)

    @staticmethod
    def _gain(sel: Counter, add: Counter, ref: Counter) -> int:
        """Clipped n-gram overlap that ``add`` contributes on top of ``sel``."""
        return sum(min(sel[g] + c, ref[g]) - min(sel[g], ref[g]) for g, c in add.items() if g in ref)

    def _select(self, cands, item, budget):
        ref1, ref2 = self._grams(item.reference)
        n1, n2 = sum(ref1.values()), sum(ref2.values())
        grams = [(g1, g2, sum(g1.values()), sum(g2.values())) for g1, g2 in (self._grams(c) for c in cands)]
        chosen: list[int] = []
        sel1, sel2 = Counter(), Counter()
        o1 = o2 = p1 = p2 = 0
        best_score, words = 0.0, 0
        while words < budget:
            best = None
            for i, (g1, g2, l1, l2) in enumerate(grams):
                if i in chosen or not l1:
                    continue
                score = self._f(o1 + self._gain(sel1, g1, ref1), p1 + l1, n1) + self._f(
                    o2 + self._gain(sel2, g2, ref2), p2 + l2, n2
                )
                if score > best_score + 1e-9:
                    best_score, best = score, i
            if best is None:
                break
            g1, g2, l1, l2 = grams[best]
            o1, o2 = o1 + self._gain(sel1, g1, ref1), o2 + self._gain(sel2, g2, ref2)
            p1, p2 = p1 + l1, p2 + l2
            sel1.update(g1)
            sel2.update(g2)
            chosen.append(best)
            words += len(cands[best].split())
        return sorted(chosen) or [0]
