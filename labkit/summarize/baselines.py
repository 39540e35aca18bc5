"""Calibration baselines (floors): what ROUGE gives text that does not summarize *this* meeting.

QMSum's references share a generic vocabulary, so ROUGE is far from zero for text that knows
nothing about the meeting or the query. Two baselines put that floor in the main table, scored
through the same ROUGE + bootstrap path as every system, and like every extractive system they
stop at the first sentence that reaches the instruction type's target length (so a floor and
a system are compared at the same length, :mod:`labkit.summarize.floors`):

* :class:`ConstantSummary`: for each query kind (general / specific) and target length, the
  training reference of that kind that, cut to the target length, has the highest mean ROUGE
  (ROUGE-1 and ROUGE-2 F, stemmed, as ``rouge_score`` tokenizes) against the *other* training
  references of that kind, returned unchanged for every test item of that kind. A system that
  does not beat it has not shown that it reads the transcript or the query.
* :class:`RandomSentences`: transcript sentences in a seeded random order up to the target
  length, in transcript order.

Both report ``kind = "baseline"``; the constant one is degenerate by construction (one output
for every item) and :mod:`labkit.summarize.guards` marks it so. Lead-k, the third floor, is in
:mod:`labkit.summarize.extractive`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from labkit import io
from labkit.errors import DataError, ParameterError
from labkit.summarize.base import Summarizer
from labkit.summarize.data import Instruction, Item
from labkit.summarize.extractive import sentences, take_budget
from labkit.summarize.metrics import rouge_tokenizer


def _count_matrices(token_lists: Sequence[list[str]], n: int, vocab: dict) -> tuple[list, list, list]:
    """``(rows, columns, counts)`` of n-gram counts (columns from ``vocab``, grown as new
    n-grams appear)."""
    rows, cols, vals = [], [], []
    for r, tokens in enumerate(token_lists):
        grams = Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        for gram, count in grams.items():
            rows.append(r)
            cols.append(vocab.setdefault(gram, len(vocab)))
            vals.append(count)
    return rows, cols, vals


def _clipped_overlap(a_parts, b_parts, shape_a: int, shape_b: int, width: int) -> np.ndarray:
    """``sum_g min(a[g], b[g])`` for every pair of rows: ``min(x, y)`` is the number of
    thresholds ``t >= 1`` both counts reach, so the clipped overlap is a sum of sparse products
    of 0/1 matrices ``[a >= t] [b >= t]^T`` (exact, and fast for a thousand references where
    a Python double loop over pairs takes a minute)."""
    from scipy import sparse

    a = sparse.csr_matrix((a_parts[2], (a_parts[0], a_parts[1])), shape=(shape_a, width))
    b = sparse.csr_matrix((b_parts[2], (b_parts[0], b_parts[1])), shape=(shape_b, width))
    out = np.zeros((shape_a, shape_b))
    top = int(max(a.max() if a.nnz else 0, b.max() if b.nnz else 0))
    for t in range(1, top + 1):
        at, bt = (a >= t).astype(np.float64), (b >= t).astype(np.float64)
        if not at.nnz or not bt.nnz:
            break
        out += (at @ bt.T).toarray()
    return out


def best_constant(references: Sequence[str], candidates: Sequence[str] | None = None) -> tuple[int, np.ndarray]:
    """Index of the candidate with the highest mean ROUGE-1/2 F against the references, and
    every candidate's mean score (x 100).

    ``candidates[i]`` is taken to be derived from ``references[i]`` (default: the references
    themselves; the study passes them cut to a target length), so candidate ``i`` is never
    judged against reference ``i``. n-grams are counted with ``rouge_score``'s own stemming
    tokenizer, so the values equal ``rouge_score``'s ROUGE-1/2 F.
    """

    refs = list(references)
    cands = refs if candidates is None else list(candidates)
    if len(refs) < 2:
        raise ParameterError(f"the constant baseline needs at least 2 training references, got {len(refs)}")
    if len(cands) != len(refs):
        raise ParameterError(f"best_constant needs one candidate per reference ({len(cands)} vs {len(refs)})")
    tok = rouge_tokenizer()
    ref_tokens, cand_tokens = [], []
    for i, (ref, cand) in enumerate(zip(refs, cands)):
        tokens = tok.tokenize(ref or "")
        if not tokens:
            raise DataError(f"training reference {i} has no words; every item needs a reference")
        ref_tokens.append(tokens)
        cand_tokens.append(tok.tokenize(cand or "") or tokens[:1])
    n = len(refs)
    score = np.zeros((n, n))
    for order in (1, 2):
        vocab: dict = {}
        c = _count_matrices(cand_tokens, order, vocab)
        r = _count_matrices(ref_tokens, order, vocab)
        overlap = _clipped_overlap(c, r, n, n, len(vocab))
        c_len = np.array([max(len(t) - order + 1, 0) for t in cand_tokens], dtype=float)
        r_len = np.array([max(len(t) - order + 1, 0) for t in ref_tokens], dtype=float)
        total = c_len[:, None] + r_len[None, :]
        # F = 2PR / (P + R) = 2 * overlap / (candidate n-grams + reference n-grams)
        score += 0.5 * np.divide(2 * overlap, total, out=np.zeros_like(overlap), where=total > 0)
    np.fill_diagonal(score, 0.0)
    means = 100 * score.sum(axis=1) / (n - 1)
    return int(np.argmax(means)), means


def cut_to_words(text: str, words: int) -> str:
    """The first ``words`` words of ``text`` (whole text when shorter)."""
    parts = text.split()
    return text.strip() if len(parts) <= words else " ".join(parts[:words])


class ConstantSummary(Summarizer):
    """One training reference per query kind and target length, returned for every item of
    that kind (see :func:`best_constant`; chosen lazily, the first time a kind and length are
    asked for).

    Args:
        train: training items (their references are the candidates and the judges). A query
            kind with fewer than two training references falls back to all of them.
    """

    kind = "baseline"
    is_floor = True

    def __init__(self, train: Sequence[Item], name: str = "Constant (best train reference)", warn=None):
        super().__init__(name, batch_size=64, warn=warn)
        if not train:
            raise ParameterError("ConstantSummary needs the training items (argument 'train'); none were given")
        self.train = list(train)
        if len(self.train) < 2:
            raise ParameterError(f"the constant baseline needs at least 2 training references, got {len(self.train)}")
        self._chosen: dict[tuple[str, int], dict[str, Any]] = {}

    def _pool(self, kind: str) -> list[Item]:
        pool = [it for it in self.train if it.kind == kind]
        return pool if len(pool) >= 2 else self.train

    def choice(self, kind: str, words: int) -> dict[str, Any]:
        """The constant text for query kind ``kind`` at ``words`` target words, and why."""
        key = (kind, int(words))
        if key not in self._chosen:
            pool = self._pool(kind)
            refs = [it.reference for it in pool]
            cands = [cut_to_words(r, words) for r in refs]
            index, means = best_constant(refs, cands)
            self._chosen[key] = {
                "summary": cands[index],
                "chosen_reference": pool[index].source or pool[index].item_id,
                "train_candidates": len(pool),
                "train_mean_rouge12_f": round(float(means[index]), 2),
            }
        return self._chosen[key]

    def fingerprint(self) -> dict[str, Any]:
        return {
            "class": type(self).__name__,
            "rule": "per-kind-length-v2",
            "train": io.sha256_text(*[f"{it.kind}|{it.reference}" for it in self.train]),
        }

    def describe(self) -> dict[str, Any]:
        """What the run record keeps about this baseline (which reference, how it was chosen)."""
        return {
            "rule": "per query kind and target length, the training reference of that kind "
            "that, cut to the target length, has the highest mean ROUGE-1/2 F "
            "against the other training references of that kind; returned for "
            "every item of that kind",
            "chosen": {
                f"{kind} | {words} words": {k: v for k, v in c.items() if k != "summary"}
                for (kind, words), c in self._chosen.items()
            },
        }

    def _summarize_batch(self, items: Sequence[Item], inst: Instruction) -> list[str]:
        return [self.choice(item.kind, inst.target_words)["summary"] for item in items]


class RandomSentences(Summarizer):
    """Random transcript sentences up to the target length (seeded per item and seed)."""

    kind = "baseline"
    is_floor = True

    def __init__(self, seed: int = 0, name: str = "Random sentences", min_words: int = 5, warn=None):
        super().__init__(name, batch_size=64, warn=warn)
        self.seed = int(seed)
        self.min_words = min_words

    def fingerprint(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "seed": self.seed, "min_words": self.min_words}

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "rule": "random transcript sentences (>= min_words words) "
            "until the instruction's target length is reached, in transcript order",
        }

    def _rng(self, item: Item) -> np.random.Generator:
        # seeded by item, not by position: the same item gets the same draw in any batch
        digest = hashlib.sha256(f"{self.seed}|{item.item_id}|{item.transcript}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def _summarize_batch(self, items: Sequence[Item], inst: Instruction) -> list[str]:
        out = []
        for item in items:
            cands = sentences(item.transcript, self.min_words) or sentences(item.transcript, 1)
            order = self._rng(item).permutation(len(cands))
            out.append("\n".join(cands[i] for i in take_budget(order, cands, inst.target_words)))
        return out
