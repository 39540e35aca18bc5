"""labkit.lm: corpus split, tokenizer, tiny-LM training and caching, evaluation, bad input."""

import json

import pytest

from labkit.errors import ModelError, ParameterError
from labkit.lm import (
    TinyLMConfig,
    corpus_documents,
    corpus_splits,
    count_parameters,
    heldout_loss,
    load_causal_lm,
    train_tiny_lm,
    train_tokenizer,
)
from labkit.lm.corpus import split_documents

TINY = dict(
    vocab_size=512,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    context_length=64,
    train_tokens=20_000,
    batch_size=8,
    learning_rate=5e-3,
    corpus=("tinyshakespeare",),
)


# ---- corpus ---------------------------------------------------------------------------------
def test_split_documents_is_deterministic_disjoint_and_whole():
    docs = [f"document number {i} ." for i in range(100)]
    train, held = split_documents(docs, 0.1)
    assert len(held) == 10 and len(train) == 90
    assert not set(train) & set(held)
    assert set(train) | set(held) == set(docs)
    assert split_documents(list(reversed(docs)), 0.1)[1] == list(reversed(held))


def test_corpus_splits_disjoint_documents(lm_cache, needs_data):
    train_docs, held_docs = corpus_documents(("tinyshakespeare", "qmsum"), 0.05)
    assert held_docs and train_docs
    assert not set(train_docs) & set(held_docs)
    assert 0.02 < len(held_docs) / (len(held_docs) + len(train_docs)) < 0.08
    train, held = corpus_splits(("tinyshakespeare", "qmsum"))
    assert corpus_splits(("tinyshakespeare", "qmsum")) == (train, held)
    # every held-out document is absent from the training text
    for doc in held_docs[:50]:
        assert doc not in train


def test_qmsum_test_split_is_never_trained_on(lm_cache, needs_data):
    from labkit.data import load

    test_meeting = load("qmsum")["test"][0].transcript
    train, held = corpus_splits(("qmsum",))
    assert test_meeting not in train and test_meeting not in held


def test_unknown_corpus_key_is_a_clear_error():
    with pytest.raises(ParameterError, match="unknown corpus key 'wikitext'.*tinyshakespeare"):
        corpus_splits(("tinyshakespeare", "wikitext"))
    with pytest.raises(ParameterError, match="corpus"):
        TinyLMConfig(corpus=("nope",))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(hidden_size=30, num_heads=4), "hidden_size"),
        (dict(context_length=100_000), "context_length"),
        (dict(train_tokens=0), "train_tokens"),
        (dict(vocab_size=100), "vocab_size"),
        (dict(heldout_fraction=1.5), "heldout_fraction"),
        (dict(batch_size=2.5), "batch_size"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ParameterError, match=field):
        TinyLMConfig(**kwargs)


def test_tokenizer_vocab_too_small():
    with pytest.raises(ParameterError, match="vocab_size"):
        train_tokenizer("some text", vocab_size=10)


def test_tokenizer_cached_and_has_specials(lm_cache):
    text = "To be, or not to be: that is the question.\n" * 200
    tok = train_tokenizer(text, vocab_size=300)
    again = train_tokenizer(text, vocab_size=300)
    assert tok.name_or_path == again.name_or_path
    for attr in ("bos_token", "eos_token", "pad_token", "unk_token"):
        assert getattr(tok, attr) is not None
    ids = tok("to be or not", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == "to be or not"


# ---- evaluation -----------------------------------------------------------------------------
def test_count_parameters_tied_and_untied(tiny_llama):
    tied = tiny_llama(tie=True)
    untied = tiny_llama(tie=False)
    non_t, tot_t = count_parameters(tied)
    non_u, tot_u = count_parameters(untied)
    assert non_t == non_u  # the transformer body is the same
    assert tot_t - non_t == 300 * 32  # one shared embedding matrix
    assert tot_u - non_u == 2 * 300 * 32
    assert tot_t == sum(p.numel() for p in tied.parameters())


def test_heldout_loss_random_model_is_near_log_vocab(lm_cache, tiny_llama):
    import math

    tok = train_tokenizer("the cat sat on the mat. " * 300 + "a dog ran. " * 300, vocab_size=300)
    model = tiny_llama(vocab=len(tok))
    loss = heldout_loss(model, tok, "the cat ran on the mat. a dog sat. " * 20, 16)
    assert abs(loss - math.log(len(tok))) < 1.0
    with pytest.raises(ParameterError, match="context_length 128 is longer.*64"):
        heldout_loss(model, tok, "the cat", 128)
    with pytest.raises(ParameterError, match="empty"):
        heldout_loss(model, tok, "   ", 16)


def test_load_causal_lm_unknown_name():
    with pytest.raises(ModelError, match="labkit/tiny-lm-doesnotexist"):
        load_causal_lm("labkit/tiny-lm-doesnotexist")


# ---- training -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(lm_cache):
    return train_tiny_lm(TinyLMConfig(**TINY), progress=False)


@pytest.mark.slow
def test_train_tiny_lm_learns_saves_and_caches(trained, lm_cache, needs_data):
    import math
    import time

    m = trained.metrics
    assert trained.name.startswith("labkit/tiny-lm-")
    assert (trained.path / "model.safetensors").is_file()
    saved = json.loads((trained.path / "labkit_model.json").read_text())
    assert saved["config"]["hidden_size"] == 32 and saved["kind"] == "tiny-lm"
    assert saved["base"] is None and saved["energy"]["energy_kwh"] == m["energy_kwh"] > 0
    curve = [loss for _, loss in m["loss_curve"]]
    assert curve[0] > math.log(512) - 0.5  # starts near uniform
    assert m["train_loss"] < curve[0] - 0.5  # and falls (mean over ~40 steps)
    assert m["heldout_loss"] < math.log(512)
    assert m["train_tokens"] >= 20_000 and m["steps"] == math.ceil(20_000 / (8 * 64))
    assert 0 < m["non_embedding_params"] < m["total_params"]
    t0 = time.perf_counter()
    again = train_tiny_lm(TinyLMConfig(**TINY), progress=False)
    assert time.perf_counter() - t0 < 15  # cached: corpus hash only, no training
    assert again.path == trained.path and again.metrics["wall_s"] == m["wall_s"]
    model, tok = load_causal_lm(trained.name)
    assert count_parameters(model) == (m["non_embedding_params"], m["total_params"])
    _, held = corpus_splits(("tinyshakespeare",))
    assert heldout_loss(model, tok, held, 64, max_tokens=5000) == pytest.approx(
        heldout_loss(model, tok, held, 64, max_tokens=5000)
    )


@pytest.mark.slow
def test_different_config_is_a_different_model(trained, lm_cache, needs_data):
    from labkit.lm.train import recipe

    other, _, _ = recipe(TinyLMConfig(**{**TINY, "seed": 1}))
    assert other.name != trained.name and not other.folder.exists()
    assert recipe(TinyLMConfig(**TINY))[0].name == trained.name
