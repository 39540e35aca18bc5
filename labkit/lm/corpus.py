"""Training and held-out text for labkit's tiny LMs, split by whole documents.

Documents are kept whole so that no held-out document leaks into training through a shared
window: ``tinyshakespeare`` is cut at blank lines (one speech per document), ``qmsum`` gives one
meeting transcript per document. The held-out documents are the ``heldout_fraction`` of each
corpus with the smallest sha256 of their text: deterministic, independent of file order, and
spread over the whole corpus rather than one tail.

QMSum's ``test`` split is never trained on (the summarization study evaluates on it), and is
not part of the held-out text either, so the held-out size follows ``heldout_fraction``.

Documents are remembered per process, keyed by the sha256 of the files they were parsed from
(:func:`labkit.data.registry.resolve` hashes them anyway): a sweep of 25 tiny models used to
parse QMSum's 233 JSON files three times per model (about 3 s of each run's 8).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

from labkit.data import load, registry
from labkit.errors import DataError, ParameterError

DOC_SEPARATOR = "\n\n"


def _shakespeare_docs() -> list[str]:

    text = load("tinyshakespeare")
    return [d.strip() for d in text.split("\n\n") if d.strip()]


def _qmsum_docs() -> list[str]:

    splits = load("qmsum")
    return [m.transcript for split in ("train", "val") for m in splits.get(split, []) if m.transcript.strip()]


CORPORA: dict[str, Callable[[], list[str]]] = {
    "tinyshakespeare": _shakespeare_docs,
    "qmsum": _qmsum_docs,
}


#: parsed documents per (corpus key, loader, file hashes); a changed file is a new entry
_MEMO: dict[tuple, tuple[str, ...]] = {}


def _documents(key: str) -> list[str]:
    """The documents of one corpus, parsed once per process per content of its files."""

    loader = CORPORA[key]
    try:
        resolved = registry.resolve(key)
    except Exception:  # not a file dataset we can hash first: parse every time, as before
        return list(loader())
    memo = (key, id(loader), tuple(sorted(resolved.sha256.items())))
    if memo not in _MEMO:
        _MEMO[memo] = tuple(loader())
    else:  # the run record lists the data a notebook used: note it as load() would
        registry.USED[key] = resolved
    return list(_MEMO[memo])


def check_keys(keys: Sequence[str]) -> tuple[str, ...]:
    """Validate corpus keys; raise :class:`ParameterError` naming the bad key and the choices."""
    if isinstance(keys, str):
        keys = (keys,)
    keys = tuple(keys)
    if not keys:
        raise ParameterError(f"corpus must name at least one of {sorted(CORPORA)}, got ()")
    for key in keys:
        if key not in CORPORA:
            raise ParameterError(
                f"unknown corpus key {key!r} in parameter 'corpus'; labkit.lm trains on: {', '.join(sorted(CORPORA))}"
            )
    if len(set(keys)) != len(keys):
        raise ParameterError(f"corpus lists a key twice: {keys}")
    return keys


def split_documents(docs: Sequence[str], heldout_fraction: float) -> tuple[list[str], list[str]]:
    """Deterministic document-level split: the smallest-sha256 fraction is held out.

    Order inside each part follows the input order.
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise ParameterError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    n = len(docs)
    n_held = max(1, math.ceil(heldout_fraction * n)) if n > 1 else 0
    digests = sorted(range(n), key=lambda i: hashlib.sha256(docs[i].encode("utf-8")).hexdigest())
    held = set(digests[:n_held])
    train = [d for i, d in enumerate(docs) if i not in held]
    heldout = [d for i, d in enumerate(docs) if i in held]
    return train, heldout


def corpus_documents(
    keys: Sequence[str] = ("tinyshakespeare", "qmsum"), heldout_fraction: float = 0.05
) -> tuple[list[str], list[str]]:
    """Train and held-out *documents* of the named corpora (see :func:`corpus_splits`)."""
    train, heldout = [], []
    for key in check_keys(keys):
        docs = _documents(key)
        if len(docs) < 2:
            raise DataError(f"corpus {key!r} has {len(docs)} document(s); need at least 2 to hold one out")
        t, h = split_documents(docs, heldout_fraction)
        train += t
        heldout += h
    return train, heldout


def corpus_splits(
    keys: Sequence[str] = ("tinyshakespeare", "qmsum"), heldout_fraction: float = 0.05
) -> tuple[str, str]:
    """``(train_text, heldout_text)``: whole documents joined by blank lines.

    Deterministic; the held-out documents are never part of the training text.
    """
    train, heldout = corpus_documents(keys, heldout_fraction)
    return DOC_SEPARATOR.join(train), DOC_SEPARATOR.join(heldout)
