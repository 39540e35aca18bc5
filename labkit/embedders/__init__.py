"""Text embedders (infrastructure): one ``fit(texts)`` / ``embed(texts)`` interface over
sentence-transformers, HF encoders with CLS/mean pooling, TF-IDF+LSA, OpenAI and Google.

Why a package of its own, below the studies: the medical-embeddings study and the
summarization study both embed text, and a study never imports another study (README,
"Architecture"). :mod:`.providers` (``make_embedder(spec)``) is built on :mod:`.base` (the
:class:`Embedder` base class), :mod:`.registry` (the provider table every spec form and help
text comes from), :mod:`.local_providers`, :mod:`.api_providers` and :mod:`.cache` (vectors on
disk, keyed by model and text).
"""

from labkit.embedders.providers import (
    SPEC_FORMS,
    Embedder,
    RetryPolicy,
    make_embedder,
    provider_help,
    register_provider,
)

__all__ = ["Embedder", "RetryPolicy", "SPEC_FORMS", "make_embedder", "provider_help", "register_provider"]
