"""Fine-tune a compact summarizer: any HF seq2seq (Seq2SeqTrainer) or causal LM (Trainer).

The offline default fine-tunes a tiny decoder trained by :mod:`labkit.lm`; with a Hugging Face
cache (or network) the same call fine-tunes ``google/flan-t5-large`` or
``TinyLlama/TinyLlama-1.1B-Chat-v1.0`` as in Tiny Titans. Training examples are the items'
instruction prompts (each item once per instruction type) with the transcript truncated so
that prompt + reference fit the model's context: like Tiny Titans' FLAN-T5 with 2,048 tokens,
a compact model never sees most of a QMSum meeting during fine-tuning. For causal LMs the
loss covers only the summary tokens (prompt labels are -100).

Results are cached by :mod:`labkit.modelcache` as ``summarizer-<hash>``, keyed by the base
model's weights (not its name or path), the config and the training items; each epoch's energy
is measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labkit import io
from labkit.errors import ModelError, ParameterError
from labkit.modelcache import BaseModel, Recipe, train_into_cache
from labkit.summarize.chunking import TokenCounter
from labkit.summarize.data import Item, instruction
from labkit.training import save_model, training_arguments

KIND = "summarizer"
CODE_VERSION = "summarizer-v2"  # v2: labkit.modelcache keys (base by content) and metadata


@dataclass(frozen=True)
class FineTuneConfig:
    """What to fine-tune and how (the defaults suit a tiny LM on 2 CPU cores)."""

    base_model: str
    epochs: float = 2.0
    learning_rate: float = 1e-3
    batch_size: int = 8
    max_target_tokens: int = 192
    context_length: int | None = None  # None: the model's own (seq2seq: 2,048)
    instructions: tuple[str, ...] = ("long", "medium", "short")
    warmup_ratio: float = 0.05
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FineTuned:
    """A fine-tuned summarizer on disk (load it with :class:`HFGenerator`)."""

    name: str
    path: Path
    config: FineTuneConfig
    metrics: dict[str, Any] = field(default_factory=dict)


def _load(base: str, path: Path):
    """``(model, tokenizer, is_seq2seq)`` of the base model ``base`` stored at ``path``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(str(path))
        seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
        model = cls.from_pretrained(str(path), use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"base model {base!r} at {path} cannot be fine-tuned as a seq2seq or causal LM: {str(exc).splitlines()[0]}"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, seq2seq


def _context(model, seq2seq: bool, cfg: FineTuneConfig) -> int:
    if cfg.context_length:
        return int(cfg.context_length)
    return 2048 if seq2seq else int(getattr(model.config, "max_position_embeddings", 2048))


def build_examples(
    items: Sequence[Item], tokenizer, seq2seq: bool, context: int, cfg: FineTuneConfig
) -> list[dict[str, list[int]]]:
    """Token ids per (item, instruction type): truncated prompt -> reference."""
    counter = TokenCounter(tokenizer)
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    examples = []
    for item in items:
        target = tokenizer(" " + item.reference.strip(), add_special_tokens=False)["input_ids"]
        target = target[: cfg.max_target_tokens] + eos
        for name in cfg.instructions:
            inst = instruction(name)
            template = counter.count(inst.prompt("", item.query))
            room = context - template - (0 if seq2seq else len(target)) - 2
            if room < 16:
                raise ParameterError(
                    f"context {context} leaves no room for the transcript of "
                    f"{item.item_id}; lower max_target_tokens "
                    f"({cfg.max_target_tokens})"
                )
            prompt = inst.prompt(counter.head(item.transcript, room), item.query)
            source = tokenizer(prompt, add_special_tokens=seq2seq)["input_ids"][:context]
            if seq2seq:
                examples.append({"input_ids": source, "attention_mask": [1] * len(source), "labels": target})
            else:
                ids = (source + target)[:context]
                labels = ([-100] * len(source) + target)[:context]
                examples.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return examples


def finetune(
    items: Sequence[Item], cfg: FineTuneConfig, *, carbon=None, progress: bool = True, force: bool = False
) -> FineTuned:
    """Fine-tune ``cfg.base_model`` on ``items`` (cached); returns where the model is.

    Args:
        items: training items (e.g. QMSum train, general queries).
        carbon: a :class:`labkit.carbon.CarbonSession`; each epoch is measured as a task
            ``epoch_<k>`` (a private session when ``None``).
        progress: tqdm bars and Trainer log lines.
        force: retrain even if cached.
    """

    if not items:
        raise ParameterError("finetune needs at least one training item")
    base = BaseModel.of(cfg.base_model)
    config = {k: v for k, v in cfg.as_dict().items() if k != "base_model"}  # the base: by bytes
    data = io.sha256_text(*[io.sha256_text(it.transcript, it.reference, it.query or "") for it in items])
    recipe = Recipe(KIND, CODE_VERSION, config, base=base, data_sha256=data)
    cached = train_into_cache(
        recipe, lambda job: _train(job, base, items, cfg), force=force, carbon=carbon, progress=progress
    )
    return FineTuned(cached.name, cached.path, cfg, cached.metrics)


def _train(job, base, items: Sequence[Item], cfg: FineTuneConfig) -> dict[str, Any]:
    """Build the examples and run (Seq2Seq)Trainer; saves into ``job.folder``."""
    import math

    from transformers import (
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        Trainer,
    )

    model, tokenizer, seq2seq = _load(cfg.base_model, base.path)
    context = _context(model, seq2seq, cfg)
    examples = build_examples(items, tokenizer, seq2seq, context, cfg)
    args = training_arguments(
        job.scratch,
        epochs=cfg.epochs,
        steps_per_epoch=math.ceil(len(examples) / cfg.batch_size),
        seed=cfg.seed,
        progress=job.progress,
        args_class=Seq2SeqTrainingArguments if seq2seq else None,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,
    )
    collator = DataCollatorForSeq2Seq(
        tokenizer, model=model if seq2seq else None, label_pad_token_id=-100, padding=True
    )
    trainer_class = Seq2SeqTrainer if seq2seq else Trainer
    run = job.train(
        trainer_class(model=model, args=args, train_dataset=examples, data_collator=collator), per_epoch=True
    )
    save_model(model, tokenizer, job.folder)
    return {
        "train_loss": run["train_loss"],
        "train_runtime_s": run["train_runtime_s"],
        "loss_curve": run["loss_curve"],
        "examples": len(examples),
        "items": len(items),
        "context_length": context,
        "kind": "seq2seq" if seq2seq else "causal",
        "base_model": cfg.base_model,
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }
