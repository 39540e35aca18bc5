"""Generative summarizers: shared context handling, local Hugging Face models.

:class:`GenerativeSummarizer` turns items into prompts that fit the model's context (error /
truncate / map-reduce chunking, see :mod:`labkit.summarize.chunking`) and leaves one method,
:meth:`generate`, to the backend. :class:`HFGenerator` runs any local seq2seq (FLAN-T5-style)
or causal LM (TinyLlama-style, or a tiny LM labkit trained) with greedy or beam decoding; the
OpenAI-compatible endpoint lives in :mod:`labkit.summarize.endpoint`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labkit.device import resolve_device
from labkit.errors import ModelError, ParameterError
from labkit.io import sha256_file
from labkit.models import resolve
from labkit.summarize.base import Summarizer
from labkit.summarize.chunking import STRATEGIES, TokenCounter, fit, map_reduce, transcript_budget
from labkit.summarize.data import Instruction, Item

CHUNK_TEMPLATE = (
    "Below is part {part_hint}of a meeting transcript.\n\n{transcript}\n\n"
    "Summarize this part of the meeting in about {words} words.\nSummary:"
)


class GenerativeSummarizer(Summarizer):
    """Base of every model that writes text; subclasses implement :meth:`generate`.

    Args:
        context_length: tokens the model can attend to (prompt + answer).
        max_new_tokens: cap on answer tokens (also bounded by 2 x the instruction's words).
        context_strategy: "error" | "truncate" | "chunk" for transcripts that do not fit.
    """

    kind = "zero-shot"

    def __init__(
        self,
        name: str,
        context_length: int,
        max_new_tokens: int = 256,
        context_strategy: str = "chunk",
        counter: TokenCounter | None = None,
        batch_size: int = 4,
        warn=None,
    ):
        super().__init__(name, batch_size=batch_size, warn=warn)
        if context_strategy not in STRATEGIES:
            raise ParameterError(f"context_strategy {context_strategy!r} is not one of {', '.join(STRATEGIES)}")
        if int(context_length) < 32:
            raise ParameterError(f"context_length must be >= 32 tokens, got {context_length}")
        self.context_length = int(context_length)
        self.max_new_tokens = int(max_new_tokens)
        self.context_strategy = context_strategy
        self.counter = counter or TokenCounter()
        self.truncated: list[tuple[str, float]] = []  # (item id, share of tokens kept)
        self.chunked: list[tuple[str, int]] = []  # (item id, chunks)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "class": type(self).__name__,
            "context_length": self.context_length,
            "max_new_tokens": self.max_new_tokens,
            "context_strategy": self.context_strategy,
        }

    def generate(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        raise NotImplementedError

    def answer_tokens(self, inst: Instruction) -> int:
        return max(8, min(self.max_new_tokens, 2 * inst.target_words))

    def _summarize_batch(self, items: Sequence[Item], inst: Instruction) -> list[str]:
        max_new = self.answer_tokens(inst)
        outputs: list[str] = [""] * len(items)
        groups: dict[str | None, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(item.query, []).append(i)
        for query, index in groups.items():
            template = self.counter.count(inst.prompt("", query))
            budget = transcript_budget(self.context_length, template, max_new, self.name)
            fitted = [
                fit(
                    items[i].transcript,
                    self.counter,
                    budget,
                    self.context_strategy,
                    where=f"{self.name}: item {items[i].source or items[i].item_id}",
                )
                for i in index
            ]
            for i, f in zip(index, fitted):
                if f.truncated:
                    self.truncated.append((items[i].item_id, f.kept_share))
                if len(f.texts) > 1:
                    self.chunked.append((items[i].item_id, len(f.texts)))

            def make_prompt(text: str, final: bool, n_chunks: int) -> str:
                if final:
                    return inst.prompt(text, query)
                words = max(30, min(inst.target_words, 2 * inst.target_words // max(n_chunks, 1)))
                return CHUNK_TEMPLATE.format(transcript=text, words=words, part_hint="")

            results, _ = map_reduce(
                [f.texts for f in fitted],
                make_prompt,
                lambda prompts: self.generate(prompts, max_new),
                self.counter,
                budget,
            )
            for i, text in zip(index, results):
                outputs[i] = text
        return outputs

    def summarize(self, items, instruction="medium", **kwargs) -> list[str]:
        """As :meth:`Summarizer.summarize`; truncation is reported once through ``warn``."""
        before = len(self.truncated)
        out = super().summarize(items, instruction, **kwargs)
        new = self.truncated[before:]
        if new:
            kept = sorted(share for _, share in new)[len(new) // 2]
            self._warn(
                f"{self.name}: {len(new)} of {len(items)} transcripts truncated to fit a "
                f"{self.context_length}-token context (median share of the transcript "
                f"kept: {kept:.0%}); use context_strategy='chunk' to read them whole"
            )
        return out


class HFGenerator(GenerativeSummarizer):
    """Any local Hugging Face seq2seq or causal LM, loaded from safetensors.

    Args:
        model: a name or folder resolved by :func:`labkit.models.resolve` (hub ids such as
            ``google/flan-t5-large`` or ``TinyLlama/TinyLlama-1.1B-Chat-v1.0`` when cached,
            ``labkit/<tiny-lm>``, or a fine-tuned output folder).
        context_length: defaults to the model's ``max_position_embeddings`` (causal) or 2,048
            (seq2seq with relative positions, as Tiny Titans ran FLAN-T5).
        num_beams: 1 = greedy decoding.
    """

    def __init__(
        self,
        model: str,
        name: str | None = None,
        kind: str = "zero-shot",
        context_length: int | None = None,
        max_new_tokens: int = 256,
        context_strategy: str = "chunk",
        num_beams: int = 1,
        no_repeat_ngram_size: int = 3,
        device: str = "auto",
        batch_size: int = 4,
        warn=None,
    ):
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForSeq2SeqLM,
            AutoTokenizer,
        )

        ref = resolve(model)
        try:
            config = AutoConfig.from_pretrained(str(ref.path))
            tokenizer = AutoTokenizer.from_pretrained(str(ref.path))
            self.is_seq2seq = bool(getattr(config, "is_encoder_decoder", False))
            cls = AutoModelForSeq2SeqLM if self.is_seq2seq else AutoModelForCausalLM
            self.model = cls.from_pretrained(str(ref.path), use_safetensors=True)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"model {model!r} at {ref.path} could not be loaded as a seq2seq or "
                f"causal LM: {str(exc).splitlines()[0]}"
            ) from None
        self.device = resolve_device(device)
        self.model.to(self.device).eval()
        self.torch = torch
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right" if self.is_seq2seq else "left"
        self.tokenizer = tokenizer
        if context_length is None:
            context_length = 2048 if self.is_seq2seq else int(getattr(config, "max_position_embeddings", 2048))
        self.model_name = model
        self.model_path = str(ref.path)
        self.num_beams = num_beams
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.kind = kind
        super().__init__(
            name or model, context_length, max_new_tokens, context_strategy, TokenCounter(tokenizer), batch_size, warn
        )

    def fingerprint(self) -> dict[str, Any]:
        from pathlib import Path

        if getattr(self, "_weights", None) is None:  # hashed once, not per cache lookup
            weights = sorted(Path(self.model_path).rglob("*.safetensors"))
            self._weights = [sha256_file(w)[:16] for w in weights[:4]]
        return {
            **super().fingerprint(),
            "model": self.model_name,
            "weights": self._weights,
            "num_beams": self.num_beams,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
        }

    def generate(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        outputs = []
        limit = self.context_length - (0 if self.is_seq2seq else max_new_tokens)
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            enc = self.tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=limit).to(
                self.device
            )
            with self.torch.inference_mode():
                generated = self.model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    num_beams=self.num_beams,
                    do_sample=False,
                    no_repeat_ngram_size=self.no_repeat_ngram_size or None,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            if not self.is_seq2seq:
                generated = generated[:, enc["input_ids"].shape[1] :]
            outputs.extend(self.tokenizer.batch_decode(generated, skip_special_tokens=True))
        return outputs
