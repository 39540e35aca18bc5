"""Query-focused turn selection with all-MiniLM-L6-v2: zero-shot, and fine-tuned on QMSum train.

The offline analogue of Tiny Titans' question, *does fine-tuning a compact model beat using a
model zero-shot?*, on real pretrained weights: the same 22.7M-parameter MiniLM encoder picks
the transcript turns that answer a query, once as it comes (query-turn cosine, no training)
and once fine-tuned on QMSum's training split. It is extractive and encoder-sized, not an
abstractive LLM; it answers the question for a compact selector, not for FLAN-T5 vs GPT-3.5.

**Why a bi-encoder, not a cross-encoder.** A bi-encoder embeds each transcript sentence once
per meeting and each query once, so its cost grows with sentences + queries; a cross-encoder
scores every (query, sentence) pair, about eight queries per QMSum test meeting, several times
the forward passes on 2 CPU cores. And the bi-encoder *has* a zero-shot form, the very model
before training, so the paired comparison isolates what fine-tuning adds; a cross-encoder
starts with a freshly initialised scoring head and has no zero-shot baseline to compare with.

**Which tower trains.** The model is asymmetric (sentence-transformers' ``Router``: a query
route and a document route, both all-MiniLM-L6-v2 at the start): the query tower is
fine-tuned, the document tower, which embeds transcript sentences, stays the base model and
is frozen. So both selectors (and Centroid and TextRank) read the *same* sentence vectors,
computed once per meeting, and fine-tuning adds no embedding pass over the test transcripts:
on 2 CPU cores at about 100 sentences a second, embedding the ~18,000 sentences of QMSum test
is the study's largest cost, and a second pass would double it. What fine-tuning can change
is where each query lands among those vectors (for the one general query text, a learned
"summary-worthy" direction). The price: less capacity than tuning both towers.

**Units.** Turns are what QMSum labels (relevant spans are turn ranges) and what is selected;
sentences (those of at least ``min_words`` words, the candidates of every extractive system)
are what is embedded. A turn's score is its best sentence's cosine to the query.

**Training labels**: :mod:`labkit.summarize.selector_data` (relevant spans of specific
queries, a greedy ROUGE oracle for general ones). Losses (sentence-transformers'
``SentenceTransformerTrainer``, two datasets, anchors routed to the query tower, positives and
negatives to the frozen document tower): specific queries train with
``MultipleNegativesRankingLoss`` (its in-batch negatives are right there: another query's
relevant sentence is not relevant to this one), general queries with a cosine ``TripletLoss``
against a hard negative of their own meeting (one query text for every meeting: another
meeting's summary-worthy sentence is no negative for it). The query tower is cached by
:mod:`labkit.modelcache` (kind ``turn-selector``), each epoch's energy measured.

**Selection** (:class:`TurnSelector`): rank a meeting's turns by score (a general item's query
is :data:`GENERAL_QUERY`), then take the candidate sentences of the best turns until the
instruction type's target length is reached (the rule every extractive system and floor
uses), returned in transcript order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labkit.errors import ParameterError
from labkit.modelcache import BaseModel, Recipe, base_fingerprint, train_into_cache
from labkit.models import load_sentence_transformer, resolve
from labkit.summarize.base import Summarizer
from labkit.summarize.data import Instruction, Item
from labkit.summarize.encoders import MINILM, SentenceEmbedder, shared_embedder
from labkit.summarize.extractive import sentences, take_budget
from labkit.summarize.selector_data import (
    GENERAL_QUERY,
    TrainQuery,
    data_key,
    training_triplets,
    turn_units,
)
from labkit.timing import Stopwatch, timed
from labkit.training import training_arguments, use_torch_threads

KIND = "turn-selector"
CODE_VERSION = "turn-selector-v2-query-tower"
#: tokens the fine-tuned model reads of a sentence when selecting (all but a few sentences fit)
SELECT_MAX_TOKENS = 128


@dataclass(frozen=True)
class SelectorConfig:
    """How the MiniLM selector is fine-tuned (sizes come from the study's profiles).

    ``positives_per_query`` positive sentences (each with one hard negative) are drawn per
    training query, from ``max_queries`` training queries drawn at random (0: all of them).
    """

    base_model: str = MINILM
    positives_per_query: int = 1
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    max_seq_length: int = 32
    triplet_margin: float = 0.2
    min_words: int = 5
    max_queries: int = 0
    seed: int = 0

    def __post_init__(self):
        for name in ("positives_per_query", "batch_size", "max_seq_length", "min_words"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(f"selector config: {name} must be >= 1, got {getattr(self, name)!r}")
        if not self.epochs > 0:
            raise ParameterError(f"selector config: epochs must be > 0, got {self.epochs!r}")


def triplet_options(cfg: SelectorConfig) -> dict[str, int]:
    """The config fields :func:`training_triplets` draws with (it takes them by name so that
    the data module does not import the trainer's config)."""
    return {
        "seed": cfg.seed,
        "max_queries": cfg.max_queries,
        "min_words": cfg.min_words,
        "positives_per_query": cfg.positives_per_query,
    }


def finetune_selector(
    queries: Sequence[TrainQuery], cfg: SelectorConfig = SelectorConfig(), *, carbon=None, progress: bool = False
):
    """Fine-tune ``cfg.base_model`` as a query-turn selector on training queries
    (:func:`queries_from_meetings` for QMSum, :func:`queries_from_items` for a user's data).

    Cached by :mod:`labkit.modelcache` (base weights by content, this config, the queries).
    Returns the :class:`labkit.modelcache.CachedModel`; ``.metrics`` holds the training time,
    energy (per epoch, ``epoch_<k>`` tasks in ``carbon``) and the number of triplets.
    """

    if not queries:
        raise ParameterError("finetune_selector needs training queries; none were given")
    base = BaseModel.of(cfg.base_model)
    config = {k: v for k, v in asdict(cfg).items() if k != "base_model"}
    recipe = Recipe(KIND, CODE_VERSION, config, base=base, data_sha256=data_key(queries))
    return train_into_cache(recipe, lambda job: _train(job, base, queries, cfg), carbon=carbon, progress=progress)


def _train(job, base, queries: Sequence[TrainQuery], cfg: SelectorConfig) -> dict[str, Any]:
    from datasets import Dataset, DatasetDict
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.modules import Router
    from sentence_transformers.sentence_transformer import losses

    use_torch_threads()
    clock = Stopwatch().start()
    triplets = training_triplets(queries, **triplet_options(cfg))
    # two towers: the query tower trains, the document (sentence) tower stays the base model,
    # so the test transcripts' sentence vectors are the ones every other system already has
    query_tower = load_sentence_transformer(str(base.path))
    document_tower = load_sentence_transformer(str(base.path))
    for tower in (query_tower, document_tower):
        tower.max_seq_length = cfg.max_seq_length  # training speed (most sentences are shorter)
    for param in document_tower.parameters():
        param.requires_grad_(False)
    model = SentenceTransformer(
        modules=[
            Router.for_query_document(
                query_modules=list(query_tower.children()), document_modules=list(document_tower.children())
            )
        ],
        device=query_tower.device,
    )
    datasets = DatasetDict({kind: Dataset.from_dict(cols) for kind, cols in triplets.items()})
    loss = {
        "specific": losses.MultipleNegativesRankingLoss(model),
        "general": losses.TripletLoss(model, losses.TripletDistanceMetric.COSINE, triplet_margin=cfg.triplet_margin),
    }
    n = sum(len(cols["anchor"]) for cols in triplets.values())
    args = training_arguments(
        job.scratch,
        epochs=cfg.epochs,
        steps_per_epoch=math.ceil(n / cfg.batch_size),
        seed=cfg.seed,
        progress=job.progress,
        args_class=SentenceTransformerTrainingArguments,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,
        router_mapping={"anchor": "query", "positive": "document", "negative": "document"},
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=datasets, loss={k: v for k, v in loss.items() if k in datasets}
    )
    session = job.carbon
    before = len(session.measurements) if session is not None else 0
    run = job.train(trainer, per_epoch=True)
    epochs = [
        {"epoch": k, "seconds": m.duration_s, "energy_kwh": m.energy_kwh}
        for k, m in enumerate(session.measurements[before:] if session else [], start=1)
    ]
    query_tower.max_seq_length = SELECT_MAX_TOKENS
    query_tower.save(str(job.folder), safe_serialization=True)  # the query tower alone
    return {
        "train_loss": run["train_loss"],
        "loss_curve": run["loss_curve"],
        "train_runtime_s": run["train_runtime_s"],
        "seconds": clock.stop(),
        "triplets": {kind: len(cols["anchor"]) for kind, cols in triplets.items()},
        "queries": len(queries),
        "tuned": "query tower",
        "epochs": cfg.epochs,
        "per_epoch": epochs,
        "parameters": int(sum(p.numel() for p in query_tower.parameters())),
        "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
    }


# --------------------------------------------------------------------------- the system
class TurnSelector(Summarizer):
    """Extract the turns closest to the query up to the instruction type's length.

    A turn's score is the highest cosine between the query and one of its candidate
    sentences (MiniLM embeddings); the best turns' sentences are taken in turn order until the
    target length is reached, and returned in transcript order.

    Args:
        model: the sentence-transformers model (name or folder) that embeds transcript
            sentences: the base MiniLM for both selectors.
        query_model: the model that embeds the query; default ``model`` (zero-shot), a
            :func:`finetune_selector` folder (its fine-tuned query tower) for the fine-tuned one.
        kind: ``"zero-shot"`` or ``"fine-tuned"`` (the table's kind column).
        embedder / query_embedder: share them across systems using the same models (both
            selectors share Centroid's and TextRank's sentence embedder: they embed no
            sentence those have not).
    """

    def __init__(
        self,
        model: str = MINILM,
        name: str | None = None,
        kind: str = "zero-shot",
        min_words: int = 5,
        embedder: SentenceEmbedder | None = None,
        query_model: str | None = None,
        query_embedder: SentenceEmbedder | None = None,
        warn=None,
    ):
        super().__init__(name or f"MiniLM selector ({kind})", batch_size=16, warn=warn)
        self.kind = kind
        self.min_words = min_words
        self.model = str(model)
        self.query_model = str(query_model or model)
        self.embedder = embedder or shared_embedder(self.model)
        self.query_embedder = query_embedder or (
            self.embedder if self.query_model == self.model else shared_embedder(self.query_model)
        )
        self._weights: dict[str, str] | None = None

    def fingerprint(self) -> dict[str, Any]:
        if self._weights is None:  # hashing the weights once, not once per cache lookup
            self._weights = {
                role: base_fingerprint(resolve(name).path)[:16]
                for role, name in (("sentences", self.model), ("queries", self.query_model))
            }
        return {
            "class": type(self).__name__,
            "min_words": self.min_words,
            "rule": "turn-max-v1",
            "weights": self._weights,
        }

    def _query_vector(self, item: Item) -> np.ndarray:
        return self.query_embedder.encode([item.query or GENERAL_QUERY])[0]

    def turn_scores(self, item: Item) -> tuple[list[list[str]], np.ndarray]:
        """Each selectable turn's candidate sentences and its score (max sentence cosine)."""
        _, per_turn = turn_units(item.transcript.splitlines(), self.min_words)
        flat = [s for found in per_turn for s in found]
        cos = self.embedder.encode(flat) @ self._query_vector(item)
        bounds = np.cumsum([0] + [len(found) for found in per_turn])
        return per_turn, np.array([cos[a:b].max() for a, b in zip(bounds[:-1], bounds[1:])])

    def _summarize_batch(self, items: Sequence[Item], inst: Instruction) -> list[str]:
        out, seconds = [], []
        for item in items:
            per_turn, score = self.turn_scores(item)
            if not per_turn:  # no sentence reaches min_words: every sentence is a candidate
                cands = sentences(item.transcript, 1)
                out.append("\n".join(cands[i] for i in take_budget(range(len(cands)), cands, inst.target_words)))
                seconds.append(0.0)
                continue

            def pick() -> str:
                flat = [(t, k) for t in np.argsort(-score, kind="stable") for k in range(len(per_turn[t]))]
                chosen = take_budget(range(len(flat)), [per_turn[t][k] for t, k in flat], inst.target_words)
                return "\n".join(per_turn[t][k] for t, k in sorted(flat[i] for i in chosen))

            text, pick_s = timed(pick, None)
            out.append(text)
            flat = [s for found in per_turn for s in found]
            seconds.append(self.embedder.cost(flat) + self.query_embedder.cost([item.query or GENERAL_QUERY]) + pick_s)
        self._item_seconds = seconds
        return out
