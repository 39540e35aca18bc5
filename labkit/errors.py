"""One family of errors a person can act on.

Every bad input that labkit can recognise (a missing file, a bad CSV row, an unknown model,
no network and no mirror) raises a subclass of :class:`LabkitError` whose message names what
was wrong and where, and how to fix it. Notebooks and the CLI show only that message, never a
traceback from deep inside a library.
"""

from __future__ import annotations


class LabkitError(Exception):
    """Base class: the message alone must be enough to fix the problem."""


class DataError(LabkitError):
    """A data file is missing, malformed or fails its checksum."""


class DataUnavailableError(DataError):
    """A dataset could not be found locally and could not be downloaded."""


class ModelError(LabkitError):
    """A model name or path cannot be resolved or loaded."""


class ParameterError(LabkitError):
    """A notebook / function parameter is invalid (unknown profile, wrong type, bad value)."""


class ProviderError(LabkitError):
    """A remote API (embeddings, chat) failed after retries, or is misconfigured."""
