"""Fixtures of tests/anchor: factories of the tiny models and tokenizer in ``tiny_models.py``."""

from __future__ import annotations

import pytest
import tiny_models


@pytest.fixture(scope="session")
def make_model():
    """``make_model(family, attn="sdpa", seed=0, max_pos=128)``: a tiny random causal LM."""
    return tiny_models.tiny_model


@pytest.fixture(scope="session")
def make_config():
    """``make_config(family, attn="sdpa", max_pos=128)``: the tiny config of one family."""
    return tiny_models.tiny_config


@pytest.fixture(scope="session")
def make_llama():
    """``make_llama(vocab_size, hidden=32, layers=2, heads=4, max_pos=256, tie=True)``."""
    return tiny_models.tiny_llama


@pytest.fixture(scope="session")
def make_tokenizer():
    """``make_tokenizer(text=TEXT * 3, vocab_size=320)``: an in-process byte-level BPE."""
    return tiny_models.make_tokenizer


@pytest.fixture(scope="module")
def ac_model(make_tokenizer, make_llama):
    """``(model, tokenizer, spec)``: a tiny random Llama with an ``<AC>`` token, its tokenizer
    trained on ``tiny_models.TWO_DOCUMENTS * 6`` (one per test module: the model is mutated)."""
    from labkit.anchor.anchors import AnchorSpec, add_anchor_token

    tok = make_tokenizer(" ".join(tiny_models.TWO_DOCUMENTS * 6), vocab_size=400)
    model = make_llama(len(tok), max_pos=512)
    spec = AnchorSpec(mode="ac")
    add_anchor_token(model, tok, spec)
    return model, tok, spec
