"""The OpenAI-compatible client against a scripted HTTP server on loopback.

Only what a real server does not do on demand lives here: 429 / 5xx / 401 answers, timeouts,
answers without choices, and checking what the client sent (prompt, model, key). Summarizing
through a real server (``transformers serve``), chunking and truncation are in
``test_chat_server.py``.
"""

import pytest

from labkit.errors import ParameterError, ProviderError
from labkit.summarize.endpoint import ChatEndpoint, endpoint_configured


def make(server, **kwargs):
    kwargs.setdefault("backoff_s", 0.01)
    kwargs.setdefault("concurrency", 1)
    return ChatEndpoint(model="test-model", base_url=server.base_url, **kwargs)


def test_summaries_come_back_in_order_and_are_cached(chat_server, items):
    system = make(chat_server, batch_size=2)
    out = system.summarize(items, "short", progress=False)
    assert len(out) == 3 and all(o.startswith("Summary of") for o in out)
    assert "topic 0" in out[0] and "topic 2" in out[2]
    assert chat_server.requests[0]["body"]["model"] == "test-model"
    assert "40 words" in chat_server.requests[0]["body"]["messages"][0]["content"]
    n = len(chat_server.requests)
    again = system.summarize(items, "short", progress=False)
    assert again == out and len(chat_server.requests) == n  # all from the cache
    assert all(s.cached for s in system.last_stats)
    make(chat_server, batch_size=2).summarize(items, "long", progress=False)
    assert len(chat_server.requests) == n + 3  # another instruction is another prompt


def test_429_is_retried_with_backoff(chat_server, items):
    chat_server.script = ["429", "ok"]
    out = make(chat_server, max_retries=2).summarize(items[:1], progress=False)
    assert out[0].startswith("Summary of") and len(chat_server.requests) == 2


def test_5xx_is_retried_with_backoff(chat_server, items):
    chat_server.script = ["500", "500", "ok"]
    out = make(chat_server, max_retries=3).summarize(items[:1], progress=False)
    assert out[0].startswith("Summary of") and len(chat_server.requests) == 3


def test_persistent_5xx_raises_provider_error_and_keeps_finished_items(chat_server, items):
    chat_server.script = ["ok", "500"]
    system = make(chat_server, max_retries=2, batch_size=1)
    with pytest.raises(ProviderError) as err:
        system.summarize(items, progress=False)
    message = str(err.value)
    assert chat_server.base_url in message and "test-model" in message and "3 times" in message
    assert len(chat_server.requests) == 1 + 3
    chat_server.script = ["ok"]
    chat_server.requests.clear()
    system.summarize(items, progress=False)
    assert len(chat_server.requests) == 2  # the first item came from the cache
    assert [s.cached for s in system.last_stats] == [True, False, False]


def test_timeout_is_retried_then_reported(chat_server, items):
    chat_server.script = ["slow"]
    chat_server.slow_s = 1.0
    with pytest.raises(ProviderError, match="timed out 2 times"):
        make(chat_server, timeout_s=0.2, max_retries=1).summarize(items[:1], progress=False)
    assert len(chat_server.requests) == 2


def test_client_errors_fail_at_once(chat_server, items):
    chat_server.script = ["401"]
    with pytest.raises(ProviderError, match="HTTP 401.*invalid api key"):
        make(chat_server, max_retries=3).summarize(items[:1], progress=False)
    assert len(chat_server.requests) == 1


def test_no_choices_is_a_provider_error(chat_server, items):
    chat_server.script = ["empty"]
    with pytest.raises(ProviderError, match="no choices"):
        make(chat_server).summarize(items[:1], progress=False)


def test_configuration_comes_from_the_environment(chat_server, items, monkeypatch):
    monkeypatch.delenv("LABKIT_CHAT_BASE_URL", raising=False)
    monkeypatch.delenv("LABKIT_CHAT_MODEL", raising=False)
    assert not endpoint_configured()
    with pytest.raises(ProviderError, match="LABKIT_CHAT_BASE_URL"):
        ChatEndpoint()
    monkeypatch.setenv("LABKIT_CHAT_BASE_URL", chat_server.base_url)
    monkeypatch.setenv("LABKIT_CHAT_MODEL", "env-model")
    monkeypatch.setenv("LABKIT_CHAT_API_KEY", "sk-test-secret-123456")
    system = ChatEndpoint(backoff_s=0.01)
    assert endpoint_configured() and system.name == "env-model (API)"
    assert "sk-test" not in str(system.fingerprint())
    system.summarize(items[:1], progress=False)
    assert chat_server.requests[0]["auth"] == "Bearer sk-test-secret-123456"
    assert chat_server.requests[0]["body"]["model"] == "env-model"


def test_prompt_longer_than_context_with_chunking_off_is_an_error(chat_server, items):
    long = [items[0].__class__("long", "Alice: " + "word " * 2000, "ref", source="file.jsonl:3")]
    with pytest.raises(ParameterError, match="file.jsonl:3.*context_strategy"):
        make(chat_server, context_length=256, max_new_tokens=32, context_strategy="error").summarize(
            long, progress=False
        )
    assert chat_server.requests == []
