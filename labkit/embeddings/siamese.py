"""Siamese networks over sentence pairs, before/after for every provider.

The paper added "a Siamese network as an additional encoding layer" without saying which; two
readings are built here:

* :func:`train_head` — (a) a shared MLP projector on *frozen* embeddings (works for API
  embeddings too, since only vectors are needed), trained in plain PyTorch with a cosine or a
  contrastive loss, early-stopped on validation doctors, energy measured per epoch;
* :func:`finetune_encoder` — (b) full Siamese fine-tuning of a local sentence-transformers
  encoder with its own trainer and ``OnlineContrastiveLoss``, energy per epoch, the result
  cached by :mod:`labkit.modelcache` (base weights by content + config + training pairs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labkit.device import resolve_device
from labkit.errors import ParameterError
from labkit.io import sha256_text
from labkit.modelcache import BaseModel, Recipe, train_into_cache
from labkit.models import load_sentence_transformer
from labkit.timing import Stopwatch
from labkit.training import training_arguments, use_torch_threads

LOSSES = ("cosine", "contrastive")
KIND = "siamese-st"
CODE_VERSION = "siamese-st-v2"  # v2: labkit.modelcache keys (base by content, not folder name)
#: pairs per "megabatch" that length grouping sorts at once, in batches (transformers' default)
LENGTH_GROUP_MEGABATCH = 50


@dataclass(frozen=True)
class HeadConfig:
    """Shape and training of the Siamese head (defaults suit MQP on 2 CPU cores)."""

    hidden: int = 256
    out: int = 128
    dropout: float = 0.1
    loss: str = "contrastive"
    margin: float = 0.5
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    max_epochs: int = 30
    patience: int = 4
    seed: int = 0

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ParameterError(f"head loss {self.loss!r} is not one of {', '.join(LOSSES)}")
        if self.max_epochs < 1 or self.patience < 1:
            raise ParameterError("head max_epochs and patience must be >= 1")


@dataclass
class HeadResult:
    """Scores of every pair after the head, and what training cost per epoch."""

    scores: np.ndarray
    epochs: list[dict[str, Any]] = field(default_factory=list)  # epoch, train_loss, val_auc, energy...
    best_epoch: int = 0


def _projector(dim: int, cfg: HeadConfig):
    import torch.nn as nn

    return nn.Sequential(nn.Linear(dim, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, cfg.out))


def _loss(cos, labels, cfg: HeadConfig):
    import torch

    if cfg.loss == "cosine":  # regress cosine towards 1 (similar) / 0 (different)
        return torch.nn.functional.mse_loss(cos, labels)
    distance = 1 - cos  # contrastive (Hadsell et al. 2006) on cosine distance
    return (labels * distance.pow(2) + (1 - labels) * torch.clamp(cfg.margin - distance, min=0).pow(2)).mean()


def train_head(
    emb_a: np.ndarray,
    emb_b: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    cfg: HeadConfig = HeadConfig(),
    *,
    carbon=None,
    name: str = "head",
    device: str = "auto",
) -> HeadResult:
    """Train a shared projector on ``train`` pairs, early-stop on ``val`` AUC, score all pairs.

    Args:
        emb_a, emb_b: frozen embeddings of each pair's two texts, shape (n, d).
        labels: 0/1 per pair. split: "train" / "val" / "test" per pair.
        carbon: an open :class:`labkit.carbon.CarbonSession`; each epoch is a task
            ``<name> epoch <k>``.
        device: where the head trains (the package's device rule by default); the
            initialisation and the batch order come from CPU generators, so they do not depend
            on it.
    """
    import torch
    from sklearn.metrics import roc_auc_score

    split = np.asarray(split)
    train, val = split == "train", split == "val"
    if not train.any() or not val.any():
        raise ParameterError("the Siamese head needs 'train' and 'val' pairs (doctor-wise split)")
    torch.manual_seed(cfg.seed)
    dev = torch.device(resolve_device(device))
    a = torch.as_tensor(np.asarray(emb_a, np.float32), device=dev)
    b = torch.as_tensor(np.asarray(emb_b, np.float32), device=dev)
    y = torch.as_tensor(np.asarray(labels, np.float32), device=dev)
    y_np = np.asarray(labels, np.float32)
    net = _projector(a.shape[1], cfg).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    cos = torch.nn.functional.cosine_similarity
    tr = torch.as_tensor(np.flatnonzero(train))
    gen = torch.Generator().manual_seed(cfg.seed)

    def scores_of(mask=None) -> np.ndarray:
        net.eval()
        with torch.inference_mode():
            s = cos(net(a), net(b))
        net.train()
        s = s.float().cpu().numpy()
        return s if mask is None else s[mask]

    best_auc, best_state, best_epoch, stale = -1.0, None, 0, 0
    epochs = []
    for epoch in range(1, cfg.max_epochs + 1):
        clock = Stopwatch(net).start()  # the head's device, synchronised at both readings
        if carbon is not None:
            carbon.start_task(f"{name} epoch {epoch}")
        order = tr[torch.randperm(len(tr), generator=gen)]
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            i = order[start : start + cfg.batch_size]
            loss = _loss(cos(net(a[i]), net(b[i])), y[i], cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(i)
        val_auc = float(roc_auc_score(y_np[val], scores_of(val)))
        m = carbon.stop_task() if carbon is not None else None
        epochs.append(
            {
                "epoch": epoch,
                "train_loss": total / len(order),
                "val_auc": val_auc,
                "seconds": clock.stop(),
                "energy_kwh": m.energy_kwh if m else float("nan"),
                "emissions_g": m.emissions_g if m else float("nan"),
            }
        )
        if val_auc > best_auc + 1e-4:
            best_auc, best_epoch, stale = val_auc, epoch, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    net.load_state_dict(best_state)
    return HeadResult(scores_of(), epochs, best_epoch)


@dataclass(frozen=True)
class FineTuneConfig:
    """Full Siamese fine-tuning of a sentence-transformers encoder."""

    base_model: str = "all-MiniLM-L6-v2"
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    margin: float = 0.5
    seed: int = 0
    #: batches of pairs of similar length (random batch order): MQP questions vary from a few
    #: to 119 tokens and a random batch pads to its longest, so about half of every forward
    #: pass was padding; grouping roughly halves the fine-tune's time (part of the time cut of
    #: issue 25); False keeps sentence-transformers' plain random batches
    length_grouped: bool = True


def length_grouped_sampler(lengths: list[int]):
    """A sentence-transformers batch sampler class whose batches hold pairs of similar length.

    Indices come from transformers' :class:`~transformers.trainer_pt_utils.LengthGroupedSampler`
    (random megabatches of ``LENGTH_GROUP_MEGABATCH`` batches, each sorted by length); it
    returns them as one long-to-short run per megabatch, so the batches are cut here and their
    order shuffled, reseeded every epoch, so training does not see a length curriculum.
    """
    import torch
    from sentence_transformers.base.sampler import DefaultBatchSampler
    from transformers.trainer_pt_utils import get_length_grouped_indices

    class LengthGroupedBatchSampler(DefaultBatchSampler):
        def _batches(self) -> list[list[int]]:
            gen = torch.Generator().manual_seed(int(self.seed) + int(self.epoch))
            order = get_length_grouped_indices(
                lengths, self.batch_size, mega_batch_mult=LENGTH_GROUP_MEGABATCH, generator=gen
            )
            batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
            if self.drop_last and batches and len(batches[-1]) < self.batch_size:
                batches.pop()
            return [batches[int(k)] for k in torch.randperm(len(batches), generator=gen)]

        def __iter__(self):
            yield from self._batches()

        def __len__(self) -> int:
            n = len(lengths)
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    return LengthGroupedBatchSampler


def finetune_encoder(
    question_1, question_2, labels, cfg: FineTuneConfig = FineTuneConfig(), *, carbon=None, progress: bool = False
) -> tuple[Path, dict[str, Any]]:
    """Fine-tune ``cfg.base_model`` on the given training pairs (cached by :mod:`labkit.modelcache`:
    the base model's bytes, the rest of the config and the pairs).

    Returns ``(model folder, metrics)``; load it with ``make_embedder("st:<folder>")``. Epoch
    energy lands in ``carbon.measurements`` as tasks ``epoch_<k>`` (only when it trains).
    """

    q1, q2 = [str(q) for q in question_1], [str(q) for q in question_2]
    y = [float(v) for v in labels]
    if not (len(q1) == len(q2) == len(y)) or not y:
        raise ParameterError(
            f"finetune_encoder needs non-empty question_1, question_2 and labels "
            f"of one length, got {len(q1)}, {len(q2)} and {len(y)}"
        )
    base = BaseModel.of(cfg.base_model)
    config = {k: v for k, v in asdict(cfg).items() if k != "base_model"}  # the base: by bytes
    data = sha256_text(*(f"{a}\t{b}\t{c}" for a, b, c in zip(q1, q2, y)))
    recipe = Recipe(KIND, CODE_VERSION, config, base=base, data_sha256=data)
    cached = train_into_cache(
        recipe, lambda job: _finetune(job, base, q1, q2, y, cfg), carbon=carbon, progress=progress
    )
    return cached.path, cached.metrics


def _finetune(job, base, q1: list[str], q2: list[str], y: list[float], cfg: FineTuneConfig) -> dict[str, Any]:
    """sentence-transformers' trainer with ``OnlineContrastiveLoss``; saves into ``job.folder``."""
    import math

    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer import losses

    use_torch_threads()
    clock = Stopwatch().start()  # the device rule's device, synchronised at both readings
    model = load_sentence_transformer(str(base.path))
    extra = {}
    if cfg.length_grouped:  # the longer text of the pair sets both sides' padding roughly
        tokenizer = model.tokenizer
        lengths = [len(tokenizer(a)["input_ids"]) + len(tokenizer(b)["input_ids"]) for a, b in zip(q1, q2)]
        extra["batch_sampler"] = length_grouped_sampler(lengths)
    args = training_arguments(
        job.scratch,
        epochs=cfg.epochs,
        steps_per_epoch=math.ceil(len(y) / cfg.batch_size),
        seed=cfg.seed,
        progress=job.progress,
        args_class=SentenceTransformerTrainingArguments,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,
        **extra,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict({"sentence1": q1, "sentence2": q2, "label": y}),
        loss=losses.OnlineContrastiveLoss(model, margin=cfg.margin),
    )
    run = job.train(trainer, per_epoch=True)
    model.save(str(job.folder), safe_serialization=True)
    return {"train_loss": run["train_loss"], "pairs": len(y), "epochs": cfg.epochs, "seconds": clock.stop()}
