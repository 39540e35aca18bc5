"""Extractive baselines: Lead-k, centroid and TextRank over MiniLM embeddings, greedy oracle.

All four pick whole sentences of the (marker-free) transcript until the instruction type's
word budget is reached and return them in transcript order, one per line (so ROUGE-Lsum sees
sentence boundaries). They share the candidate filter: sentences with fewer than
``min_words`` words ("OK .", "Yeah .") are never candidates, so the comparison isolates how
sentences are *chosen*. The oracle reads the reference: it is an upper bound, not a system.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from labkit import io
from labkit.paths import cache_dir
from labkit.summarize.base import Summarizer
from labkit.summarize.data import Instruction, Item
from labkit.text import transcript_sentences

sentences = transcript_sentences  # the candidates every extractive system chooses from


def _take_budget(order: Sequence[int], cands: Sequence[str], budget: int) -> list[int]:
    """Walk ``order`` and keep sentences until ``budget`` words; return them in text order."""
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
    """The first sentences of the meeting, as many as fit the word budget."""

    def __init__(self, name: str = "Lead-k", **kwargs):
        super().__init__(name, **kwargs)

    def _select(self, cands, item, budget):
        return _take_budget(range(len(cands)), cands, budget)


class SentenceEmbedder:
    """MiniLM sentence embeddings, normalised, cached on disk per model + sentence list."""

    def __init__(self, model_name: str = "all-MiniLM-L6-v2", batch_size: int = 64,
                 use_cache: bool = True):
        self.model_name = model_name
        self.batch_size = batch_size
        self.use_cache = use_cache  # off for latency benchmarks: every call embeds
        self._model = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        key = io.sha256_text(self.model_name, *texts)
        path = cache_dir("summaries", "_embeddings") / f"{key}.npy"
        if self.use_cache and path.is_file():
            return np.load(path)
        if self._model is None:
            from labkit.models import load_sentence_transformer
            self._model = load_sentence_transformer(self.model_name)
        emb = self._model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
        emb = emb.astype(np.float32)
        with io.atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, emb)
        return emb


class _Embedded(ExtractiveSummarizer):
    def __init__(self, name: str, embedder: SentenceEmbedder | None = None,
                 redundancy: float = 0.9, **kwargs):
        super().__init__(name, **kwargs)
        self.embedder = embedder or SentenceEmbedder()
        self.redundancy = redundancy

    def fingerprint(self):
        return {**super().fingerprint(), "embedder": self.embedder.model_name,
                "redundancy": self.redundancy}

    def _scores(self, emb: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _select(self, cands, item, budget):
        emb = self.embedder.encode(cands)
        order = np.argsort(-self._scores(emb), kind="stable")
        kept: list[int] = []
        for i in order:  # skip near-duplicates of what is already chosen
            if kept and float(np.max(emb[kept] @ emb[i])) > self.redundancy:
                continue
            kept.append(int(i))
            if sum(len(cands[j].split()) for j in kept) >= budget:
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
        from rouge_score import tokenizers
        self._tokenizer = tokenizers.DefaultTokenizer(use_stemmer=True)

    def _grams(self, text: str) -> tuple[Counter, Counter]:
        tokens = self._tokenizer.tokenize(text)
        return Counter(tokens), Counter(zip(tokens, tokens[1:]))

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
        grams = [(g1, g2, sum(g1.values()), sum(g2.values()))
                 for g1, g2 in (self._grams(c) for c in cands)]
        chosen: list[int] = []
        sel1, sel2 = Counter(), Counter()
        o1 = o2 = p1 = p2 = 0
        best_score, words = 0.0, 0
        while words < budget:
            best = None
            for i, (g1, g2, l1, l2) in enumerate(grams):
                if i in chosen or not l1:
                    continue
                score = (self._f(o1 + self._gain(sel1, g1, ref1), p1 + l1, n1)
                         + self._f(o2 + self._gain(sel2, g2, ref2), p2 + l2, n2))
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
