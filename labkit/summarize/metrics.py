"""Scores and costs: ROUGE with bootstrap CIs, BERTScore when possible, length, latency, cost.

ROUGE follows the usual pitfalls list (notes/summarization_scaling.md): ``rouge_score`` with
the Porter stemmer on, and ROUGE-Lsum computed on one sentence per line (otherwise Lsum
silently equals ROUGE-L). Scores are F-measures x 100, averaged over items; 95% CIs come from
a percentile bootstrap over items, and :func:`paired_bootstrap` compares two systems on the
same items.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from labkit.errors import DataError, ParameterError
from labkit.text import one_sentence_per_line, token_counter

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def rouge_per_item(predictions: Sequence[str], references: Sequence[str]) -> pd.DataFrame:
    """One row per item, columns ``rouge1 .. rougeLsum`` (F x 100).

    An empty prediction scores 0; an empty reference is bad data and raises :class:`DataError`.
    """
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ParameterError(f"{len(predictions)} predictions but {len(references)} references")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    rows = []
    for i, (pred, ref) in enumerate(zip(predictions, references)):
        if not isinstance(ref, str) or not ref.strip():
            raise DataError(f"reference {i} has no text; every item needs a reference summary")
        scores = scorer.score(one_sentence_per_line(ref), one_sentence_per_line(pred or ""))
        rows.append({k: 100 * scores[k].fmeasure for k in ROUGE_TYPES})
    return pd.DataFrame(rows, columns=list(ROUGE_TYPES))


def bootstrap_ci(values: Sequence[float], n_resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap of the mean over items."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ParameterError("bootstrap_ci needs at least one value")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(x.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_resamples: int = 1000,
                     confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean of ``a - b`` over the same items, its CI, and the share of resamples with a > b."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ParameterError(f"paired_bootstrap needs scores on the same items ({a.size} vs {b.size})")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(n_resamples, diff.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return {"mean_diff": float(diff.mean()), "low": float(np.quantile(means, alpha)),
            "high": float(np.quantile(means, 1 - alpha)), "p_a_better": float((means > 0).mean())}


def rouge_summary(predictions: Sequence[str], references: Sequence[str],
                  n_resamples: int = 1000, seed: int = 0) -> dict[str, float]:
    """``{rouge1, rouge1_low, rouge1_high, ...}`` over the items."""
    per_item = rouge_per_item(predictions, references)
    out: dict[str, float] = {}
    for k in ROUGE_TYPES:
        mean, low, high = bootstrap_ci(per_item[k], n_resamples, seed=seed)
        out.update({k: mean, f"{k}_low": low, f"{k}_high": high})
    return out


def efficiency(latencies_s: Sequence[float], input_tokens: Sequence[int],
               output_tokens: Sequence[int]) -> dict[str, float]:
    """Seconds per transcript and tokens per second (input read, output written)."""
    total = float(np.sum(latencies_s))
    n = max(len(latencies_s), 1)
    return {"latency_s": total / n,
            "input_tokens_per_s": float(np.sum(input_tokens)) / total if total > 0 else float("nan"),
            "output_tokens_per_s": float(np.sum(output_tokens)) / total if total > 0 else float("nan")}


def cost_per_1000(system: str, latency_s: float, input_tokens: float, output_tokens: float,
                  price_table: Mapping[str, Mapping[str, float]]) -> float:
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
    per_item = (prices.get("usd_per_hour", 0.0) * latency_s / 3600
                + prices.get("usd_per_1m_input", 0.0) * input_tokens / 1e6
                + prices.get("usd_per_1m_output", 0.0) * output_tokens / 1e6)
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
    """A token counter from a real tokenizer (one counter for all systems keeps tokens/s comparable)."""
    return token_counter(model_name)
