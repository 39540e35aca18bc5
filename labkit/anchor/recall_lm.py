"""labkit's tiny LM trained on a mix of real text and recall-probe documents (the anchor study's base).

Why not plain :func:`labkit.lm.train_tiny_lm`: the recall probe (:mod:`labkit.anchor.recall`)
is only a test of what a cache keeps if the model answers it with its full cache, and a tiny
LM trained on prose alone does not do in-context associative recall. So the base model of the
anchor study is trained on blocks of real text (Tiny Shakespeare + QMSum, the corpus of
:mod:`labkit.lm`) mixed with blocks of probe documents (``probe.share`` of the blocks), with
the same tokenizer, architecture and schedule as :func:`labkit.lm.train_tiny_lm`; the
continued trainings (AnLLM-AC / EP) use the same mix (:mod:`labkit.anchor.training`).

Loss on probe blocks is taken only where the next token is determined by the text: the period
(and anchor) after each sentence and the value of a *query* (a key seen before in the same
document). A key, and the value of a key's first binding, are random draws: scoring them
would only add noise to the gradient (:func:`probe_labels`). Real-text blocks are scored on
every token, as :mod:`labkit.lm` does.

The result is cached by :mod:`labkit.modelcache` as ``tiny-lm-recall-<hash>`` (code version,
:class:`labkit.lm.TinyLMConfig`, :class:`~labkit.anchor.recall.RecallProbe`, sha256 of the
text), and loads like any tiny LM (:class:`labkit.lm.TrainedLM`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from labkit.anchor.anchors import anchor_token_ids
from labkit.anchor.collators import IGNORE_INDEX
from labkit.anchor.recall import ProbeVocab, RecallProbe, probe_vocab, training_blocks
from labkit.errors import ParameterError
from labkit.io import sha256_text
from labkit.lm.evaluate import heldout_loss
from labkit.lm.train import (
    BlockDataset,
    TinyLMConfig,
    TrainedLM,
    llama_config,
    pretraining_arguments,
    save_run,
    tokenize_corpus,
)
from labkit.lm.train import recipe as lm_recipe
from labkit.modelcache import Recipe, train_into_cache
from labkit.timing import Stopwatch
from labkit.training import use_torch_threads

__all__ = ["KIND", "train_recall_lm", "probe_labels", "mixed_blocks", "anchor_mixed_blocks", "MixedBlocks"]

KIND = "tiny-lm-recall"
CODE_VERSION = "tiny-lm-recall-v1"


def probe_labels(blocks: torch.Tensor, vocab: ProbeVocab) -> torch.Tensor:
    """Labels of probe blocks: the ids, with ``-100`` at every key and at the value that
    follows a key's first appearance in its document (documents end at EOS)."""
    labels = blocks.clone()
    keys = torch.as_tensor(vocab.keys)
    is_key = torch.isin(blocks, keys)
    labels[is_key] = IGNORE_INDEX
    arr, key_np = blocks.numpy(), is_key.numpy()
    for r in range(arr.shape[0]):
        seen: set[int] = set()
        for t in np.flatnonzero(key_np[r] | (arr[r] == (vocab.eos if vocab.eos is not None else -1))):
            tok = int(arr[r, t])
            if not key_np[r, t]:  # EOS: a new document
                seen = set()
            elif tok not in seen:
                seen.add(tok)
                if t + 1 < arr.shape[1]:
                    labels[r, t + 1] = IGNORE_INDEX
    return labels


class MixedBlocks(torch.utils.data.Dataset):
    """Real-text and probe blocks with their labels (``{"input_ids", "labels"}`` items)."""

    def __init__(self, blocks: torch.Tensor, labels: torch.Tensor):
        self.blocks, self.labels = blocks, labels

    def __len__(self) -> int:
        return int(self.blocks.shape[0])

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.blocks[i], "labels": self.labels[i]}


def mixed_blocks(
    real: torch.Tensor,
    vocab: ProbeVocab,
    probe: RecallProbe,
    n_blocks: int,
    context: int,
    seed: int = 0,
    anchor: int | None = None,
) -> MixedBlocks:
    """``n_blocks`` blocks: ``round(probe.share * n_blocks)`` probe blocks (``anchor`` after
    every sentence when given) and real-text blocks drawn without replacement from ``real``
    (``(n, context)`` windows; repeated when fewer), in a seeded random order."""
    if real.dim() != 2 or real.shape[1] != context:
        raise ParameterError(f"real blocks must be (n, {context}), got {tuple(real.shape)}")
    n_probe = round(probe.share * n_blocks)
    rng = np.random.default_rng(seed)
    pick = np.concatenate(
        [rng.permutation(real.shape[0]) for _ in range(math.ceil((n_blocks - n_probe) / real.shape[0]) or 1)]
    )
    real_part = real[torch.as_tensor(pick[: n_blocks - n_probe])]
    probe_part = training_blocks(vocab, probe, n_probe, context, seed=seed, anchor=anchor)
    blocks = torch.cat([real_part, probe_part])
    labels = torch.cat([real_part.clone(), probe_labels(probe_part, vocab)])
    order = torch.as_tensor(rng.permutation(n_blocks))
    return MixedBlocks(blocks[order], labels[order])


def anchor_mixed_blocks(
    real: torch.Tensor, tokenizer, documents, spec, probe: RecallProbe, n_blocks: int, context: int, seed: int = 0
) -> MixedBlocks:
    """The continued-training mix of AnLLM (:func:`labkit.anchor.training.train_anchor_lm`):
    ``real`` text blocks (anchors already inserted) and probe documents with the probe words of
    the base (:func:`probe_vocab` of the same tokenizer and text, so the words are the base's),
    ``<AC>`` after every probe sentence for AC (for EP the period is the anchor)."""

    vocab = probe_vocab(tokenizer, documents, probe)
    anchor = None
    if spec.mode == "ac":
        (anchor,) = anchor_token_ids(tokenizer, spec)
    return mixed_blocks(real, vocab, probe, n_blocks, context, seed=seed, anchor=anchor)


def train_recall_lm(
    config: TinyLMConfig, probe: RecallProbe, *, force: bool = False, progress: bool = True, carbon=None
) -> TrainedLM:
    """Train (or load from the model cache) a tiny Llama LM on real text mixed with probe blocks.

    Same arguments and result as :func:`labkit.lm.train_tiny_lm`, plus ``probe`` (sizes and
    share of the recall-probe documents). ``metrics`` adds ``probe_blocks``.
    """

    if not isinstance(config, TinyLMConfig):
        raise ParameterError(f"train_recall_lm needs a TinyLMConfig, got {type(config).__name__}")
    if not isinstance(probe, RecallProbe):
        raise ParameterError(f"train_recall_lm needs a RecallProbe, got {type(probe).__name__}")
    _, train_text, heldout_text = lm_recipe(config)
    rec = Recipe(
        KIND,
        CODE_VERSION,
        {**config.as_dict(), "probe": probe.as_dict()},
        data_sha256=sha256_text(train_text, heldout_text),
    )
    cached = train_into_cache(
        rec,
        lambda job: _train(job, config, probe, train_text, heldout_text),
        force=force,
        carbon=carbon,
        progress=progress,
    )
    return TrainedLM(cached.name, cached.path, config, cached.metrics)


def _train(job, config: TinyLMConfig, probe: RecallProbe, train_text: str, heldout_text: str) -> dict[str, Any]:
    from transformers import LlamaForCausalLM, Trainer

    use_torch_threads()
    clock = Stopwatch().start()
    tokenizer, train_docs, ids = tokenize_corpus(job, config, train_text)
    real = BlockDataset(ids, config.context_length).blocks
    vocab = probe_vocab(tokenizer, train_docs, probe)
    n_blocks = config.max_steps * config.batch_size
    dataset = mixed_blocks(real, vocab, probe, n_blocks, config.context_length, seed=config.seed)

    torch.manual_seed(config.seed)
    model = LlamaForCausalLM(llama_config(config, tokenizer))
    args = pretraining_arguments(job, config)
    run = job.train(Trainer(model=model, args=args, train_dataset=dataset))
    wall = clock.stop()
    model.eval()
    held = heldout_loss(model, tokenizer, heldout_text, config.context_length, max_tokens=100_000)
    return {**save_run(job, config, model, tokenizer, run, wall, held), "probe_blocks": round(probe.share * n_blocks)}
