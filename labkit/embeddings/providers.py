"""Embedding providers behind one interface: ``make_embedder(spec).embed(texts) -> float32 (n, d)``.

Specs (the paper compared OpenAI, Google PaLM and BERT embeddings; this adds local models and a
lexical baseline):

=============================  ==========================================================
``st:<name or path>``          sentence-transformers (offline default ``st:all-MiniLM-L6-v2``)
``hf-cls:<name>``              any Hugging Face encoder, [CLS] vector (the paper's "BERT" row)
``hf-mean:<name>``             any Hugging Face encoder, attention-masked mean of the tokens
``tfidf-lsa[:dims]``           TF-IDF + truncated SVD (LSA) with scikit-learn
``openai:<model>[@dims]``      OpenAI embeddings (``text-embedding-3-small``, ``-3-large``,
                               ``text-embedding-ada-002``); ``OPENAI_API_KEY``, optional
                               ``OPENAI_BASE_URL``
``google:<model>[@dims]``      Google embeddings (``gemini-embedding-001``,
                               ``text-embedding-004``: the PaLM embedding line's successors);
                               ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY``, optional
                               ``GOOGLE_GENAI_BASE_URL``
=============================  ==========================================================

Every embedder batches, shows a tqdm bar, and caches each finished batch on disk
(:class:`labkit.embeddings.cache.EmbeddingCache`) keyed by provider, model, dimensions and
pooling; API calls retry with exponential backoff and then raise one
:class:`labkit.errors.ProviderError` naming provider, model and cause, with every batch done
before the failure kept in the cache. Keys come from the environment only and never appear in
names, errors or records.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from labkit.errors import DataError, ModelError, ParameterError, ProviderError

SPEC_FORMS = ("st:<model>", "hf-cls:<model>", "hf-mean:<model>", "tfidf-lsa[:dims]",
              "openai:<model>[@dims]", "google:<model>[@dims]")


@dataclass(frozen=True)
class RetryPolicy:
    """How API calls are retried: ``attempts`` tries, waits of ``base_s * 2**i`` (capped)."""

    attempts: int = 5
    base_s: float = 1.0
    max_s: float = 30.0


class Retryable(Exception):
    """A transient API failure (rate limit, 5xx, timeout, connection): worth another try."""


def check_texts(texts: Sequence[str]) -> list[str]:
    """Raise :class:`DataError` naming the index of the first empty or non-string text."""
    if isinstance(texts, str):
        raise DataError("embed() takes a list of texts, got a single string")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise DataError(f"text {i} is not a string (got {type(text).__name__}: {text!r:.60})")
        if not text.strip():
            raise DataError(f"text {i} is empty")
    return out


class Embedder:
    """Base class: batching, cache, progress and retries. Subclasses implement ``_embed_batch``."""

    is_local = True
    use_disk_cache = True

    def __init__(self, spec: str, name: str, model_key: str, *, batch_size: int = 64,
                 cache: bool = True, retry: RetryPolicy = RetryPolicy()):
        if batch_size < 1:
            raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
        self.spec, self.name, self.model_key = spec, name, model_key
        self.batch_size = batch_size
        self.retry = retry
        self.use_cache = cache and self.use_disk_cache
        self._cache_db = None
        self.computed = 0  # texts embedded (not read from the cache) by this object

    @property
    def _cache(self):
        """The on-disk cache, opened on first use (a skipped provider leaves no file)."""
        if self.use_cache and self._cache_db is None:
            from labkit.embeddings.cache import EmbeddingCache
            self._cache_db = EmbeddingCache(self.model_key)
        return self._cache_db

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"

    def available(self) -> tuple[bool, str]:
        """``(True, "")`` or ``(False, reason)`` (an API key missing, a client not installed)."""
        return True, ""

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def _order(self, texts: list[str]) -> list[int]:
        """Order in which missing texts are embedded (local models: longest first, as
        sentence-transformers does, so batches pad little)."""
        return list(range(len(texts)))

    def _call(self, texts: list[str]) -> np.ndarray:
        for attempt in range(self.retry.attempts):
            try:
                return np.asarray(self._embed_batch(texts), dtype=np.float32)
            except Retryable as exc:
                if attempt + 1 == self.retry.attempts:
                    raise ProviderError(f"{self.spec}: gave up after {self.retry.attempts} "
                                        f"attempts ({exc}); batches finished before this are "
                                        "cached, rerun to continue") from None
                time.sleep(min(self.retry.max_s, self.retry.base_s * 2 ** attempt))
        raise AssertionError("unreachable")

    def embed(self, texts: Sequence[str], *, progress: bool = True) -> np.ndarray:
        """float32 array ``(len(texts), d)``, rows in input order."""
        from tqdm.auto import tqdm

        texts = check_texts(texts)
        ok, reason = self.available()
        if not ok:
            raise ProviderError(f"{self.spec} is not available: {reason}")
        vectors: list[np.ndarray | None] = (self._cache.get(texts) if self._cache is not None
                                            else [None] * len(texts))
        missing = list(dict.fromkeys(t for t, v in zip(texts, vectors) if v is None))
        if missing:
            order = [missing[i] for i in self._order(missing)]
            done: dict[str, np.ndarray] = {}
            step = self._chunk_size()
            with tqdm(total=len(order), desc=f"embedding ({self.name})", unit="text",
                      disable=not progress, leave=False) as bar:
                for start in range(0, len(order), step):
                    chunk = order[start:start + step]
                    out = self._call(chunk)
                    if out.shape[0] != len(chunk):
                        raise ProviderError(f"{self.spec} returned {out.shape[0]} vectors for "
                                            f"{len(chunk)} texts")
                    if self._cache is not None:
                        self._cache.put(chunk, out)
                    done.update(zip(chunk, out))
                    self.computed += len(chunk)
                    bar.update(len(chunk))
            vectors = [v if v is not None else done[t] for t, v in zip(texts, vectors)]
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack(vectors).astype(np.float32, copy=False)

    def _chunk_size(self) -> int:
        return self.batch_size


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model (its own pooling and normalisation)."""

    def __init__(self, model: str, device: str = "auto", **kwargs):
        from labkit.models import resolve
        self.model_name = model
        self.path = resolve(model).path
        self.device = device
        self._model = None
        short = model.split("/")[-1].replace("all-", "")
        super().__init__(f"st:{model}", short, f"st|{model}", **kwargs)

    def _order(self, texts):
        return sorted(range(len(texts)), key=lambda i: -len(texts[i]))

    def _chunk_size(self) -> int:
        # hand sentence-transformers many texts per call (it batches internally at batch_size);
        # each chunk is one cache transaction
        return max(self.batch_size, 2048)

    def _embed_batch(self, texts):
        if self._model is None:
            from labkit.models import load_sentence_transformer
            self._model = load_sentence_transformer(str(self.path), device=self.device)
        return self._model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                  show_progress_bar=False)


class PooledEncoderEmbedder(Embedder):
    """Any Hugging Face encoder with BERT-style pooling: ``cls`` or masked ``mean``."""

    def __init__(self, model: str, pooling: str, device: str = "auto", max_length: int = 256,
                 **kwargs):
        from labkit.models import resolve
        if pooling not in ("cls", "mean"):
            raise ParameterError(f"pooling {pooling!r} is not 'cls' or 'mean'")
        self.model_name, self.pooling, self.max_length = model, pooling, max_length
        self.path = resolve(model).path
        self.device = device
        self._model = self._tokenizer = None
        short = model.split("/")[-1].replace("all-", "")
        super().__init__(f"hf-{pooling}:{model}", f"{short}-{pooling.upper()}",
                         f"hf|{model}|{pooling}|{max_length}", **kwargs)

    def _order(self, texts):
        return sorted(range(len(texts)), key=lambda i: -len(texts[i]))

    def _embed_batch(self, texts):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from labkit.models import pick_device
        if self._model is None:
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.path))
                self._model = AutoModel.from_pretrained(str(self.path), use_safetensors=True)
            except (OSError, ValueError) as exc:
                raise ModelError(f"{self.spec}: {self.path} is not a Hugging Face encoder "
                                 f"({str(exc).splitlines()[0]})") from None
            self._model.to(pick_device(self.device)).eval()
        enc = self._tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt").to(self._model.device)
        with torch.inference_mode():
            hidden = self._model(**enc).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return pooled.float().cpu().numpy()


class TfidfLsaEmbedder(Embedder):
    """TF-IDF + LSA (truncated SVD): a lexical baseline. Fit it on a corpus with :meth:`fit`;
    if ``embed`` is called unfitted it fits on the texts it is given (unsupervised, labels are
    never seen). Not cached on disk: it depends on its fitting corpus and takes a second."""

    use_disk_cache = False

    def __init__(self, dims: int = 256, seed: int = 0, **kwargs):
        if dims < 2:
            raise ParameterError(f"tfidf-lsa dims must be >= 2, got {dims}")
        self.dims, self.seed = dims, seed
        self._pipeline = None
        super().__init__(f"tfidf-lsa:{dims}", "TF-IDF+LSA", f"tfidf-lsa|{dims}", **kwargs)

    def fit(self, texts: Sequence[str]) -> "TfidfLsaEmbedder":
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline

        texts = check_texts(texts)
        tfidf = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)
        n_features = len(tfidf.fit(texts).vocabulary_)
        dims = max(2, min(self.dims, n_features - 1, len(texts) - 1))
        self._pipeline = make_pipeline(TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)),
                                       TruncatedSVD(dims, random_state=self.seed))
        self._pipeline.fit(texts)
        return self

    def _chunk_size(self) -> int:
        return 1 << 30

    def _embed_batch(self, texts):
        if self._pipeline is None:
            self.fit(texts)
        return self._pipeline.transform(texts)


def _parse_dims(model: str) -> tuple[str, int | None]:
    if "@" not in model:
        return model, None
    name, dims = model.rsplit("@", 1)
    if not dims.isdigit() or int(dims) < 1:
        raise ParameterError(f"dimensions in {model!r} must be a positive integer")
    return name, int(dims)


class OpenAIEmbedder(Embedder):
    """OpenAI's embeddings endpoint through the official client (key: ``OPENAI_API_KEY``)."""

    is_local = False
    MODELS = ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002")

    def __init__(self, model: str, **kwargs):
        self.model, self.dims = _parse_dims(model)
        if self.model not in self.MODELS and not os.environ.get("OPENAI_BASE_URL"):
            raise ModelError(f"openai model {self.model!r} is not one of {', '.join(self.MODELS)} "
                             "(set OPENAI_BASE_URL to use another compatible server's models)")
        if self.dims and self.model == "text-embedding-ada-002":
            raise ParameterError("text-embedding-ada-002 has a fixed 1,536 dimensions; drop @dims")
        self._client = None
        label = self.model.replace("text-embedding-", "openai-") + (f"@{self.dims}" if self.dims else "")
        super().__init__(f"openai:{model}", label, f"openai|{self.model}|{self.dims}",
                         **{"batch_size": 256, **kwargs})

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
            self._client = openai.OpenAI(api_key=os.environ["OPENAI_API_KEY"],
                                         base_url=os.environ.get("OPENAI_BASE_URL") or None,
                                         max_retries=0, timeout=60)
        extra = {"dimensions": self.dims} if self.dims else {}
        try:
            response = self._client.embeddings.create(model=self.model, input=texts, **extra)
        except (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError,
                openai.InternalServerError) as exc:
            raise Retryable(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        except openai.APIError as exc:
            raise ProviderError(f"{self.spec}: the API refused the request "
                                f"({type(exc).__name__}: {str(exc)[:200]})") from None
        data = sorted(response.data, key=lambda d: d.index)
        return np.array([d.embedding for d in data], dtype=np.float32)


class GoogleEmbedder(Embedder):
    """Google's Gemini API embeddings through the official ``google-genai`` client."""

    is_local = False

    def __init__(self, model: str, task_type: str = "SEMANTIC_SIMILARITY", **kwargs):
        self.model, self.dims = _parse_dims(model)
        self.task_type = task_type
        self._client = None
        label = f"google-{self.model}" + (f"@{self.dims}" if self.dims else "")
        super().__init__(f"google:{model}", label, f"google|{self.model}|{self.dims}|{task_type}",
                         **{"batch_size": 100, **kwargs})

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
            options = types.HttpOptions(base_url=base, timeout=60_000) if base else \
                types.HttpOptions(timeout=60_000)
            self._client = genai.Client(api_key=self._key(), http_options=options)
        config = types.EmbedContentConfig(task_type=self.task_type,
                                          output_dimensionality=self.dims)
        try:
            result = self._client.models.embed_content(model=self.model, contents=texts,
                                                       config=config)
        except errors.APIError as exc:
            code = getattr(exc, "code", None) or 0
            if code == 429 or code >= 500:
                raise Retryable(f"HTTP {code}: {str(exc)[:200]}") from None
            raise ProviderError(f"{self.spec}: the API refused the request (HTTP {code}: "
                                f"{str(exc)[:200]})") from None
        except Exception as exc:  # httpx timeouts / connection errors surface unwrapped
            if type(exc).__module__.startswith(("httpx", "httpcore")):
                raise Retryable(f"{type(exc).__name__}: {str(exc)[:200]}") from None
            raise
        return np.array([e.values for e in result.embeddings], dtype=np.float32)


_PREFIXES: dict[str, Callable[..., Embedder]] = {
    "st": lambda rest, **kw: SentenceTransformerEmbedder(rest, **kw),
    "hf-cls": lambda rest, **kw: PooledEncoderEmbedder(rest, "cls", **kw),
    "hf-mean": lambda rest, **kw: PooledEncoderEmbedder(rest, "mean", **kw),
    "openai": lambda rest, **kw: OpenAIEmbedder(rest, **{k: v for k, v in kw.items() if k != "device"}),
    "google": lambda rest, **kw: GoogleEmbedder(rest, **{k: v for k, v in kw.items() if k != "device"}),
}


def make_embedder(spec: str, *, cache: bool = True, batch_size: int | None = None,
                  device: str = "auto", retry: RetryPolicy | None = None) -> Embedder:
    """Build the embedder a spec names (see the module docstring for the forms)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ParameterError(f"embedder spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    kwargs: dict = {"cache": cache}
    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    if retry is not None:
        kwargs["retry"] = retry
    if spec == "tfidf-lsa" or spec.startswith("tfidf-lsa:"):
        dims = spec.partition(":")[2] or "256"
        if not dims.isdigit():
            raise ParameterError(f"embedder spec {spec!r}: dims must be an integer")
        return TfidfLsaEmbedder(int(dims), **kwargs)
    prefix, sep, rest = spec.partition(":")
    if not sep or prefix not in _PREFIXES or not rest:
        raise ParameterError(f"unknown embedder spec {spec!r}; use one of: {', '.join(SPEC_FORMS)}")
    return _PREFIXES[prefix](rest, device=device, **kwargs)
