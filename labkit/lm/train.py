"""Train a tiny Llama-architecture LM on real text: the offline stand-in for pretrained LLMs.

One call, :func:`train_tiny_lm`, does everything and caches the result as a normal Hugging
Face model folder (``config.json`` + ``model.safetensors`` + tokenizer + ``labkit_model.json``)
in :mod:`labkit.modelcache` as ``tiny-lm-<hash>``, where the hash covers the code version, the
config and the sha256 of the training and held-out text. A second call with the same config returns at once; the
model loads with :func:`labkit.lm.load_causal_lm("labkit/tiny-lm-<hash>")` or plain
``AutoModelForCausalLM.from_pretrained(path)``.

Training is plain HF ``Trainer`` on non-overlapping ``context_length`` windows of the token
stream (documents joined by ``</s>``), cosine schedule with warmup, ``max_steps`` derived from
the token budget ``train_tokens`` (D). No evaluation during training; the held-out loss is
measured once at the end.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import ParameterError
from labkit.io import sha256_text
from labkit.lm.corpus import check_keys, corpus_documents, corpus_splits
from labkit.lm.evaluate import count_parameters, heldout_loss_ids
from labkit.lm.load import load_causal_lm
from labkit.lm.tokenizer import MIN_VOCAB, encode_documents, train_tokenizer
from labkit.modelcache import Recipe, train_into_cache
from labkit.timing import Stopwatch
from labkit.training import checkpoint_at, save_model, training_arguments, use_torch_threads

if TYPE_CHECKING:
    from labkit.modelcache import Recipe

KIND = "tiny-lm"
CODE_VERSION = "tiny-lm-v2"  # v2: labkit.modelcache keys and metadata
MAX_CONTEXT = 8192
HELDOUT_TOKENS = 100_000  # held-out tokens scored after training (deterministic prefix)
SCHEDULES = ("cosine", "wsd")
#: fields added after ``tiny-lm-v2``: they enter the cache key only when set to something other
#: than this default, so every model trained before them keeps its key
_LATER_FIELDS = {"heldout_tokens": HELDOUT_TOKENS, "schedule": "cosine", "cooldown_fraction": 0.2, "warmup_steps": None}


@dataclass(frozen=True)
class TinyLMConfig:
    """Size and budget of one tiny LM. Everything here goes into the cache hash."""

    vocab_size: int = 4096
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int | None = None  # -> 4 * hidden_size
    context_length: int = 256
    train_tokens: int = 2_000_000  # token budget D
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.05
    corpus: tuple[str, ...] = ("tinyshakespeare", "qmsum")
    heldout_fraction: float = 0.05
    seed: int = 0
    #: held-out tokens scored after training (a prefix of the held-out text); ``None``: all
    heldout_tokens: int | None = HELDOUT_TOKENS
    #: learning-rate schedule: ``"cosine"`` (warm-up, then cosine to 0 over the whole budget) or
    #: ``"wsd"`` (warm-up, constant, then a 1-sqrt cool-down over the last ``cooldown_fraction``
    #: of the steps; Hägele et al. 2024): runs of one size that differ only in budget then share
    #: everything before their cool-down, so :func:`labkit.lm.wsd.train_chain` trains them as
    #: branches of one run
    schedule: str = "cosine"
    cooldown_fraction: float = 0.2
    #: warm-up length in steps; ``None``: ``warmup_ratio`` x the run's steps (a WSD chain fixes
    #: it from its shortest branch so every branch warms up alike)
    warmup_steps: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.corpus, (list, str)):
            object.__setattr__(self, "corpus", (self.corpus,) if isinstance(self.corpus, str) else tuple(self.corpus))
        self.validate()

    @property
    def ffn_size(self) -> int:
        return self.intermediate_size or 4 * self.hidden_size

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.context_length

    @property
    def max_steps(self) -> int:
        return max(1, math.ceil(self.train_tokens / self.tokens_per_step))

    @property
    def warmup(self) -> int:
        """Warm-up steps: ``warmup_steps``, else ``warmup_ratio`` x the run's steps."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return math.ceil(self.warmup_ratio * self.max_steps)

    @property
    def cooldown_steps(self) -> int:
        """Steps of the WSD cool-down (the last ``cooldown_fraction`` of the run, at least 1)."""
        return max(1, math.ceil(self.cooldown_fraction * self.max_steps))

    @property
    def decay_start(self) -> int:
        """The step where a WSD run leaves the constant rate: everything before it is shared
        with every longer run of the same size (the branch point of a chain)."""
        return self.max_steps - self.cooldown_steps

    def validate(self) -> None:

        def positive_int(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ParameterError(f"TinyLMConfig.{name} must be a positive int, got {value!r}")

        for name in (
            "vocab_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "context_length",
            "train_tokens",
            "batch_size",
        ):
            positive_int(name)
        if self.intermediate_size is not None:
            positive_int("intermediate_size")
        if self.heldout_tokens is not None:
            positive_int("heldout_tokens")
        if self.warmup_steps is not None:
            positive_int("warmup_steps")
        if self.schedule not in SCHEDULES:
            raise ParameterError(f"TinyLMConfig.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not 0 < self.cooldown_fraction <= 1:
            raise ParameterError(f"TinyLMConfig.cooldown_fraction must be in (0, 1], got {self.cooldown_fraction}")
        if self.vocab_size < MIN_VOCAB:
            raise ParameterError(
                f"TinyLMConfig.vocab_size must be >= {MIN_VOCAB} (byte alphabet "
                f"+ special tokens), got {self.vocab_size}"
            )
        if self.hidden_size % self.num_heads:
            raise ParameterError(
                f"TinyLMConfig.hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        if (self.hidden_size // self.num_heads) % 2:
            raise ParameterError(
                f"TinyLMConfig head size hidden_size/num_heads = "
                f"{self.hidden_size // self.num_heads} must be even (RoPE)"
            )
        if self.context_length > MAX_CONTEXT:
            raise ParameterError(
                f"TinyLMConfig.context_length {self.context_length} is too long "
                f"for a tiny CPU-trained LM (max {MAX_CONTEXT})"
            )
        if not 0 < self.learning_rate < 1:
            raise ParameterError(f"TinyLMConfig.learning_rate must be in (0, 1), got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ParameterError(f"TinyLMConfig.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not 0 < self.heldout_fraction < 1:
            raise ParameterError(f"TinyLMConfig.heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        if self.schedule == "wsd" and self.warmup + self.cooldown_steps > self.max_steps:
            raise ParameterError(
                f"TinyLMConfig: a WSD run of {self.max_steps} steps has no room for its {self.warmup} "
                f"warm-up and {self.cooldown_steps} cool-down steps; give more train_tokens or fewer warmup_steps"
            )
        check_keys(self.corpus)

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["corpus"] = list(self.corpus)
        for name, default in _LATER_FIELDS.items():
            if out[name] == default:
                del out[name]
        return out


@dataclass
class TrainedLM:
    """A trained (or cached) tiny LM: its labkit name, folder, config and metrics."""

    name: str
    path: Path
    config: TinyLMConfig
    metrics: dict[str, Any] = field(default_factory=dict)

    def load(self, device: str = "auto", dtype=None):
        """``(model, tokenizer)`` from :attr:`path` (see :func:`labkit.lm.load_causal_lm`)."""
        return load_causal_lm(str(self.path), device=device, dtype=dtype)


def llama_config(config: TinyLMConfig, tokenizer):
    """The transformers ``LlamaConfig`` of a tiny LM (tied embeddings, sdpa attention)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.ffn_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.context_length,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation="sdpa",
    )


class BlockDataset:
    """Non-overlapping ``length``-token windows of one token stream (labels = inputs)."""

    def __init__(self, ids, length: int):
        import torch

        n_blocks = len(ids) // length
        if n_blocks == 0:
            raise ParameterError(
                f"context_length {length} is longer than the whole training token stream ({len(ids)} tokens)"
            )
        self.blocks = torch.from_numpy(ids[: n_blocks * length].astype("int64")).view(n_blocks, length)

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, i: int) -> dict:
        row = self.blocks[i]
        return {"input_ids": row, "labels": row}


def recipe(config: TinyLMConfig) -> tuple[Recipe, str, str]:
    """``(recipe, train_text, heldout_text)`` of a config (loads the corpus to hash it)."""

    train_text, heldout_text = corpus_splits(config.corpus, config.heldout_fraction)
    return (
        Recipe(KIND, CODE_VERSION, config.as_dict(), data_sha256=sha256_text(train_text, heldout_text)),
        train_text,
        heldout_text,
    )


_HELDOUT_IDS: dict[tuple, list[int]] = {}


def heldout_ids(tokenizer, heldout_text: str, max_tokens: int | None) -> list[int]:
    """Token ids of the held-out text (no special tokens), cut to ``max_tokens``; tokenized
    once per process per (tokenizer, text), since every model of a sweep scores the same text."""
    key = (tokenizer.name_or_path, len(tokenizer), sha256_text(heldout_text))
    if key not in _HELDOUT_IDS:
        _HELDOUT_IDS.clear()  # one held-out text at a time is all a sweep needs
        _HELDOUT_IDS[key] = tokenizer(heldout_text, add_special_tokens=False)["input_ids"]
    ids = _HELDOUT_IDS[key]
    return ids if max_tokens is None else ids[:max_tokens]


def pretraining_arguments(job, config: TinyLMConfig, *, output_dir=None, logging_steps: int | None = None):
    """The HF ``TrainingArguments`` of every tiny-LM pretraining (the config's schedule after a
    warm-up, AdamW with weight decay 0.1 and beta2 0.95, clipped gradients): shared by
    :func:`train_tiny_lm`, the WSD chains (:mod:`labkit.lm.wsd`, which keep checkpoints in
    their own ``output_dir`` and log every branch at the chain's pace) and the recall-probe LM
    (:mod:`labkit.anchor.recall_lm`)."""
    if config.schedule == "wsd":
        schedule = dict(
            lr_scheduler_type="warmup_stable_decay",
            # stable steps = max_steps - warm-up - cool-down (Trainer passes max_steps)
            lr_scheduler_kwargs={"num_decay_steps": config.cooldown_steps, "decay_type": "1-sqrt"},
        )
    else:
        schedule = dict(lr_scheduler_type="cosine")
    extra = {} if logging_steps is None else {"logging_steps": logging_steps}
    return training_arguments(
        job.scratch if output_dir is None else output_dir,
        max_steps=config.max_steps,
        seed=config.seed,
        progress=job.progress,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup,
        weight_decay=0.1,
        adam_beta2=0.95,
        max_grad_norm=1.0,
        **schedule,
        **extra,
    )


def train_tiny_lm(
    config: TinyLMConfig = TinyLMConfig(),
    *,
    force: bool = False,
    progress: bool = True,
    carbon=None,
    branch: dict[str, Any] | None = None,
) -> TrainedLM:
    """Train (or load from cache) a tiny Llama LM on the config's corpus.

    Args:
        config: sizes, token budget and corpus.
        force: retrain even if a cached model exists (the folder is replaced atomically).
        progress: tqdm bars for tokenizing and training.
        carbon: an open :class:`labkit.carbon.CarbonSession` to measure training in (task
            ``train_tiny-lm-<hash>``); ``None`` measures in a private session.
        branch: a WSD chain's checkpointing / resume settings (see :func:`_train`; only
            :mod:`labkit.lm.wsd` passes it).

    Returns:
        :class:`TrainedLM`; ``metrics`` has ``train_loss`` (mean of the last 10% of logged
        steps), ``heldout_loss`` (nats/token), ``non_embedding_params``, ``total_params``,
        ``train_tokens``, ``steps``, ``wall_s``, ``energy_kwh`` and the logged ``loss_curve``.
    """

    if not isinstance(config, TinyLMConfig):
        raise ParameterError(f"train_tiny_lm needs a TinyLMConfig, got {type(config).__name__}")
    rec, train_text, heldout_text = recipe(config)
    cached = train_into_cache(
        rec,
        lambda job: _train(job, config, train_text, heldout_text, branch=branch),
        force=force,
        carbon=carbon,
        progress=progress,
    )
    return TrainedLM(cached.name, cached.path, config, cached.metrics)


def _train(
    job, config: TinyLMConfig, train_text: str, heldout_text: str, *, branch: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Tokenizer, token stream, Trainer run and held-out loss; saves into ``job.folder``.

    ``branch`` (from :mod:`labkit.lm.wsd`): ``output_dir`` (the chain's checkpoint folder),
    ``save_at`` (steps to checkpoint there), ``resume_from`` (a checkpoint to continue: the
    model, optimiser, schedule, RNG and data position of the chain at this run's branch point,
    restored by Trainer's own resume), ``logging_steps`` and ``branched_from_step`` (reported in
    the metrics).
    """
    import torch
    from transformers import LlamaForCausalLM, Trainer

    branch = branch or {}
    use_torch_threads()
    clock = Stopwatch().start()  # the device rule's device, synchronised at both readings
    tokenizer, _, ids = tokenize_corpus(job, config, train_text)
    dataset = BlockDataset(ids, config.context_length)

    torch.manual_seed(config.seed)
    model = LlamaForCausalLM(llama_config(config, tokenizer))
    args = pretraining_arguments(
        job, config, output_dir=branch.get("output_dir"), logging_steps=branch.get("logging_steps")
    )
    callbacks = [checkpoint_at(branch["save_at"])] if branch.get("save_at") else None
    trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=callbacks)
    run = job.train(trainer, resume_from_checkpoint=branch.get("resume_from"))
    wall = clock.stop()
    model.eval()
    held_ids = heldout_ids(tokenizer, heldout_text, config.heldout_tokens)
    held = heldout_loss_ids(model, held_ids, config.context_length)
    return {
        **save_run(job, config, model, tokenizer, run, wall, held),
        "train_stream_tokens": int(len(ids)),
        "heldout_tokens": int(len(held_ids)),
        "epochs": config.max_steps * config.tokens_per_step / max(1, len(ids)),
        **({"branched_from_step": branch.get("branched_from_step", 0)} if branch else {}),
    }


def tokenize_corpus(job, config: TinyLMConfig, train_text: str) -> tuple[Any, list[str], Any]:
    """``(tokenizer, training documents, token ids)``: the tokenizer trained on ``train_text``
    and the corpus's training documents encoded with it (both cached by content hash)."""
    train_sha = sha256_text(train_text)
    tokenizer = train_tokenizer(train_text, config.vocab_size, text_sha256=train_sha)
    train_docs, _ = corpus_documents(config.corpus, config.heldout_fraction)
    ids = encode_documents(
        tokenizer, train_docs, progress=job.progress, cache_key=f"{tokenizer.name_or_path}|{train_sha}"
    )
    return tokenizer, train_docs, ids


def save_run(job, config: TinyLMConfig, model, tokenizer, run: dict, wall: float, heldout: float) -> dict[str, Any]:
    """Saves the trained model into ``job.folder`` and returns the metrics every tiny-LM
    training reports (its callers add their own)."""
    non_emb, total = count_parameters(model)
    save_model(model, tokenizer, job.folder)
    return {
        "train_loss": run["train_loss"],
        "heldout_loss": heldout,
        "non_embedding_params": non_emb,
        "total_params": total,
        "train_tokens": config.max_steps * config.tokens_per_step,
        "steps": config.max_steps,
        "wall_s": wall,
        "loss_curve": run["loss_curve"],
    }
