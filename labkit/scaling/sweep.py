"""Our own scaling sweep: tiny decoders over model sizes N x token budgets D, and unique n-grams.

Every grid point is a separate :func:`labkit.lm.train_tiny_lm` run with its own cosine schedule
matched to its budget (Chinchilla's point: a run stopped early on a longer schedule overstates
the loss), cached by config hash, so re-running the notebook only trains what is new. N is the
non-embedding parameter count (Kaplan's convention), measured on the trained model.

:func:`unique_ngrams` counts the distinct token n-grams in the first D tokens of the training
stream: the empirical counterpart of Kausik's U(D).
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from labkit.errors import ParameterError


def grid_configs(sizes: Sequence[dict[str, int]], budgets: Sequence[int], base: dict[str, Any]):
    """One :class:`labkit.lm.TinyLMConfig` per (size, budget), in size-major order."""
    from labkit.lm import TinyLMConfig

    if not sizes or not budgets:
        raise ParameterError("the sweep needs at least one model size and one token budget")
    for i, size in enumerate(sizes):
        unknown = set(size) - {"hidden_size", "num_layers", "num_heads", "intermediate_size"}
        if unknown:
            raise ParameterError(f"sweep size {i}: unknown field(s) {sorted(unknown)}; use "
                                 "hidden_size, num_layers, num_heads, intermediate_size")
    return [TinyLMConfig(**{**base, **size, "train_tokens": int(d)})
            for size in sizes for d in budgets]


def run_sweep(sizes: Sequence[dict[str, int]], budgets: Sequence[int], base: dict[str, Any], *,
              carbon=None, progress: bool = True) -> pd.DataFrame:
    """Train (or load) every grid point and return one row per run.

    Returns:
        Columns ``hidden_size, num_layers, N`` (non-embedding), ``N_total, D`` (tokens seen),
        ``loss`` (held-out, nats/token), ``train_loss, steps, epochs, wall_s, energy_kwh, name``.
    """
    from labkit.lm import train_tiny_lm

    rows = []
    configs = grid_configs(sizes, budgets, base)
    for config in tqdm(configs, desc="scaling sweep", unit="model", disable=not progress):
        lm = train_tiny_lm(config, progress=False, carbon=carbon)
        m = lm.metrics
        rows.append({"hidden_size": config.hidden_size, "num_layers": config.num_layers,
                     "N": m["non_embedding_params"], "N_total": m["total_params"],
                     "D": m["train_tokens"], "loss": m["heldout_loss"],
                     "train_loss": m["train_loss"], "steps": m["steps"],
                     "epochs": m.get("epochs"), "wall_s": m["wall_s"],
                     "energy_kwh": m["energy_kwh"], "name": lm.name})
    return pd.DataFrame(rows)


def _ngram_keys(ids: np.ndarray, n: int) -> np.ndarray:
    """One uint64 per n-gram: exact when n * 16 bits fit (ids < 65,536, n <= 4), else a
    multiplicative hash (collisions at the 2^-64 level, negligible for these counts)."""
    ids = np.asarray(ids, dtype=np.uint64)
    if len(ids) < n:
        return np.empty(0, dtype=np.uint64)
    windows = np.lib.stride_tricks.sliding_window_view(ids, n)
    if n <= 4 and int(ids.max(initial=0)) < 1 << 16:
        shifts = np.arange(n - 1, -1, -1, dtype=np.uint64) * np.uint64(16)
        return (windows << shifts).sum(axis=1, dtype=np.uint64)
    key = np.zeros(len(windows), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            key = key * np.uint64(0x9E3779B97F4A7C15) + windows[:, j] + np.uint64(1)
    return key


def unique_ngrams(ids: Sequence[int] | np.ndarray, ns: Iterable[int],
                  token_counts: Iterable[int]) -> pd.DataFrame:
    """Distinct n-grams among the first D tokens, for each n and D.

    Returns:
        Columns ``n, D, unique, share`` (unique / number of n-grams in the prefix).
    """
    ids = np.asarray(ids)
    rows = []
    for n in ns:
        if n < 1:
            raise ParameterError(f"n-gram order {n} must be >= 1")
        keys = _ngram_keys(ids, n)
        # first occurrence of each key: the count of distinct keys in a prefix is the number of
        # first occurrences inside it, so one sort answers every D at once
        _, first = np.unique(keys, return_index=True)
        first.sort()
        for d in token_counts:
            d = int(min(d, len(ids)))
            count = int(np.searchsorted(first, d - n + 1)) if d >= n else 0
            rows.append({"n": n, "D": d, "unique": count, "share": count / max(1, d - n + 1)})
    return pd.DataFrame(rows)


def token_budget_grid(max_tokens: int, points: int = 12, min_tokens: int = 1000) -> np.ndarray:
    """Log-spaced prefix lengths for the U(D) curve."""
    return np.unique(np.geomspace(min_tokens, max_tokens, points).astype(int))


def corpus_token_ids(base: dict[str, Any]) -> np.ndarray:
    """The training token stream the sweep's models see (same corpus, split and tokenizer)."""
    from labkit.io import sha256_text
    from labkit.lm import TinyLMConfig, corpus_documents, encode_documents, train_tokenizer
    from labkit.lm.corpus import DOC_SEPARATOR

    config = TinyLMConfig(**{**base, "train_tokens": 1})
    train_docs, _ = corpus_documents(config.corpus, config.heldout_fraction)
    train_sha = sha256_text(DOC_SEPARATOR.join(train_docs))
    tokenizer = train_tokenizer(DOC_SEPARATOR.join(train_docs), config.vocab_size,
                                text_sha256=train_sha)
    return encode_documents(tokenizer, train_docs, cache_key=f"{tokenizer.name_or_path}|{train_sha}")
