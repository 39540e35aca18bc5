"""Embedding providers behind one interface: ``make_embedder(spec).fit(texts).embed(texts)``.

The paper compared OpenAI, Google PaLM and BERT embeddings; this adds local models and a
lexical baseline. The spec forms below are generated from the provider registry
(:mod:`labkit.embedders.registry`); each provider registers itself next to its code, in
:mod:`labkit.embedders.local_providers` and :mod:`labkit.embedders.api_providers`.

{table}

Every embedder batches, shows a tqdm bar, and caches each finished batch on disk
(:class:`labkit.embedders.cache.EmbeddingCache`) keyed by provider, model, dimensions and
pooling; API calls check first that their server answers (a few seconds, not minutes, when
offline), retry with exponential backoff and then raise one
:class:`labkit.errors.ProviderError` naming provider, model and cause, with every batch done
before the failure kept in the cache. Keys come from the environment only and never appear in
names, errors or records.
"""

from __future__ import annotations

# isort: off
# importing the provider modules registers them (local models first, then APIs: the help order)
from labkit.embedders import local_providers as _local  # noqa: F401
from labkit.embedders import api_providers as _api  # noqa: F401

# isort: on
from labkit.embedders.api_providers import ApiEmbedder, GoogleEmbedder, OpenAIEmbedder
from labkit.embedders.base import Embedder, Retryable, RetryPolicy, check_texts
from labkit.embedders.local_providers import (
    PooledEncoderEmbedder,
    SentenceTransformerEmbedder,
    TfidfLsaEmbedder,
)
from labkit.embedders.registry import (
    ProviderInfo,
    build,
    parse_spec,
    provider_help,
    register_provider,
    registered,
    spec_forms,
)
from labkit.errors import ParameterError

__doc__ = __doc__.format(table=provider_help(rst=True))

#: Every accepted spec form, in help order (generated from the registry at import).
SPEC_FORMS = spec_forms()

__all__ = [
    "ApiEmbedder",
    "Embedder",
    "GoogleEmbedder",
    "OpenAIEmbedder",
    "PooledEncoderEmbedder",
    "ProviderInfo",
    "RetryPolicy",
    "Retryable",
    "SPEC_FORMS",
    "SentenceTransformerEmbedder",
    "TfidfLsaEmbedder",
    "check_texts",
    "make_embedder",
    "parse_spec",
    "provider_help",
    "register_provider",
    "registered",
    "spec_forms",
]


def make_embedder(
    spec: str,
    *,
    cache: bool = True,
    batch_size: int | None = None,
    device: str = "auto",
    retry: RetryPolicy | None = None,
) -> Embedder:
    """Build the embedder a spec names (forms: :data:`SPEC_FORMS`, :func:`provider_help`).

    An unknown prefix or a malformed spec raises :class:`ParameterError` with the closest valid
    spec and every form; an unknown model raises :class:`labkit.errors.ModelError`.
    """
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)):
        raise ParameterError(f"batch_size must be an integer, got {batch_size!r}")
    options: dict = {"cache": cache, "device": device}
    if batch_size is not None:
        options["batch_size"] = batch_size
    if retry is not None:
        options["retry"] = retry
    return build(spec, **options)
