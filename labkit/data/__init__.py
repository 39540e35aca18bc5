"""Data registry: ``labkit.data.load("mqp")`` and friends. See :mod:`labkit.data.registry`."""

from labkit.data import catalog as _catalog  # noqa: F401  (registers the datasets)
from labkit.data.parsers import Meeting, Query, Turn, parse_pairs_csv
from labkit.data.registry import (
    USED,
    Dataset,
    Resolved,
    candidate_roots,
    fetch,
    get,
    keys,
    load,
    resolve,
    verify,
)

__all__ = [
    "USED",
    "Dataset",
    "Meeting",
    "Query",
    "Resolved",
    "Turn",
    "candidate_roots",
    "fetch",
    "get",
    "keys",
    "load",
    "parse_pairs_csv",
    "resolve",
    "verify",
]
