"""Tiny decoder LMs that labkit trains itself on real text: the offline stand-in for LLMs.

>>> from labkit.lm import TinyLMConfig, train_tiny_lm, load_causal_lm
>>> lm = train_tiny_lm(TinyLMConfig())            # cached after the first call  # doctest: +SKIP
>>> model, tok = load_causal_lm(lm.name)          # or any HF causal-LM name     # doctest: +SKIP
"""

from labkit.lm.corpus import corpus_documents, corpus_splits
from labkit.lm.evaluate import count_parameters, heldout_loss
from labkit.lm.load import load_causal_lm
from labkit.lm.tokenizer import encode_documents, train_tokenizer
from labkit.lm.train import TinyLMConfig, TrainedLM, train_tiny_lm

__all__ = [
    "TinyLMConfig",
    "TrainedLM",
    "corpus_documents",
    "corpus_splits",
    "count_parameters",
    "encode_documents",
    "heldout_loss",
    "load_causal_lm",
    "train_tiny_lm",
    "train_tokenizer",
]
