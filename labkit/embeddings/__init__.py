"""Study 1: medical sentence-pair embeddings, Siamese networks and carbon per epoch (Bingi & Yin 2023).

Modules: :mod:`.providers` (one ``embed(texts)`` interface over sentence-transformers, HF
encoders with CLS/mean pooling, TF-IDF+LSA, OpenAI and Google), :mod:`.cache` (on-disk vectors),
:mod:`.similarity` (doctor-wise splits, thresholds, metrics, bootstrap tests), :mod:`.siamese`
(a head on frozen embeddings, full encoder fine-tuning), :mod:`.study` (the notebook's steps).
"""
from labkit.embeddings.profiles import PROFILES
from labkit.embeddings.providers import Embedder, make_embedder

__all__ = ["Embedder", "PROFILES", "make_embedder"]
