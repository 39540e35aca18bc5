"""Embedders behind a remote API: OpenAI and Google, through their official clients.

API calls retry with exponential backoff (:class:`~labkit.embedders.base.RetryPolicy`) and then
raise one :class:`~labkit.errors.ProviderError` naming provider, model and cause. Retrying only
helps a server that answers; a machine with a key set but no network would otherwise spend a
minute and more in the retry loop per provider. So before its first uncached call each API
embedder opens a TCP connection to its server (or to the proxy the client would use) with a
short timeout, and fails in seconds with the provider and URL when nothing answers. Keys come
from the environment only and never appear in names, errors or records.
"""

from __future__ import annotations

import difflib
import os
import socket
import threading
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from labkit.embedders.base import Embedder, Retryable
from labkit.embedders.registry import register_provider
from labkit.errors import ModelError, ParameterError, ProviderError


def _parse_dims(model: str) -> tuple[str, int | None]:
    if "@" not in model:
        return model, None
    name, dims = model.rsplit("@", 1)
    if not dims.isdigit() or int(dims) < 1:
        raise ParameterError(f"dimensions in {model!r} must be a positive integer")
    return name, int(dims)


def display_url(url: str) -> str:
    """``scheme://host:port/path`` without user, password or query (nothing secret in errors)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _endpoint(url: str) -> tuple[str, int, str]:
    """``(host, port, description)`` of the first hop the HTTP client takes to ``url``: the
    proxy from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` unless ``NO_PROXY`` covers the
    host (as httpx does), otherwise the server itself."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ParameterError(f"base URL {url!r} has no host name")
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
        hop = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if hop.hostname:
            return hop.hostname, hop.port or 8080, f"{display_url(url)} via proxy {hop.hostname}"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname, port, display_url(url)


def unreachable_reason(url: str, timeout_s: float = 2.0) -> str | None:
    """``None`` when a TCP connection to ``url``'s server (or proxy) opens within ``timeout_s``,
    otherwise why not. Name resolution runs in a thread, so a resolver that hangs offline is
    bounded by the same timeout."""
    host, port, _ = _endpoint(url)
    outcome: dict[str, BaseException | None] = {}

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            outcome["error"] = None
        except OSError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=connect, name="labkit-reachability", daemon=True)
    worker.start()
    worker.join(timeout_s + 0.5)
    if "error" not in outcome:
        return f"no answer within {timeout_s:g} s"
    error = outcome["error"]
    if error is None:
        return None
    if isinstance(error, socket.gaierror):
        return f"cannot resolve {host} ({error.strerror or error})"
    if isinstance(error, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout_s:g} s"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


class ApiEmbedder(Embedder):
    """Common ground of the API providers: no local device, a reachability check first."""

    is_local = False
    connect_timeout_s = 2.0
    base_url_env = ""  # the variable that overrides the server, named in errors

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._reached = False

    @classmethod
    def from_spec(cls, prefix: str, argument: str, **options: Any) -> ApiEmbedder:
        options.pop("device", None)  # the provider's machines, not ours
        return cls(argument, **options)

    def base_url(self) -> str:
        raise NotImplementedError

    def preflight(self) -> None:
        """Fail in seconds, naming provider and URL, when the server cannot be reached."""
        if self._reached:
            return
        url = self.base_url()
        reason = unreachable_reason(url, self.connect_timeout_s)
        if reason is not None:
            raise ProviderError(
                f"{self.spec}: cannot reach {_endpoint(url)[2]} ({reason}); check the network "
                f"connection, or point {self.base_url_env} at a reachable server"
            )
        self._reached = True


@register_provider(
    "openai",
    forms="openai:<model>[@dims]",
    doc="OpenAI embeddings (``text-embedding-3-small``, ``-3-large``, "
    "``text-embedding-ada-002``); key in ``OPENAI_API_KEY``, optional "
    "``OPENAI_BASE_URL`` for any OpenAI-compatible server",
)
class OpenAIEmbedder(ApiEmbedder):
    """OpenAI's embeddings endpoint through the official client (key: ``OPENAI_API_KEY``)."""

    MODELS = ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002")
    DEFAULT_URL = "https://api.openai.com/v1"
    base_url_env = "OPENAI_BASE_URL"

    def __init__(self, model: str, **kwargs: Any):
        self.model, self.dims = _parse_dims(model)
        if self.model not in self.MODELS and not os.environ.get("OPENAI_BASE_URL"):
            close = difflib.get_close_matches(self.model, self.MODELS, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ModelError(
                f"openai model {self.model!r} is not one of {', '.join(self.MODELS)}"
                f"; {hint}(set OPENAI_BASE_URL to use another compatible server's "
                "models)"
            )
        if self.dims and self.model == "text-embedding-ada-002":
            raise ParameterError("text-embedding-ada-002 has a fixed 1,536 dimensions; drop @dims")
        self._client = None
        label = self.model.replace("text-embedding-", "openai-") + (f"@{self.dims}" if self.dims else "")
        super().__init__(f"openai:{model}", label, f"openai|{self.model}|{self.dims}", **{"batch_size": 256, **kwargs})

    def base_url(self) -> str:
        return os.environ.get("OPENAI_BASE_URL") or self.DEFAULT_URL

    def available(self):
        if not os.environ.get("OPENAI_API_KEY"):
            return False, "OPENAI_API_KEY is not set"
        try:
            import openai  # noqa: F401
        except ImportError:
            return False, "the openai package is not installed (pip install 'labkit[api]')"
        return True, ""

    def _embed_batch(self, texts):
        import openai

        if self._client is None:
            self._client = openai.OpenAI(
                api_key=os.environ["OPENAI_API_KEY"],
                base_url=os.environ.get("OPENAI_BASE_URL") or None,
                max_retries=0,
                timeout=60,
            )
        extra = {"dimensions": self.dims} if self.dims else {}
        try:
            response = self._client.embeddings.create(model=self.model, input=texts, **extra)
        except (
            openai.RateLimitError,
            openai.APITimeoutError,
            openai.APIConnectionError,
            openai.InternalServerError,
        ) as exc:
            raise Retryable(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        except openai.APIError as exc:
            raise ProviderError(
                f"{self.spec}: the API refused the request ({type(exc).__name__}: {str(exc)[:200]})"
            ) from None
        data = sorted(response.data, key=lambda d: d.index)
        return np.array([d.embedding for d in data], dtype=np.float32)


@register_provider(
    "google",
    forms="google:<model>[@dims]",
    doc="Google embeddings (``gemini-embedding-001``, ``text-embedding-004``: the "
    "PaLM embedding line's successors); key in ``GEMINI_API_KEY`` or "
    "``GOOGLE_API_KEY``, optional ``GOOGLE_GENAI_BASE_URL``",
)
class GoogleEmbedder(ApiEmbedder):
    """Google's Gemini API embeddings through the official ``google-genai`` client."""

    DEFAULT_URL = "https://generativelanguage.googleapis.com"
    base_url_env = "GOOGLE_GENAI_BASE_URL"

    def __init__(self, model: str, task_type: str = "SEMANTIC_SIMILARITY", **kwargs: Any):
        self.model, self.dims = _parse_dims(model)
        self.task_type = task_type
        self._client = None
        label = f"google-{self.model}" + (f"@{self.dims}" if self.dims else "")
        super().__init__(
            f"google:{model}", label, f"google|{self.model}|{self.dims}|{task_type}", **{"batch_size": 100, **kwargs}
        )

    def base_url(self) -> str:
        return os.environ.get("GOOGLE_GENAI_BASE_URL") or self.DEFAULT_URL

    @staticmethod
    def _key() -> str | None:
        return os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")

    def available(self):
        if not self._key():
            return False, "GEMINI_API_KEY / GOOGLE_API_KEY is not set"
        try:
            from google import genai  # noqa: F401
        except ImportError:
            return False, "the google-genai package is not installed (pip install 'labkit[api]')"
        return True, ""

    def _embed_batch(self, texts):
        from google import genai
        from google.genai import errors, types

        if self._client is None:
            base = os.environ.get("GOOGLE_GENAI_BASE_URL")
            options = types.HttpOptions(base_url=base, timeout=60_000) if base else types.HttpOptions(timeout=60_000)
            self._client = genai.Client(api_key=self._key(), http_options=options)
        config = types.EmbedContentConfig(task_type=self.task_type, output_dimensionality=self.dims)
        try:
            result = self._client.models.embed_content(model=self.model, contents=texts, config=config)
        except errors.APIError as exc:
            code = getattr(exc, "code", None) or 0
            if code == 429 or code >= 500:
                raise Retryable(f"HTTP {code}: {str(exc)[:200]}") from None
            raise ProviderError(f"{self.spec}: the API refused the request (HTTP {code}: {str(exc)[:200]})") from None
        except Exception as exc:  # httpx timeouts / connection errors surface unwrapped
            if type(exc).__module__.startswith(("httpx", "httpcore")):
                raise Retryable(f"{type(exc).__name__}: {str(exc)[:200]}") from None
            raise
        return np.array([e.values for e in result.embeddings], dtype=np.float32)
