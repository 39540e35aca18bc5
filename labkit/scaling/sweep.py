"""Our own scaling sweep: tiny decoders over model sizes N x token budgets D, and unique n-grams.

Every grid point is a run whose learning-rate schedule is matched to its own budget (Chinchilla's
point: a run stopped early on a longer schedule overstates the loss), cached by config hash, so
re-running the notebook only trains what is new. With ``schedule="wsd"`` (the default profiles)
the budgets of one size are branches of one warmup-stable-decay run (:mod:`labkit.lm.wsd`): each
budget still ends in its own cool-down, but they share the constant-rate part, which makes the
sweep about a third cheaper; with ``"cosine"`` every grid point is its own run. N is the
non-embedding parameter count (Kaplan's convention), measured on the trained model. Each chain
(WSD) or grid point (cosine) is an independent task (:func:`train_unit`, dispatched by
:func:`labkit.cluster.map_tasks`), so a Dask cluster trains them in parallel.

:func:`unique_ngrams` counts the distinct token n-grams in the first D tokens of the training
stream: the empirical counterpart of Kausik's U(D).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from labkit.carbon import DEFAULT_COUNTRY, CarbonSession, Measurement
from labkit.cluster import map_tasks
from labkit.errors import ParameterError
from labkit.io import sha256_text
from labkit.lm import (
    TinyLMConfig,
    corpus_documents,
    encode_documents,
    train_tiny_lm,
    train_tokenizer,
)
from labkit.lm.corpus import DOC_SEPARATOR
from labkit.lm.train import heldout_ids, recipe
from labkit.lm.wsd import chain_configs, train_chain
from labkit.modelcache import lookup

SIZE_FIELDS = ("hidden_size", "num_layers", "num_heads", "intermediate_size")


def grid_chains(sizes: Sequence[dict[str, Any]], budgets: Sequence[int], base: dict[str, Any]):
    """The grid as one list of :class:`labkit.lm.TinyLMConfig` per size (its budgets in order).

    A size may carry its own ``budgets`` (token budgets D of that size only); sizes without
    one use ``budgets``. That is how the default sweep is shaped: small models get the long
    budgets (hundreds to thousands of tokens per parameter, where the loss bends towards its
    floor E), large ones the short budgets (where the data term dominates), so every term of
    L = E + A/N^α + B/D^β matters somewhere in the grid at a fraction of a full grid's cost.
    WSD sizes get their shared warm-up made explicit (:func:`labkit.lm.wsd.chain_configs`).
    """

    if not sizes:
        raise ParameterError("the sweep needs at least one model size and one token budget")
    chains = []
    for i, size in enumerate(sizes):
        unknown = set(size) - {*SIZE_FIELDS, "budgets"}
        if unknown:
            raise ParameterError(
                f"sweep size {i}: unknown field(s) {sorted(unknown)}; use "
                "hidden_size, num_layers, num_heads, intermediate_size, budgets"
            )
        own = size.get("budgets")
        mine = budgets if own is None else own
        if not mine:
            raise ParameterError(
                f"sweep size {i}: no token budget (give sweep_budgets or the "
                "size's own budgets); the sweep needs at least one model size "
                "and one token budget"
            )
        shape = {k: v for k, v in size.items() if k != "budgets"}
        chain = [TinyLMConfig(**{**base, **shape, "train_tokens": int(d)}) for d in mine]
        chains.append(chain_configs(chain) if chain[0].schedule == "wsd" else chain)
    return chains


def grid_configs(sizes: Sequence[dict[str, Any]], budgets: Sequence[int], base: dict[str, Any]):
    """One :class:`labkit.lm.TinyLMConfig` per (size, budget), in size-major order (see
    :func:`grid_chains`)."""
    return [config for chain in grid_chains(sizes, budgets, base) for config in chain]


@dataclass(frozen=True)
class SweepUnit:
    """One task: the grid points of one WSD chain (one size), or one cosine grid point;
    everything a worker needs, nothing it must share.

    ``country`` sets the carbon intensity of the worker's own energy measurement.
    """

    configs: tuple  # of labkit.lm.TinyLMConfig (imported lazily: this module loads without torch)
    country: str = DEFAULT_COUNTRY

    def __repr__(self) -> str:  # short: it names the unit in a failed task's message
        c = self.configs[0]
        budgets = ", ".join(str(x.train_tokens) for x in self.configs)
        return f"SweepUnit(hidden_size={c.hidden_size}, num_layers={c.num_layers}, train_tokens=[{budgets}])"


def train_unit(unit: SweepUnit) -> list[dict[str, Any]]:
    """Train (or load from the shared model cache) the grid points of one unit: args in, rows out.

    Pure in the sense a task scheduler needs: the result depends only on ``unit`` (the configs
    carry the seed) and the cache, so any worker may run it and a re-run trains only what the
    cache lacks. Training is measured in a carbon session of the worker's own; its
    measurements come back as plain dicts (``energy``) for the caller to fold into its session.

    Returns:
        One sweep row per config (see :func:`run_sweep`) plus ``cached`` (bool) and ``energy``
        (list of :class:`labkit.carbon.Measurement` dicts of that config's training; empty on a hit).
    """

    hits = [lookup(rec.kind, rec.key) for rec, _, _ in map(recipe, unit.configs)]
    with CarbonSession(unit.country) as session:
        if unit.configs[0].schedule == "wsd":
            models = train_chain(unit.configs, carbon=session)
        else:
            models = [train_tiny_lm(c, progress=False, carbon=session) for c in unit.configs]
    rows = []
    for config, model, hit in zip(unit.configs, models, hits):
        task = f"train_{model.name.split('/')[-1]}"
        energy = [] if hit is not None else [m.as_dict() for m in session.measurements if m.task == task]
        rows.append({**_row(config, model.name, model.metrics), "cached": hit is not None, "energy": energy})
    return rows


def _row(config, name: str, m: dict[str, Any]) -> dict[str, Any]:
    return {
        "hidden_size": config.hidden_size,
        "num_layers": config.num_layers,
        "N": m["non_embedding_params"],
        "N_total": m["total_params"],
        "D": m["train_tokens"],
        "tokens_per_param": m["train_tokens"] / m["non_embedding_params"],
        "loss": m["heldout_loss"],
        "heldout_tokens": m.get("heldout_tokens"),
        "train_loss": m["train_loss"],
        "steps": m["steps"],
        "epochs": m.get("epochs"),
        "wall_s": m["wall_s"],
        "energy_kwh": m["energy_kwh"],
        "branched_from_step": m.get("branched_from_step", 0),
        "name": name,
    }


def run_sweep(
    sizes: Sequence[dict[str, int]], budgets: Sequence[int], base: dict[str, Any], *, carbon=None, client=None
) -> pd.DataFrame:
    """Train (or load) every grid point, each as its own task, and return one row per run.

    The units go through :func:`labkit.cluster.map_tasks` (a tqdm bar over the units): on
    ``client`` or the cluster named by ``$LABKIT_DASK_SCHEDULER`` they train in parallel on
    its workers, else one after another in this process. Either way each unit goes through the
    shared model cache, so a re-run trains only the grid points it lacks.

    Args:
        sizes, budgets, base: the grid (see :func:`grid_configs`).
        carbon: an open :class:`labkit.carbon.CarbonSession`; the energy measured where each
            unit trained is added to it as one measurement per training (none for cache hits),
            and its country is the units' country.
        client: a ``distributed.Client`` to run the units on (default: see above).

    Returns:
        Columns ``hidden_size, num_layers, N`` (non-embedding), ``N_total, D`` (tokens seen),
        ``tokens_per_param`` (D/N), ``loss`` (held-out, nats/token), ``heldout_tokens`` (tokens
        it was scored on), ``train_loss, steps, epochs`` (passes over the training stream),
        ``wall_s, energy_kwh, name``.
        ``attrs["trained"]`` counts the units trained by this call (the others were cache hits).
    """

    country = getattr(carbon, "country", None) or DEFAULT_COUNTRY
    units = []
    for chain in grid_chains(sizes, budgets, base):
        if chain[0].schedule == "wsd":
            units.append(SweepUnit(tuple(chain), country))
        else:
            units += [SweepUnit((config,), country) for config in chain]
    rows = [row for unit_rows in map_tasks(train_unit, units, desc="scaling sweep", client=client) for row in unit_rows]
    if carbon is not None:
        for row in rows:
            carbon.measurements.extend(Measurement(**m) for m in row["energy"])
    frame = pd.DataFrame([{k: v for k, v in row.items() if k not in ("cached", "energy")} for row in rows])
    frame.attrs["trained"] = sum(not row["cached"] for row in rows)
    return frame


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


def unique_ngrams(ids: Sequence[int] | np.ndarray, ns: Iterable[int], token_counts: Iterable[int]) -> pd.DataFrame:
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


def _stream(base: dict[str, Any]):
    """The sweep's tokenizer and its train / held-out documents (same corpus, split, vocab)."""

    config = TinyLMConfig(**{**base, "train_tokens": 1, "schedule": "cosine"})  # corpus and vocab only
    train_docs, held_docs = corpus_documents(config.corpus, config.heldout_fraction)
    train_sha = sha256_text(DOC_SEPARATOR.join(train_docs))
    tokenizer = train_tokenizer(DOC_SEPARATOR.join(train_docs), config.vocab_size, text_sha256=train_sha)
    return config, tokenizer, train_docs, held_docs, train_sha


def corpus_token_ids(base: dict[str, Any]) -> np.ndarray:
    """The training token stream the sweep's models see (same corpus, split and tokenizer)."""

    _, tokenizer, train_docs, _, train_sha = _stream(base)
    return encode_documents(tokenizer, train_docs, cache_key=f"{tokenizer.name_or_path}|{train_sha}")


def corpus_token_counts(base: dict[str, Any]) -> dict[str, int]:
    """How much text the sweep has, in its own tokens: the training stream, each corpus's share
    of it and the held-out text. This is what bounds the design: a budget over the stream's
    length is more than one epoch, and repeated data no longer count as fresh tokens D."""

    config, tokenizer, train_docs, held_docs, train_sha = _stream(base)
    stream = encode_documents(tokenizer, train_docs, cache_key=f"{tokenizer.name_or_path}|{train_sha}")
    out = {"train_stream_tokens": int(len(stream))}
    # the stream is each corpus's training documents in turn, each ended by </s>: a corpus's
    # share ends at the </s> of its last document, so the cached stream answers without
    # encoding the text again (13 s of the default run); a text that itself encodes to </s>
    # breaks that count, and then the corpus is encoded on its own
    doc_ends = np.flatnonzero(stream == tokenizer.eos_token_id)
    done_docs, done_tokens = 0, 0
    for key in config.corpus:
        own, _ = corpus_documents([key], config.heldout_fraction)
        if len(doc_ends) == len(train_docs):
            end = int(doc_ends[done_docs + len(own) - 1]) + 1
            count, done_docs, done_tokens = end - done_tokens, done_docs + len(own), end
        else:
            count = len(encode_documents(tokenizer, own))
        out[f"{key}_train_tokens"] = int(count)
    out["heldout_tokens"] = int(len(heldout_ids(tokenizer, DOC_SEPARATOR.join(held_docs), None)))
    return out
