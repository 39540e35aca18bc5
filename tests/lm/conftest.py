import os
from pathlib import Path

import pytest

MIRROR = os.environ.get("LABKIT_DATA_MIRROR") or str(Path(__file__).resolve().parents[3] / "shared" / "data")


def have_mirror() -> bool:
    return any((Path(p) / "tinyshakespeare").exists() for p in MIRROR.split(":") if p)


@pytest.fixture
def needs_data():
    if not have_mirror():
        pytest.skip("real data mirror not found ($LABKIT_DATA_MIRROR or ../shared/data)")


@pytest.fixture(scope="session")
def lm_cache(tmp_path_factory):
    """A private labkit cache for the whole session (models, tokenizers)."""
    path = tmp_path_factory.mktemp("labkit-cache")
    old = {k: os.environ.get(k) for k in ("LABKIT_CACHE_DIR", "LABKIT_DATA_MIRROR")}
    os.environ["LABKIT_CACHE_DIR"] = str(path)
    if have_mirror():
        os.environ["LABKIT_DATA_MIRROR"] = MIRROR
    yield path
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def tiny_llama():
    return make_tiny_llama


def make_tiny_llama(vocab=300, hidden=32, layers=2, heads=2, context=64, tie=True):
    """A random-weight Llama for unit tests only."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=context,
            tie_word_embeddings=tie,
        )
    )
