"""Zero-shot summaries from any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp).

Configuration comes from the environment, never from a notebook or record:

==========================  ==================================================================
``LABKIT_CHAT_BASE_URL``    e.g. ``https://api.openai.com/v1`` or ``http://localhost:8000/v1``
``LABKIT_CHAT_MODEL``       model name the server knows
``LABKIT_CHAT_API_KEY``     key (falls back to ``OPENAI_API_KEY``; local servers need none)
==========================  ==================================================================

Timeouts, connection errors, 429 and 5xx answers are retried with exponential backoff; after
the last try a :class:`ProviderError` names the endpoint, the model and the last error. Other
4xx answers (bad key, unknown model) fail at once. Summaries finished before an error stay in
the cache (see :class:`labkit.summarize.base.Summarizer`).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from labkit.errors import ProviderError
from labkit.summarize.chunking import TokenCounter
from labkit.summarize.generative import GenerativeSummarizer

ENV_BASE_URL, ENV_MODEL, ENV_KEY = "LABKIT_CHAT_BASE_URL", "LABKIT_CHAT_MODEL", "LABKIT_CHAT_API_KEY"


def endpoint_configured() -> bool:
    """True when the environment names a base URL and a model."""
    return bool(os.environ.get(ENV_BASE_URL) and os.environ.get(ENV_MODEL))


class ChatEndpoint(GenerativeSummarizer):
    """Summaries from ``POST {base_url}/chat/completions``.

    Args:
        base_url, model: default to ``$LABKIT_CHAT_BASE_URL`` / ``$LABKIT_CHAT_MODEL``.
        context_length: the served model's context, for fitting transcripts (tokens are
            estimated as 4 characters each: the server's tokenizer is not available here).
        timeout_s: per request. max_retries: extra tries after the first. backoff_s: first wait,
            doubled each retry. concurrency: parallel requests.
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        name: str | None = None,
        context_length: int = 8192,
        max_new_tokens: int = 512,
        context_strategy: str = "chunk",
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 2.0,
        temperature: float = 0.0,
        concurrency: int = 4,
        batch_size: int = 4,
        warn=None,
    ):
        self.base_url = (base_url or os.environ.get(ENV_BASE_URL) or "").rstrip("/")
        self.model = model or os.environ.get(ENV_MODEL) or ""
        if not self.base_url or not self.model:
            raise ProviderError(
                f"chat endpoint not configured: set ${ENV_BASE_URL} and ${ENV_MODEL} (or pass base_url= and model=)"
            )
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self.temperature, self.concurrency = temperature, max(1, concurrency)
        super().__init__(
            name or f"{self.model} (API)",
            context_length,
            max_new_tokens,
            context_strategy,
            TokenCounter(),
            batch_size,
            warn,
        )
        import openai

        self._openai = openai
        key = os.environ.get(ENV_KEY) or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=key, timeout=timeout_s, max_retries=0
        )  # labkit retries, with its own backoff

    def fingerprint(self) -> dict[str, Any]:
        return {
            **super().fingerprint(),
            "base_url": self.base_url,
            "model": self.model,
            "temperature": self.temperature,
        }

    def _chat(self, prompt: str, max_new_tokens: int) -> str:
        openai = self._openai
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._client.chat.completions.create(
                    model=self.model,
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=max_new_tokens,
                    temperature=self.temperature,
                )
            except (
                openai.APITimeoutError,
                openai.APIConnectionError,
                openai.RateLimitError,
                openai.InternalServerError,
            ) as exc:
                last = exc
                continue
            except openai.APIStatusError as exc:
                raise ProviderError(
                    f"chat endpoint {self.base_url} (model {self.model!r}) answered "
                    f"HTTP {exc.status_code}: {_short(exc)}"
                ) from None
            except openai.APIResponseValidationError as exc:
                raise ProviderError(
                    f"chat endpoint {self.base_url} (model {self.model!r}) sent a malformed response: {_short(exc)}"
                ) from None
            choices = getattr(response, "choices", None) or []
            if not choices or choices[0].message is None:
                raise ProviderError(f"chat endpoint {self.base_url} (model {self.model!r}) returned no choices")
            return choices[0].message.content or ""
        kind = "timed out" if isinstance(last, openai.APITimeoutError) else "failed"
        raise ProviderError(
            f"chat endpoint {self.base_url} (model {self.model!r}) {kind} "
            f"{self.max_retries + 1} times: {type(last).__name__}: {_short(last)}"
        )

    def generate(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        if self.concurrency == 1 or len(prompts) == 1:
            return [self._chat(p, max_new_tokens) for p in prompts]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda p: self._chat(p, max_new_tokens), prompts))


def _short(exc: Exception | None) -> str:
    text = str(exc) if exc is not None else "unknown error"
    return text.splitlines()[0][:300] if text else type(exc).__name__
