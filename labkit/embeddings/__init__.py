"""Study 1: medical sentence-pair embeddings, Siamese networks and carbon per epoch (Bingi & Yin 2023).

Modules: :mod:`.providers` (``make_embedder(spec)``: one ``fit(texts)`` / ``embed(texts)``
interface over sentence-transformers, HF encoders with CLS/mean pooling, TF-IDF+LSA, OpenAI and
Google), built on :mod:`.base` (the :class:`Embedder` base class), :mod:`.registry` (the
provider table every spec form and help text comes from), :mod:`.local_providers` and
:mod:`.api_providers`; :mod:`.cache` (on-disk vectors), :mod:`.similarity` (doctor-wise splits,
thresholds, metrics, bootstrap tests), :mod:`.siamese` (a head on frozen embeddings, full
encoder fine-tuning), :mod:`.study` (the notebook's steps).
"""
from labkit.embeddings.profiles import PROFILES
from labkit.embeddings.providers import (SPEC_FORMS, Embedder, RetryPolicy, make_embedder,
                                         provider_help, register_provider)

__all__ = ["Embedder", "PROFILES", "RetryPolicy", "SPEC_FORMS", "make_embedder", "provider_help",
           "register_provider"]
