"""Embedders that run on this machine: sentence-transformers, pooled HF encoders, TF-IDF + LSA.

Each class registers its spec prefix with :func:`~labkit.embedders.registry.register_provider`;
build them through :func:`labkit.embeddings.make_embedder`, which imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labkit.device import resolve_device
from labkit.embedders.base import Embedder, check_texts
from labkit.embedders.cache import EmbeddingCache
from labkit.embedders.registry import register_provider
from labkit.errors import ModelError, ParameterError
from labkit.models import load_sentence_transformer, resolve


def _short(model: str) -> str:
    """A readable system name: the last path part, without sentence-transformers' ``all-``."""
    return model.rstrip("/").split("/")[-1].replace("all-", "")


@register_provider(
    "st",
    forms="st:<model>",
    doc="sentence-transformers model by name or folder (offline default "
    "``st:all-MiniLM-L6-v2``), with its own pooling and normalisation",
)
class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model (its own pooling and normalisation)."""

    def __init__(self, model: str, device: str = "auto", **kwargs: Any):
        self.model_name = model
        self.path = resolve(model).path
        self.device = device
        self._model = None
        super().__init__(f"st:{model}", _short(model), f"st|{model}", **kwargs)

    def _order(self, texts):
        return sorted(range(len(texts)), key=lambda i: -len(texts[i]))

    def _chunk_size(self) -> int:
        # hand sentence-transformers many texts per call (it batches internally at batch_size);
        # each chunk is one cache transaction
        return max(self.batch_size, 2048)

    def _embed_batch(self, texts):
        if self._model is None:
            self._model = load_sentence_transformer(str(self.path), device=self.device)
        return self._model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)


@register_provider(
    "hf-mean", forms="hf-mean:<model>", doc="any Hugging Face encoder, attention-masked mean of the token vectors"
)
@register_provider(
    "hf-cls", forms="hf-cls:<model>", doc='any Hugging Face encoder, [CLS] vector (the paper\'s "BERT" row)'
)
class PooledEncoderEmbedder(Embedder):
    """Any Hugging Face encoder with BERT-style pooling: ``cls`` or masked ``mean``."""

    def __init__(self, model: str, pooling: str, device: str = "auto", max_length: int = 256, **kwargs: Any):
        if pooling not in ("cls", "mean"):
            raise ParameterError(f"pooling {pooling!r} is not 'cls' or 'mean'")
        self.model_name, self.pooling, self.max_length = model, pooling, max_length
        self.path = resolve(model).path
        self.device = device
        self._model = self._tokenizer = None
        super().__init__(
            f"hf-{pooling}:{model}",
            f"{_short(model)}-{pooling.upper()}",
            f"hf|{model}|{pooling}|{max_length}",
            **kwargs,
        )

    @classmethod
    def from_spec(cls, prefix: str, argument: str, **options: Any) -> PooledEncoderEmbedder:
        return cls(argument, prefix.removeprefix("hf-"), **options)

    def _order(self, texts):
        return sorted(range(len(texts)), key=lambda i: -len(texts[i]))

    def _embed_batch(self, texts):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if self._model is None:
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.path))
                self._model = AutoModel.from_pretrained(str(self.path), use_safetensors=True)
            except (OSError, ValueError) as exc:
                raise ModelError(
                    f"{self.spec}: {self.path} is not a Hugging Face encoder ({str(exc).splitlines()[0]})"
                ) from None
            self._model.to(resolve_device(self.device)).eval()
        enc = self._tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt").to(
            self._model.device
        )
        with torch.inference_mode():
            hidden = self._model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = {"cls": hidden[:, 0], "mean": (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)}
        pooled = {k: v.float().cpu().numpy() for k, v in pooled.items()}
        sibling = self._sibling_cache()
        if sibling is not None:  # the other pooling of the same forward pass, for free
            sibling.put(texts, pooled[self._other_pooling])
        return pooled[self.pooling]

    @property
    def _other_pooling(self) -> str:
        return "mean" if self.pooling == "cls" else "cls"

    def _sibling_cache(self):
        """The cache of the same encoder with the other pooling: one forward pass gives both
        vectors, so the study's ``hf-mean`` and ``hf-cls`` rows (the same weights) cost one
        pass over the texts, not two. None without a disk cache."""
        if not self.use_cache:
            return None
        if getattr(self, "_sibling_db", None) is None:
            self._sibling_db = EmbeddingCache(f"hf|{self.model_name}|{self._other_pooling}|{self.max_length}")
        return self._sibling_db


@register_provider(
    "tfidf-lsa",
    forms="tfidf-lsa[:dims]",
    argument_required=False,
    default_argument="256",
    doc="TF-IDF + truncated SVD (LSA) with scikit-learn, a lexical baseline fitted "
    "on the study's question texts (default 256 dimensions)",
)
class TfidfLsaEmbedder(Embedder):
    """TF-IDF + LSA (truncated SVD): a lexical baseline. Fit it on a corpus with :meth:`fit`;
    if ``embed`` is called unfitted it fits on the texts it is given (unsupervised, labels are
    never seen). Not cached on disk: it depends on its fitting corpus and takes a second."""

    use_disk_cache = False

    def __init__(self, dims: int = 256, seed: int = 0, **kwargs: Any):
        if dims < 2:
            raise ParameterError(f"tfidf-lsa dims must be >= 2, got {dims}")
        self.dims, self.seed = dims, seed
        self._pipeline = None
        super().__init__(f"tfidf-lsa:{dims}", "TF-IDF+LSA", f"tfidf-lsa|{dims}", **kwargs)

    @classmethod
    def from_spec(cls, prefix: str, argument: str, **options: Any) -> TfidfLsaEmbedder:
        if not argument.isdigit():
            raise ParameterError(f"embedder spec '{prefix}:{argument}': dims must be an integer")
        options.pop("device", None)
        return cls(int(argument), **options)

    def fit(self, texts: Sequence[str]) -> TfidfLsaEmbedder:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline

        texts = check_texts(texts)
        tfidf = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)
        n_features = len(tfidf.fit(texts).vocabulary_)
        dims = max(2, min(self.dims, n_features - 1, len(texts) - 1))
        self._pipeline = make_pipeline(
            TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)), TruncatedSVD(dims, random_state=self.seed)
        )
        self._pipeline.fit(texts)
        return self

    def _chunk_size(self) -> int:
        return 1 << 30

    def _embed_batch(self, texts):
        if self._pipeline is None:
            self.fit(texts)
        return self._pipeline.transform(texts)
