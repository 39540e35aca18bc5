"""Failure isolation: an API provider with a key but no server fails in seconds, naming provider
and URL, and in study 1 one failing provider becomes a ``failed`` row while the rest complete."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from labkit.embedders import make_embedder, registry
from labkit.embedders.api_providers import unreachable_reason
from labkit.embedders.base import Embedder
from labkit.embeddings import similarity, study, tables
from labkit.errors import ParameterError, ProviderError

TEXTS = ["Is a fever of 39C dangerous?", "Can I take ibuprofen with aspirin?"]
SYMPTOMS = ["a fever", "a cough", "a headache", "back pain", "a rash", "nausea", "dizziness", "chest pain"]


def synthetic_pairs(doctors: int = 6) -> pd.DataFrame:
    """Pairs shaped like MQP: a paraphrase (label 1) and an unrelated question (label 0) for
    each symptom, per doctor, split by doctor as the study does."""
    rows = []
    for d in range(1, doctors + 1):
        for k, sym in enumerate(SYMPTOMS):
            q = f"Doctor {d}: what should I do about {sym} that started yesterday?"
            rows.append((d, q, f"How do I treat {sym} that began a day ago?", 1))
            other = SYMPTOMS[(k + 3) % len(SYMPTOMS)]
            rows.append((d, q, f"Can {other} be caused by my blood pressure pills?", 0))
    pairs = pd.DataFrame(rows, columns=["dr_id", "question_1", "question_2", "label"])
    pairs = pairs.rename_axis("row").reset_index()
    pairs["split"] = similarity.split_by_doctor(pairs, 2, 1, seed=0)
    return pairs


@pytest.fixture
def offline_openai(monkeypatch, closed_port):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{closed_port}/v1")
    return f"127.0.0.1:{closed_port}"


# ---------------------------------------------------------------- fast failure


@pytest.mark.parametrize(
    "spec, env", [("openai:text-embedding-3-small", "OPENAI"), ("google:gemini-embedding-001", "GOOGLE")]
)
def test_a_closed_port_fails_in_seconds_naming_provider_and_url(spec, env, monkeypatch, closed_port):
    if env == "OPENAI":
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{closed_port}/v1")
    else:
        monkeypatch.setenv("GEMINI_API_KEY", "g-secret")
        monkeypatch.setenv("GOOGLE_GENAI_BASE_URL", f"http://127.0.0.1:{closed_port}")
    e = make_embedder(spec)  # the default retry policy: 5 attempts, up to a minute of waiting
    t0 = time.perf_counter()
    with pytest.raises(ProviderError) as err:
        e.embed(TEXTS, progress=False)
    assert time.perf_counter() - t0 < 5
    message = str(err.value)
    assert message.startswith(f"{spec}: cannot reach") and f"127.0.0.1:{closed_port}" in message
    assert "secret" not in message


def test_a_real_local_server_passes_the_check_with_default_retries(api, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_BASE_URL", api.url + "/v1")
    assert unreachable_reason(api.url + "/v1") is None
    v = make_embedder("openai:text-embedding-3-small").embed(TEXTS, progress=False)
    assert v.shape == (2, 8) and len(api.requests) == 1


def test_cached_texts_need_no_server(api, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_BASE_URL", api.url + "/v1")
    first = make_embedder("openai:text-embedding-3-small").embed(TEXTS, progress=False)
    api.server.shutdown()
    api.server.server_close()  # the port is closed now: only the cache can answer
    again = make_embedder("openai:text-embedding-3-small").embed(TEXTS, progress=False)
    assert np.allclose(first, again)
    with pytest.raises(ProviderError, match="cannot reach"):
        make_embedder("openai:text-embedding-3-small").embed(TEXTS + ["new text"], progress=False)


def test_the_check_goes_to_the_proxy_the_client_would_use(monkeypatch, closed_port):
    for key in (
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    with pytest.raises(ProviderError, match="api.openai.com/v1 via proxy 127.0.0.1"):
        make_embedder("openai:text-embedding-3-small").embed(TEXTS, progress=False)


# ---------------------------------------------------------------- the study carries on


def test_study_keeps_local_results_and_marks_the_offline_api_failed(offline_openai):
    pairs = synthetic_pairs()
    t0 = time.perf_counter()
    systems = study.embed_pairs(pairs, ["st:all-MiniLM-L6-v2", "openai:text-embedding-3-small", "tfidf-lsa:8"])
    assert time.perf_counter() - t0 < 60
    assert list(systems.scores) == ["MiniLM-L6-v2", "TF-IDF+LSA"]
    assert all(len(s) == len(pairs) for s in systems.scores.values())
    [failed] = systems.failed
    assert failed["spec"] == "openai:text-embedding-3-small" and failed["system"] == "openai-3-small"
    assert failed["reason"].startswith("failed: openai:text-embedding-3-small: cannot reach")
    assert offline_openai in failed["reason"]

    results = tables.results_table(systems, pairs, n_resamples=50)
    row = results.set_index("system").loc["openai-3-small"]
    assert row["status"].startswith("failed: ") and offline_openai in row["status"]
    assert np.isnan(row["accuracy"])
    ok = results[results["status"] == "ok"]
    assert list(ok["system"]) == ["MiniLM-L6-v2", "TF-IDF+LSA"] and ok["accuracy"].notna().all()
    assert ok.set_index("system").loc["MiniLM-L6-v2", "accuracy"] > 0.6  # a real, working model
    # everything downstream still runs on the systems that worked
    assert list(tables.thresholds(results)["system"]) == ["MiniLM-L6-v2", "TF-IDF+LSA"]
    assert "openai-3-small" not in tables.pair_scores(pairs, systems).columns
    paired = tables.paired_table(systems, pairs, results, "MiniLM-L6-v2", n_resamples=50)
    assert list(paired["system"]) == ["TF-IDF+LSA"]
    # the caller gets one message per provider that did not run, for record.warn
    [message] = systems.warnings()
    assert message.startswith("failed: openai:text-embedding-3-small: ") and "cannot reach" in message


def test_any_exception_from_a_provider_is_isolated(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @registry.register_provider("broken", forms="broken:<x>", doc="raises while embedding")
    class Broken(Embedder):
        use_disk_cache = False

        def __init__(self, x, device="auto", **kwargs):
            super().__init__(f"broken:{x}", "broken", "broken", **kwargs)

        def _embed_batch(self, texts):
            raise RuntimeError("CUDA out of memory\nlong traceback line")

    pairs = synthetic_pairs(4)
    systems = study.embed_pairs(pairs, ["broken:x", "tfidf-lsa:4", "st:no-such-org/no-model"])
    assert list(systems.scores) == ["TF-IDF+LSA"]
    reasons = {s["spec"]: s["reason"] for s in systems.failed}
    assert reasons["broken:x"] == "failed: RuntimeError: CUDA out of memory"
    assert reasons["st:no-such-org/no-model"].startswith("failed: ")  # model not found
    results = tables.results_table(systems, pairs, n_resamples=20)
    assert (results["status"] == "ok").sum() == 1 and results["status"].str.startswith("failed").sum() == 2


def test_skipped_and_failed_are_told_apart(offline_openai):
    pairs = synthetic_pairs(4)
    systems = study.embed_pairs(pairs, ["tfidf-lsa:4", "google:gemini-embedding-001", "openai:text-embedding-3-small"])
    statuses = {s["spec"]: s["status"] for s in systems.skipped}
    assert statuses == {"google:gemini-embedding-001": "skipped", "openai:text-embedding-3-small": "failed"}
    results = tables.results_table(systems, pairs, n_resamples=20).set_index("system")
    assert results.loc["google-gemini-embedding-001", "status"].startswith("skipped: GEMINI_API_KEY")
    assert results.loc["openai-3-small", "status"].startswith("failed: ")
    assert systems.warnings()[0].startswith("skipped google:gemini-embedding-001: ")


def test_a_malformed_spec_stops_the_study_before_any_work():
    with pytest.raises(ParameterError, match=r"models\[1\]: unknown embedder spec 'opneai:x'"):
        study.embed_pairs(synthetic_pairs(4), ["tfidf-lsa:4", "opneai:x"])
    with pytest.raises(ParameterError, match="models must be a list"):
        study.embed_pairs(synthetic_pairs(4), "tfidf-lsa")
