"""Embedding providers: local models, the cache, and the OpenAI / Google clients against a real
HTTP server on loopback that speaks their wire formats (``api`` in conftest.py, a test fixture,
never in the product)."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.embedders.providers import RetryPolicy, make_embedder
from labkit.errors import DataError, ParameterError, ProviderError

FAST = RetryPolicy(attempts=3, base_s=0.01, max_s=0.02)


TEXTS = ["Is a fever of 39C dangerous?", "Can I take ibuprofen with aspirin?", "Why do I cough at night?"]


# ---------------------------------------------------------------- local models


def test_minilm_embeds_cached_and_in_order():
    e = make_embedder("st:all-MiniLM-L6-v2")
    first = e.embed(TEXTS, progress=False)
    assert first.shape == (3, 384) and first.dtype == np.float32 and e.computed == 3
    again = make_embedder("st:all-MiniLM-L6-v2").embed(TEXTS[::-1], progress=False)
    assert np.allclose(again, first[::-1], atol=1e-6)  # read back from disk, rows in input order
    raw = e._model.encode(TEXTS)
    assert np.allclose(first, raw, atol=1e-5)  # same vectors as sentence-transformers itself


def test_pooled_encoder_cls_and_mean_differ_and_mean_matches_minilm():
    mean = make_embedder("hf-mean:all-MiniLM-L6-v2", cache=False).embed(TEXTS, progress=False)
    cls = make_embedder("hf-cls:all-MiniLM-L6-v2", cache=False).embed(TEXTS, progress=False)
    st = make_embedder("st:all-MiniLM-L6-v2", cache=False).embed(TEXTS, progress=False)
    unit = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    assert np.allclose(unit, st, atol=1e-4)  # MiniLM is mean pooling + normalisation
    assert not np.allclose(cls, mean, atol=1e-2)


def test_one_forward_pass_fills_both_poolings_of_an_encoder():
    """hf-mean and hf-cls of the same weights share the forward pass: the second reads every
    vector from the cache, and what it reads equals its own uncached computation."""
    mean = make_embedder("hf-mean:all-MiniLM-L6-v2")
    mean.embed(TEXTS, progress=False)
    cls = make_embedder("hf-cls:all-MiniLM-L6-v2")
    from_cache = cls.embed(TEXTS, progress=False)
    assert mean.computed == 3 and cls.computed == 0 and cls._model is None  # never loaded
    fresh = make_embedder("hf-cls:all-MiniLM-L6-v2", cache=False).embed(TEXTS, progress=False)
    assert np.allclose(from_cache, fresh, atol=1e-5)


def test_cache_keys_separate_models_and_dimensions(tmp_path):
    from labkit.embedders.cache import EmbeddingCache

    a, b = EmbeddingCache("openai|m|256", tmp_path), EmbeddingCache("openai|m|512", tmp_path)
    a.put(["x"], np.ones((1, 4)))
    assert b.get(["x"]) == [None] and np.allclose(a.get(["x", "y"])[0], 1) and a.get(["y"]) == [None]


def test_tfidf_lsa_fits_and_embeds():
    e = make_embedder("tfidf-lsa:4").fit(TEXTS * 3 + ["fever and cough", "aspirin dose"])
    v = e.embed(TEXTS, progress=False)
    assert v.shape[0] == 3 and 2 <= v.shape[1] <= 4


@pytest.mark.parametrize(
    "texts, message", [([""], "text 0 is empty"), (["ok", 3], "text 1 is not a string"), ("a string", "single string")]
)
def test_bad_texts_name_the_index(texts, message):
    with pytest.raises(DataError, match=message):
        make_embedder("tfidf-lsa").embed(texts, progress=False)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("bert", "unknown embedder spec 'bert'"),
        ("nope:model", "unknown embedder spec 'nope:model'"),
        ("openai:", "needs an argument"),
        ("tfidf-lsa:x", "dims must be an integer"),
    ],
)
def test_unknown_specs_are_refused_with_the_valid_forms(spec, message):
    with pytest.raises(ParameterError, match=message):
        make_embedder(spec)


def test_unknown_openai_model_is_a_model_error_with_a_suggestion():
    from labkit.errors import ModelError

    with pytest.raises(ModelError, match="did you mean 'text-embedding-3-small'"):
        make_embedder("openai:text-embedding-3-smal")
    with pytest.raises(ModelError, match="'gpt-4o' is not one of"):
        make_embedder("openai:gpt-4o")


def test_unknown_local_model_is_a_model_error():
    from labkit.errors import ModelError

    with pytest.raises(ModelError):
        make_embedder("st:no-such-org/no-such-model")


# ---------------------------------------------------------------- APIs on loopback


def test_api_providers_without_keys_are_skipped_not_crashing():
    for spec in ("openai:text-embedding-3-small", "google:gemini-embedding-001"):
        ok, reason = make_embedder(spec).available()
        assert not ok and "not set" in reason
        with pytest.raises(ProviderError, match="not available"):
            make_embedder(spec).embed(TEXTS, progress=False)


def test_openai_client_round_trip_dimensions_and_cache(api, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    monkeypatch.setenv("OPENAI_BASE_URL", api.url + "/v1")
    e = make_embedder("openai:text-embedding-3-small@16", retry=FAST)
    v = e.embed(TEXTS, progress=False)
    assert v.shape == (3, 16) and np.allclose(v[1], api.vector(TEXTS[1], 16), atol=1e-5)
    path, body, headers = api.requests[0]
    assert path == "/v1/embeddings" and body["dimensions"] == 16 and body["input"]
    assert headers["authorization"] == "Bearer sk-test-secret"
    make_embedder("openai:text-embedding-3-small@16", retry=FAST).embed(TEXTS, progress=False)
    assert len(api.requests) == 1  # second run: all from the cache, nothing paid twice
    assert "sk-test" not in repr(e) and "sk-test" not in e.name


def test_openai_rate_limit_is_retried_then_succeeds(api, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_BASE_URL", api.url + "/v1")
    api.script = [429, 503, 200]
    v = make_embedder("openai:text-embedding-3-small", retry=FAST).embed(TEXTS, progress=False)
    assert v.shape == (3, 8) and len(api.requests) == 3


def test_persistent_errors_give_one_clear_error_and_keep_finished_batches(api, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_BASE_URL", api.url + "/v1")
    api.script = [200, 500]
    e = make_embedder("openai:text-embedding-3-small", retry=FAST, batch_size=2)
    with pytest.raises(ProviderError, match=r"openai:text-embedding-3-small: gave up after 3 attempts"):
        e.embed(TEXTS, progress=False)
    assert e._cache.get(TEXTS[:2])[0] is not None  # the first batch stays cached
    api.script = [200]
    api.requests.clear()
    make_embedder("openai:text-embedding-3-small", retry=FAST, batch_size=2).embed(TEXTS, progress=False)
    assert len(api.requests) == 1 and api.requests[0][1]["input"] == [TEXTS[2]]


def test_client_errors_are_not_retried(api, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_BASE_URL", api.url + "/v1")
    api.script = [401]
    with pytest.raises(ProviderError, match="refused"):
        make_embedder("openai:text-embedding-3-small", retry=FAST).embed(TEXTS, progress=False)
    assert len(api.requests) == 1


def test_google_client_round_trip_and_retry(api, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "g-secret")
    monkeypatch.setenv("GOOGLE_GENAI_BASE_URL", api.url)
    api.script = [503, 200]
    v = make_embedder("google:gemini-embedding-001@12", retry=FAST).embed(TEXTS, progress=False)
    assert v.shape == (3, 12) and np.allclose(v[0], api.vector(TEXTS[0], 12), atol=1e-5)
    path, body, headers = api.requests[-1]
    assert "gemini-embedding-001" in path and ("EmbedContents" in path or "embedContent" in path)
    assert headers.get("x-goog-api-key") == "g-secret"


def test_a_skipped_provider_leaves_no_cache_file(tmp_path):
    make_embedder("openai:text-embedding-3-small").available()
    assert not list((tmp_path / "cache").rglob("*.sqlite"))
