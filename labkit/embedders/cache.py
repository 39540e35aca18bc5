"""On-disk embedding cache: nothing is computed, or paid for, twice.

One SQLite file per model key (provider, model, dimensions, pooling) under
``labkit.paths.cache_dir("embeddings")``; one row per text, keyed by the sha256 of the text,
holding the float32 vector. SQLite commits are atomic, so an interrupted run (an API outage half
way) keeps every batch it finished and never leaves a half-written vector.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labkit.paths import cache_dir

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors of one model key, looked up and stored by text hash."""

    def __init__(self, model_key: str, folder: Path | None = None):
        folder = Path(folder) if folder is not None else cache_dir("embeddings")
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(model_key.encode()).hexdigest()[:12]
        self.path = folder / f"{_SAFE.sub('_', model_key)[:80]}-{digest}.sqlite"
        self.model_key = model_key
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, dim INTEGER, vec BLOB)")
        self._db.commit()

    def get(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        """The cached vector of each text, or ``None`` where there is none."""
        keys = [text_key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 900):  # SQLite's parameter limit
            chunk = unique[start : start + 900]
            rows = self._db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            for key, blob in rows:
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return [found.get(k) for k in keys]

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store one batch in a single transaction."""
        vectors = np.asarray(vectors, dtype=np.float32)
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                [(text_key(t), int(v.shape[0]), v.tobytes()) for t, v in zip(texts, vectors)],
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        self._db.close()
