"""Study 1: medical sentence-pair embeddings, Siamese networks and carbon per epoch (Bingi & Yin 2023).

The embedders themselves (``make_embedder(spec)``: sentence-transformers, HF encoders with
CLS/mean pooling, TF-IDF+LSA, OpenAI and Google) live in :mod:`labkit.embedders`, shared with
the summarization study and re-exported here. Modules: :mod:`.similarity` (doctor-wise splits,
thresholds, metrics, bootstrap tests), :mod:`.siamese` (a head on frozen embeddings, full
encoder fine-tuning), :mod:`.study` (the notebook's steps: pairs, systems), :mod:`.tables` (its
tables and headlines), :mod:`.figures`.
"""

from labkit.embedders import (
    SPEC_FORMS,
    Embedder,
    RetryPolicy,
    make_embedder,
    provider_help,
    register_provider,
)
from labkit.embeddings.profiles import PROFILES

__all__ = ["Embedder", "PROFILES", "RetryPolicy", "SPEC_FORMS", "make_embedder", "provider_help", "register_provider"]
