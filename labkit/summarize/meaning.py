"""A meaning-based score beside ROUGE, offline: MiniLM sentence cosine to the reference.

ROUGE counts shared words; a summary that says the right things in other words scores low and
word salad in the references' vocabulary scores high. This score asks, for each *reference*
sentence, how close the closest *summary* sentence is in meaning (cosine of normalised
all-MiniLM-L6-v2 embeddings through :mod:`labkit.summarize.encoders`, i.e. the
``labkit.embeddings`` provider and its on-disk cache), and averages
over reference sentences: a recall of the reference's content by meaning, x 100 so it sits on
ROUGE's scale. An empty summary scores 0. It needs no network and no second scoring model
(BERTScore's roberta-large is not available offline).

:meth:`MeaningScorer.summary` adds :mod:`labkit.stats` 95% intervals, exactly as ROUGE's;
:func:`rank_disagreement` says where ranking systems by ROUGE-1 and by this score disagree.
It is a second opinion, not ground truth: MiniLM also rewards on-topic generic sentences.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from labkit.errors import ParameterError
from labkit.summarize.encoders import MINILM, shared_embedder
from labkit.summarize.metrics import mean_intervals
from labkit.text import one_sentence_per_line

MEANING = "minilm_cos"  # column name in the scores table
MEANING_LABEL = "MiniLM-cos"


def split_sentences(text: str) -> list[str]:
    """Sentences (and lines) of ``text``, the unit the embedder compares."""
    return [s.strip() for s in one_sentence_per_line(text).splitlines() if s.strip()]


class MeaningScorer:
    """Scores summaries against references with one shared embedder (one model load, one
    memo and the on-disk cache for every system scored in a process).

    Args:
        model_name: a sentence-transformers model labkit can resolve offline.
    """

    def __init__(self, model_name: str = MINILM):
        self.model_name = model_name
        self.embedder = shared_embedder(model_name)
        self._vectors: dict[str, np.ndarray] = {}

    def _embed(self, texts: Sequence[str]) -> None:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            self._vectors.update(zip(missing, self.embedder.encode(missing)))

    def per_item(self, predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
        """One score per item: mean over reference sentences of the max cosine to a summary
        sentence, x 100 (0 for an empty summary)."""
        if len(predictions) != len(references):
            raise ParameterError(f"{len(predictions)} predictions but {len(references)} references")
        pred_s = [split_sentences(p) for p in predictions]
        ref_s = [split_sentences(r) for r in references]
        self._embed([s for group in pred_s + ref_s for s in group])
        out = np.zeros(len(predictions))
        for i, (ps, rs) in enumerate(zip(pred_s, ref_s)):
            if not ps or not rs:
                continue
            p = np.stack([self._vectors[s] for s in ps])
            r = np.stack([self._vectors[s] for s in rs])
            out[i] = 100 * float(np.mean(np.max(r @ p.T, axis=1)))
        return out

    def summary(
        self,
        predictions: Sequence[str],
        references: Sequence[str],
        n_resamples: int = 1000,
        seed: int = 0,
        groups: Sequence | None = None,
    ) -> dict[str, float]:
        """``{minilm_cos, minilm_cos_low, minilm_cos_high}`` with a bootstrap 95% interval."""
        scores = pd.DataFrame({MEANING: self.per_item(predictions, references)})
        return mean_intervals(scores, [MEANING], n_resamples, seed, groups)


_SHARED: dict[str, MeaningScorer] = {}


def shared_scorer(model_name: str = MINILM) -> MeaningScorer:
    """One scorer per model per process, so references are embedded once for all systems."""
    if model_name not in _SHARED:
        _SHARED[model_name] = MeaningScorer(model_name)
    return _SHARED[model_name]


def rank_disagreement(scores: pd.DataFrame, quality: str = "rouge1", meaning: str = MEANING) -> pd.DataFrame:
    """Per instruction, each system's rank by ROUGE-1 and by the meaning score (1 = best).

    Columns ``instruction, system, kind, rank_rouge1, rank_meaning, rank_shift`` (meaning rank
    minus ROUGE rank: positive means ROUGE flatters the system) and ``disagree``.
    """
    rows = []
    for inst, group in scores.groupby("instruction", sort=False):
        r1 = group[quality].rank(ascending=False, method="min")
        rm = group[meaning].rank(ascending=False, method="min")
        for idx, row in group.iterrows():
            rows.append(
                {
                    "instruction": inst,
                    "system": row["system"],
                    "kind": row["kind"],
                    quality: float(row[quality]),
                    meaning: float(row[meaning]),
                    f"rank_{quality}": int(r1[idx]),
                    "rank_meaning": int(rm[idx]),
                    "rank_shift": int(rm[idx] - r1[idx]),
                    "disagree": bool(rm[idx] != r1[idx]),
                }
            )
    return pd.DataFrame(rows)
