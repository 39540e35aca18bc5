"""The :class:`Embedder` base class every provider builds on: batching, cache, progress, retries.

It lives apart from the providers so that the registry (:mod:`.registry`), the local models
(:mod:`.local_providers`) and the APIs (:mod:`.api_providers`) all depend on one small module
and never on each other. Every embedder has the same surface, ``fit(texts)`` (a no-op unless the
provider learns from the corpus, like TF-IDF) then ``embed(texts)``, so callers never need to
ask which kind they hold.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit.embedders.cache import EmbeddingCache
from labkit.errors import DataError, ParameterError, ProviderError


@dataclass(frozen=True)
class RetryPolicy:
    """How API calls are retried: ``attempts`` tries, waits of ``base_s * 2**i`` (capped)."""

    attempts: int = 5
    base_s: float = 1.0
    max_s: float = 30.0


class Retryable(Exception):
    """A transient API failure (rate limit, 5xx, timeout, connection): worth another try."""


def check_texts(texts: Sequence[str]) -> list[str]:
    """Raise :class:`DataError` naming the index of the first empty or non-string text."""
    if isinstance(texts, str):
        raise DataError("embed() takes a list of texts, got a single string")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise DataError(f"text {i} is not a string (got {type(text).__name__}: {text!r:.60})")
        if not text.strip():
            raise DataError(f"text {i} is empty")
    return out


class Embedder:
    """Base class: batching, cache, progress and retries. Subclasses implement ``_embed_batch``
    and, to be reachable from a spec string, register with
    :func:`labkit.embedders.registry.register_provider`."""

    is_local = True
    use_disk_cache = True

    def __init__(
        self,
        spec: str,
        name: str,
        model_key: str,
        *,
        batch_size: int = 64,
        cache: bool = True,
        retry: RetryPolicy = RetryPolicy(),
    ):
        if batch_size < 1:
            raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
        self.spec, self.name, self.model_key = spec, name, model_key
        self.batch_size = batch_size
        self.retry = retry
        self.use_cache = cache and self.use_disk_cache
        self._cache_db = None
        self.computed = 0  # texts embedded (not read from the cache) by this object

    @classmethod
    def from_spec(cls, prefix: str, argument: str, **options: Any) -> Embedder:
        """Build from the part of a spec after ``prefix:``. ``options`` always holds ``cache``
        and ``device``, and ``batch_size`` / ``retry`` when the caller gave them; a subclass
        overrides this to parse its argument or drop options it has no use for."""
        return cls(argument, **options)

    @property
    def _cache(self):
        """The on-disk cache, opened on first use (a skipped provider leaves no file)."""
        if self.use_cache and self._cache_db is None:
            self._cache_db = EmbeddingCache(self.model_key)
        return self._cache_db

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"

    def available(self) -> tuple[bool, str]:
        """``(True, "")`` or ``(False, reason)`` (an API key missing, a client not installed)."""
        return True, ""

    def fit(self, texts: Sequence[str]) -> Embedder:
        """Learn from the corpus before embedding it. Pretrained models learn nothing, so this
        does nothing; providers that do (TF-IDF + LSA) override it. Returns ``self``."""
        return self

    def preflight(self) -> None:
        """Called once before the first text is computed (not when everything is cached): a
        cheap check that fails in seconds where the real calls would fail after minutes of
        retries. Local models need none; API providers check that their server is reachable."""

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def _order(self, texts: list[str]) -> list[int]:
        """Order in which missing texts are embedded (local models: longest first, as
        sentence-transformers does, so batches pad little)."""
        return list(range(len(texts)))

    def _call(self, texts: list[str]) -> np.ndarray:
        for attempt in range(self.retry.attempts):
            try:
                return np.asarray(self._embed_batch(texts), dtype=np.float32)
            except Retryable as exc:
                if attempt + 1 == self.retry.attempts:
                    raise ProviderError(
                        f"{self.spec}: gave up after {self.retry.attempts} "
                        f"attempts ({exc}); batches finished before this are "
                        "cached, rerun to continue"
                    ) from None
                time.sleep(min(self.retry.max_s, self.retry.base_s * 2**attempt))
        raise AssertionError("unreachable")

    def embed(self, texts: Sequence[str], *, progress: bool = True) -> np.ndarray:
        """float32 array ``(len(texts), d)``, rows in input order."""
        from tqdm.auto import tqdm

        texts = check_texts(texts)
        ok, reason = self.available()
        if not ok:
            raise ProviderError(f"{self.spec} is not available: {reason}")
        vectors: list[np.ndarray | None] = self._cache.get(texts) if self._cache is not None else [None] * len(texts)
        missing = list(dict.fromkeys(t for t, v in zip(texts, vectors) if v is None))
        if missing:
            self.preflight()
            order = [missing[i] for i in self._order(missing)]
            done: dict[str, np.ndarray] = {}
            step = self._chunk_size()
            with tqdm(
                total=len(order), desc=f"embedding ({self.name})", unit="text", disable=not progress, leave=False
            ) as bar:
                for start in range(0, len(order), step):
                    chunk = order[start : start + step]
                    out = self._call(chunk)
                    if out.shape[0] != len(chunk):
                        raise ProviderError(f"{self.spec} returned {out.shape[0]} vectors for {len(chunk)} texts")
                    if self._cache is not None:
                        self._cache.put(chunk, out)
                    done.update(zip(chunk, out))
                    self.computed += len(chunk)
                    bar.update(len(chunk))
            vectors = [v if v is not None else done[t] for t, v in zip(texts, vectors)]
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack(vectors).astype(np.float32, copy=False)

    def _chunk_size(self) -> int:
        return self.batch_size
