"""Sentence and turn embeddings for the summarization study, on :mod:`labkit.embedders`.

Centroid, TextRank, the MiniLM turn selectors and the meaning score all embed short texts
with a sentence-transformers model. They share one provider per model, built by
``labkit.embedders.make_embedder("st:<model>")``, and so its on-disk SQLite cache: a
sentence embedded for TextRank is not embedded again by the meaning score, and a rerun
embeds nothing it has seen.

Two things the providers do not do, added here (``labkit.embedders`` is shared infrastructure):

* **unit vectors**: ``Embedder.embed`` returns what the model returns (all-MiniLM-L6-v2 ends
  in a ``Normalize`` module, a fine-tuned or user model may not); every caller here uses
  cosine as a dot product, so :meth:`SentenceEmbedder.encode` normalises.
* **what an embedding cost**: a system's latency per item must include embedding its
  transcript even when the vectors come from a cache (or from the instruction before, which
  embedded the same transcript). :meth:`SentenceEmbedder.cost` gives the seconds the texts
  took when they were computed: measured in this process, or read back from a small JSON
  beside the cache that the computing process wrote.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from labkit import io
from labkit.embedders import make_embedder
from labkit.paths import cache_dir
from labkit.timing import timed

MINILM = "all-MiniLM-L6-v2"


class SentenceEmbedder:
    """Unit-length embeddings of texts with one sentence-transformers model.

    Args:
        model_name: a name or folder :func:`labkit.models.resolve` finds (offline default
            all-MiniLM-L6-v2; a fine-tuned selector's cache folder).
        batch_size: texts per forward pass.
        use_cache: the providers' SQLite cache on disk (off for latency benchmarks: every
            call embeds).
    """

    def __init__(self, model_name: str = MINILM, batch_size: int = 64, use_cache: bool = True):
        self.model_name = str(model_name)
        self.batch_size = batch_size
        self.use_cache = use_cache
        self._provider = None
        self._memo: dict[str, np.ndarray] = {}  # list hash -> vectors (this process)
        self._seconds: dict[str, float] = {}  # list hash -> seconds when computed

    @property
    def provider(self):
        """The :mod:`labkit.embedders` provider (built on first use: loading costs seconds)."""
        if self._provider is None:
            self._provider = make_embedder(f"st:{self.model_name}", cache=self.use_cache, batch_size=self.batch_size)
        return self._provider

    def _key(self, texts: Sequence[str]) -> str:
        return io.sha256_text(self.model_name, *texts)

    def _cost_file(self):
        return cache_dir("summaries", "_encode_seconds") / f"{io.sha256_text(self.model_name)[:16]}.json"

    def _stored_costs(self) -> dict[str, float]:
        path = self._cost_file()
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError):
            return {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``(len(texts), d)``, each row of unit length (empty input: ``(0, 0)``)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        key = self._key(texts)
        if key in self._memo:
            return self._memo[key]
        provider = self.provider
        before = provider.computed
        emb, seconds = timed(lambda: provider.embed(texts, progress=False))
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = (emb / np.maximum(norms, 1e-12)).astype(np.float32)
        computed = provider.computed - before
        if computed:  # scale a partly cached list up to what all of it would have cost
            self._seconds[key] = seconds * len(set(texts)) / computed
            if self.use_cache:
                store = self._stored_costs()
                store[key] = self._seconds[key]
                io.write_json(self._cost_file(), store)
        self._memo[key] = emb
        return emb

    def cost(self, texts: Sequence[str]) -> float:
        """Seconds embedding ``texts`` took when they were computed (0 for no texts).

        Call after :meth:`encode`. When every vector came from an earlier process's cache and
        that process left no timing, the seconds of this (cached) call are all there is: NaN
        is never returned, so a latency column stays numeric.
        """
        texts = list(texts)
        if not texts:
            return 0.0
        key = self._key(texts)
        if key not in self._seconds:
            stored = self._stored_costs().get(key)
            if stored is None:
                self._memo.pop(key, None)
                _, seconds = timed(lambda: self.encode(texts))
                stored = self._seconds.get(key, seconds)
            self._seconds[key] = float(stored)
        return self._seconds[key]


_SHARED: dict[tuple[str, bool], SentenceEmbedder] = {}


def shared_embedder(model_name: str = MINILM, use_cache: bool = True) -> SentenceEmbedder:
    """One embedder per model per process (one model load, one in-process memo)."""
    key = (str(model_name), bool(use_cache))
    if key not in _SHARED:
        _SHARED[key] = SentenceEmbedder(str(model_name), use_cache=use_cache)
    return _SHARED[key]
