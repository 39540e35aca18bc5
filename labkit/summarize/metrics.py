"""Scores and costs: ROUGE with bootstrap CIs, length, latency, tokens per second, cost.

ROUGE follows the usual pitfalls list (notes/summarization_scaling.md): ``rouge_score`` with
the Porter stemmer on, and ROUGE-Lsum computed on one sentence per line (otherwise Lsum
silently equals ROUGE-L). Scores are F-measures x 100, averaged over items; every 95% interval
is :mod:`labkit.stats`' percentile bootstrap (over meetings where queries share one), and
paired comparisons use :func:`labkit.stats.paired_difference`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from labkit import stats
from labkit.errors import DataError, ParameterError
from labkit.io import sha256_text
from labkit.text import one_sentence_per_line, token_counter

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def rouge_tokenizer():
    """``rouge_score``'s own tokenizer with the Porter stemmer (the one ROUGE is reported with),
    remembering each word's stem: stemming is most of ROUGE's time, and the same meeting words
    are stemmed for every system, instruction type and reference."""
    from functools import lru_cache

    from nltk.stem import porter
    from rouge_score import tokenize, tokenizers

    global _TOKENIZER
    if _TOKENIZER is None:
        stem = lru_cache(maxsize=None)(porter.PorterStemmer().stem)

        class _Stemmer:
            def stem(self, word: str) -> str:
                return stem(word)

        class CachedStemTokenizer(tokenizers.Tokenizer):
            def tokenize(self, text):
                return tokenize.tokenize(text, _Stemmer())

        _TOKENIZER = CachedStemTokenizer()
    return _TOKENIZER


_TOKENIZER = None

#: (prediction, reference) -> the four F-measures; every table, paired test and the explorer's
#: per-item rows read the same scores, so each pair is scored once per process.
_ROUGE_MEMO: dict[tuple[str, str], tuple[float, ...]] = {}


def rouge_per_item(predictions: Sequence[str], references: Sequence[str]) -> pd.DataFrame:
    """One row per item, columns ``rouge1 .. rougeLsum`` (F x 100).

    An empty prediction scores 0; an empty reference is bad data and raises :class:`DataError`.
    """
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ParameterError(f"{len(predictions)} predictions but {len(references)} references")
    scorer = None
    rows = []
    for i, (pred, ref) in enumerate(zip(predictions, references)):
        if not isinstance(ref, str) or not ref.strip():
            raise DataError(f"reference {i} has no text; every item needs a reference summary")
        key = (pred or "", ref)
        if key not in _ROUGE_MEMO:
            scorer = scorer or rouge_scorer.RougeScorer(
                list(ROUGE_TYPES), use_stemmer=True, tokenizer=rouge_tokenizer()
            )
            scores = scorer.score(one_sentence_per_line(ref), one_sentence_per_line(pred or ""))
            _ROUGE_MEMO[key] = tuple(100 * scores[k].fmeasure for k in ROUGE_TYPES)
        rows.append(_ROUGE_MEMO[key])
    return pd.DataFrame(rows, columns=list(ROUGE_TYPES), dtype=float)


def mean_intervals(
    per_item: pd.DataFrame,
    columns: Sequence[str],
    n_resamples: int = 1000,
    seed: int = 0,
    groups: Sequence | None = None,
) -> dict[str, float]:
    """``{col, col_low, col_high}`` per column: the mean over items and its percentile-bootstrap
    95% interval (:func:`labkit.stats.interval`; ``groups`` resamples whole meetings, since the
    queries of one meeting share a transcript and are not independent)."""
    out: dict[str, float] = {}
    for col in columns:
        out.update(
            stats.interval(per_item[col].to_numpy(float), groups=groups, n_resamples=n_resamples, seed=seed).as_dict(
                col
            )
        )
    return out


def rouge_summary(
    predictions: Sequence[str],
    references: Sequence[str],
    n_resamples: int = 1000,
    seed: int = 0,
    groups: Sequence | None = None,
) -> dict[str, float]:
    """``{rouge1, rouge1_low, rouge1_high, ...}`` over the items."""
    return mean_intervals(rouge_per_item(predictions, references), ROUGE_TYPES, n_resamples, seed, groups)


def efficiency(
    latencies_s: Sequence[float], input_tokens: Sequence[int], output_tokens: Sequence[int]
) -> dict[str, float]:
    """Seconds per transcript and tokens per second (input read, output written)."""
    total = float(np.sum(latencies_s))
    n = max(len(latencies_s), 1)
    return {
        "latency_s": total / n,
        "input_tokens_per_s": float(np.sum(input_tokens)) / total if total > 0 else float("nan"),
        "output_tokens_per_s": float(np.sum(output_tokens)) / total if total > 0 else float("nan"),
    }


def cost_per_1000(
    system: str,
    latency_s: float,
    input_tokens: float,
    output_tokens: float,
    price_table: Mapping[str, Mapping[str, float]],
) -> float:
    """USD per 1,000 summaries from a price table.

    ``price_table[system]`` (or ``price_table["default"]``) holds ``usd_per_hour`` (a machine
    you rent: cost = time) and/or ``usd_per_1m_input`` / ``usd_per_1m_output`` (an API).
    ``input_tokens`` / ``output_tokens`` are means per summary.
    """
    prices = price_table.get(system, price_table.get("default"))
    if prices is None:
        raise ParameterError(f"price_table has no entry for system {system!r} and no 'default'")
    unknown = set(prices) - {"usd_per_hour", "usd_per_1m_input", "usd_per_1m_output"}
    if unknown:
        raise ParameterError(f"price_table[{system!r}] has unknown keys {sorted(unknown)}")
    per_item = (
        prices.get("usd_per_hour", 0.0) * latency_s / 3600
        + prices.get("usd_per_1m_input", 0.0) * input_tokens / 1e6
        + prices.get("usd_per_1m_output", 0.0) * output_tokens / 1e6
    )
    return 1000 * per_item


def pareto_front(frame: pd.DataFrame, quality: str, cost: str) -> pd.Series:
    """Boolean mask: rows no other row beats on both (higher ``quality``, lower ``cost``)."""
    q, c = frame[quality].to_numpy(float), frame[cost].to_numpy(float)
    mask = []
    for i in range(len(frame)):
        dominated = np.any((q >= q[i]) & (c <= c[i]) & ((q > q[i]) | (c < c[i])))
        mask.append(bool(not dominated and np.isfinite(q[i]) and np.isfinite(c[i])))
    return pd.Series(mask, index=frame.index, dtype=bool)


def count_tokens_with(model_name: str = "all-MiniLM-L6-v2") -> Callable[[str], int]:
    """A token counter from a real tokenizer (one counter for all systems keeps tokens/s
    comparable) that remembers each text's count: QMSum asks about eight queries of each
    ten-thousand-word transcript, and every table counts its tokens again."""

    count = token_counter(model_name)
    seen: dict[str, int] = {}

    def remembered(text: str) -> int:
        key = sha256_text(text)
        if key not in seen:
            seen[key] = count(text)
        return seen[key]

    return remembered
