"""The provider registry: one entry per provider, help generated from it, "did you mean" for
typos, and the base class's ``fit`` that every embedder has."""

from __future__ import annotations

import numpy as np
import pytest

import labkit.embeddings as E
from labkit.embedders import providers, registry
from labkit.embedders.base import Embedder
from labkit.errors import ModelError, ParameterError

EXPECTED = {
    "st": "SentenceTransformerEmbedder",
    "hf-cls": "PooledEncoderEmbedder",
    "hf-mean": "PooledEncoderEmbedder",
    "tfidf-lsa": "TfidfLsaEmbedder",
    "openai": "OpenAIEmbedder",
    "google": "GoogleEmbedder",
}
TEXTS = [
    "Is a fever of 39C dangerous?",
    "Can I take ibuprofen with aspirin?",
    "Why do I cough at night?",
    "Is aspirin safe for a fever?",
]


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry that a test may add to; the real one is restored afterwards."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return registry


def test_every_provider_is_registered_once_with_forms_and_doc():
    infos = registry.registered()
    assert {i.prefix: i.cls.__name__ for i in infos} == EXPECTED
    assert [i.prefix for i in infos][:4] == ["st", "hf-cls", "hf-mean", "tfidf-lsa"]  # local first
    for info in infos:
        assert issubclass(info.cls, Embedder) and info.doc and info.forms
        assert all(form.startswith(info.prefix) for form in info.forms)
    assert [i.prefix for i in infos if not i.is_local] == ["openai", "google"]


def test_help_docstring_and_spec_forms_come_from_the_registry():
    forms = registry.spec_forms()
    assert providers.SPEC_FORMS == E.SPEC_FORMS == forms and len(forms) == len(EXPECTED)
    text, rst = E.provider_help(), E.provider_help(rst=True)
    for info in registry.registered():
        for form in info.forms:
            assert form in text and f"``{form}``" in rst and f"``{form}``" in providers.__doc__
        assert info.doc.split()[0] in text
    assert "{table}" not in providers.__doc__


@pytest.mark.parametrize(
    "prefix, spec",
    [
        ("st", "st:all-MiniLM-L6-v2"),
        ("hf-cls", "hf-cls:all-MiniLM-L6-v2"),
        ("hf-mean", "hf-mean:all-MiniLM-L6-v2"),
        ("tfidf-lsa", "tfidf-lsa"),
        ("tfidf-lsa", "tfidf-lsa:16"),
        ("openai", "openai:text-embedding-3-small@64"),
        ("google", "google:gemini-embedding-001"),
    ],
)
def test_each_registered_prefix_builds_its_class(prefix, spec):
    e = E.make_embedder(spec)  # building loads no model and calls no API
    assert type(e).__name__ == EXPECTED[prefix] and e.spec.startswith(prefix)
    if prefix.startswith("hf-"):
        assert e.pooling == prefix[3:]
    if spec == "tfidf-lsa":
        assert e.dims == 256


@pytest.mark.parametrize(
    "spec, suggestion",
    [
        ("openia:text-embedding-3-small", "did you mean 'openai:text-embedding-3-small'?"),
        ("tfidf", "did you mean 'tfidf-lsa'?"),
        ("st-mean:all-MiniLM-L6-v2", "did you mean 'hf-mean:all-MiniLM-L6-v2'?"),
        ("ST:all-MiniLM-L6-v2", "did you mean 'st:all-MiniLM-L6-v2'?"),
        ("all-MiniLM-L6-v2", "e.g. 'st:all-MiniLM-L6-v2'"),
    ],
)
def test_unknown_spec_suggests_the_closest_and_lists_every_form(spec, suggestion):
    with pytest.raises(ParameterError) as err:
        E.make_embedder(spec)
    message = str(err.value)
    assert f"unknown embedder spec {spec!r}" in message and suggestion in message
    assert all(form in message for form in registry.spec_forms())


def test_far_off_spec_gets_no_suggestion_but_the_forms():
    with pytest.raises(ParameterError) as err:
        E.make_embedder("sentence-transformers:x")
    assert "did you mean" not in str(err.value) and "openai:<model>[@dims]" in str(err.value)


@pytest.mark.parametrize("spec", ["", "   ", None, 3])
def test_empty_or_non_string_spec(spec):
    with pytest.raises(ParameterError, match="non-empty string"):
        E.make_embedder(spec)


def test_a_new_provider_is_one_decorated_class(scratch_registry):
    @scratch_registry.register_provider("echo", forms="echo:<dims>", doc="test provider: text length repeated")
    class Echo(Embedder):
        use_disk_cache = False

        def __init__(self, dims: str, device: str = "auto", **kwargs):
            self.dims = int(dims)
            super().__init__(f"echo:{dims}", "echo", f"echo|{dims}", **kwargs)

        def _embed_batch(self, texts):
            return np.array([[len(t)] * self.dims for t in texts], dtype=float)

    v = providers.make_embedder("echo:3").embed(["ab", "abcd"], progress=False)
    assert v.tolist() == [[2, 2, 2], [4, 4, 4]]
    assert "echo:<dims>" in registry.provider_help() and "echo:<dims>" in registry.spec_forms()
    with pytest.raises(ParameterError, match="did you mean 'echo:3'"):
        providers.make_embedder("ecko:3")


def test_a_prefix_cannot_be_taken_twice(scratch_registry):
    with pytest.raises(ValueError, match="already registered"):

        @scratch_registry.register_provider("st", forms="st:<x>", doc="clash")
        class Other(Embedder):
            pass

    with pytest.raises(ValueError, match="must start with the prefix"):
        scratch_registry.register_provider("new", forms="old:<x>", doc="d")


def test_base_fit_does_nothing_and_returns_the_embedder():
    e = E.make_embedder("st:all-MiniLM-L6-v2", cache=False)
    assert type(e).fit is Embedder.fit
    assert e.fit(TEXTS) is e and e._model is None and e.computed == 0  # nothing loaded or learnt
    for spec in ("openai:text-embedding-3-small", "google:gemini-embedding-001"):
        api = E.make_embedder(spec)
        assert api.fit(TEXTS) is api  # no key needed: fitting never calls the API


def test_tfidf_overrides_fit_and_the_corpus_matters():
    fitted = E.make_embedder("tfidf-lsa:3").fit(TEXTS * 2 + ["night cough and fever"])
    assert type(fitted).fit is not Embedder.fit
    on_corpus = fitted.embed(TEXTS[:2], progress=False)
    on_itself = E.make_embedder("tfidf-lsa:3").embed(TEXTS[:2], progress=False)
    assert on_corpus.shape == (2, 3)  # the fitted corpus allows 3 components
    assert on_itself.shape == (2, 2)  # unfitted: fits on the 2 texts it is given, so fewer
    assert np.allclose(fitted.embed(TEXTS[:2], progress=False), on_corpus)  # fit is kept


def test_unknown_model_of_a_known_provider_is_a_model_error():
    with pytest.raises(ModelError):
        E.make_embedder("st:no-such-org/no-such-model")
