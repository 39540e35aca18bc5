"""k-shot prompts built from real held-out text (AnLLM §5: 5-shot, one anchor per demonstration).

A *demonstration* is a run of consecutive sentences of one held-out document (tinyshakespeare
speeches, QMSum transcripts), at least ``demo_tokens`` long; the *query* is the first
``query_tokens`` tokens of a further held-out sentence, left open (no anchor) as the part the
model continues. For AnLLM-AC the ``<AC>`` token closes every demonstration, as in the paper's
5-shot evaluation; for AnLLM-EP the demonstrations' own punctuation is the anchor.

Held-out documents never appear in the training text (:func:`labkit.lm.corpus_documents`), so
the prompts are text the models have not seen.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from labkit.anchor.anchors import AnchorSpec, split_sentences
from labkit.errors import DataError, ParameterError

__all__ = ["KShotPrompt", "demonstration_pool", "kshot_prompts", "prompt_ids_of_length", "DEMO_SEPARATOR"]

DEMO_SEPARATOR = "\n\n"


@dataclass
class KShotPrompt:
    """One prompt: its text, the demonstrations it was made of and the open query."""

    text: str
    demonstrations: list[str]
    query: str

    @property
    def k(self) -> int:
        return len(self.demonstrations)


def _count(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False))


def _demonstrations(documents: Sequence[str], tokenizer, demo_tokens: int, seed: int):
    """Demonstrations in a seeded document order, one run of sentences at a time."""
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    for i in order:
        current: list[str] = []
        size = 0
        for sentence in split_sentences(documents[i]):
            current.append(sentence)
            size += _count(tokenizer, sentence) + 1
            if size >= demo_tokens:
                yield " ".join(current)
                current, size = [], 0


def _check_demo_tokens(demo_tokens) -> None:
    if not isinstance(demo_tokens, int) or demo_tokens < 1:
        raise ParameterError(f"demo_tokens must be a positive int, got {demo_tokens!r}")


def demonstration_pool(documents: Sequence[str], tokenizer, demo_tokens: int, n: int, seed: int = 0) -> list[str]:
    """``n`` demonstrations (consecutive sentences of one document, >= ``demo_tokens`` tokens).

    Documents are visited in a seeded order; a document gives as many demonstrations as it
    has text for. Raises :class:`DataError` when the text cannot supply ``n`` of them.
    """
    _check_demo_tokens(demo_tokens)
    if not isinstance(n, int) or n < 1:
        raise ParameterError(f"n (number of demonstrations) must be a positive int, got {n!r}")
    pool = list(itertools.islice(_demonstrations(documents, tokenizer, demo_tokens, seed), n))
    if len(pool) < n:
        raise DataError(
            f"the held-out text gives only {len(pool)} demonstrations of >= "
            f"{demo_tokens} tokens, {n} were asked for: lower demo_tokens or the "
            "number of prompts"
        )
    return pool


def _query(sentence: str, tokenizer, query_tokens: int) -> str:
    ids = tokenizer.encode(sentence, add_special_tokens=False)[:query_tokens]
    return tokenizer.decode(ids).strip() or sentence


def _close(demo: str, spec: AnchorSpec) -> str:
    return f"{demo}{spec.ac_token}" if spec.mode == "ac" else demo


def kshot_prompts(
    documents: Sequence[str],
    tokenizer,
    spec: AnchorSpec,
    k: int,
    n_prompts: int = 1,
    demo_tokens: int = 64,
    query_tokens: int = 12,
    seed: int = 0,
    max_tokens: int | None = None,
) -> list[KShotPrompt]:
    """``n_prompts`` prompts of ``k`` demonstrations each (disjoint demonstrations per prompt).

    The query of each prompt is the start of the sentence that follows in the pool, truncated
    to ``query_tokens`` tokens and not closed by an anchor. With ``max_tokens`` (the model's
    context), a prompt longer than that (a demonstration holding one very long sentence) is
    skipped and the next demonstrations of the pool are used instead.
    """
    if not isinstance(k, int) or k < 0:
        raise ParameterError(f"k (demonstrations per prompt) must be an int >= 0, got {k!r}")
    _check_demo_tokens(demo_tokens)
    if max_tokens is None:  # the plain pool: exactly n_prompts * (k + 1) demonstrations
        source = iter(demonstration_pool(documents, tokenizer, demo_tokens, n_prompts * (k + 1), seed))
    else:
        source = _demonstrations(documents, tokenizer, demo_tokens, seed)
    prompts, skipped = [], 0
    while len(prompts) < n_prompts:
        chunk = list(itertools.islice(source, k + 1))
        if len(chunk) < k + 1:
            raise DataError(
                f"the held-out text gives only {len(prompts)} {k}-shot prompts of "
                f"demonstrations >= {demo_tokens} tokens within max_tokens="
                f"{max_tokens} ({skipped} too long), {n_prompts} were asked for: "
                "lower demo_tokens or the number of prompts"
            )
        demos, query_src = chunk[:k], chunk[k]
        query = _query(split_sentences(query_src)[0], tokenizer, query_tokens)
        text = DEMO_SEPARATOR.join([_close(d, spec) for d in demos] + [query])
        if max_tokens is not None and _count(tokenizer, text) > max_tokens:
            skipped += 1
            continue
        prompts.append(KShotPrompt(text, demos, query))
    return prompts


def prompt_ids_of_length(
    documents: Sequence[str],
    tokenizer,
    spec: AnchorSpec,
    length: int,
    batch: int = 1,
    demo_tokens: int = 64,
    query_tokens: int = 12,
    seed: int = 0,
) -> torch.Tensor:
    """``(batch, length)`` token ids of k-shot prompts cut to exactly ``length`` tokens.

    Enough demonstrations are taken to exceed ``length``; the prompt is then cut on the left
    (the oldest demonstration loses its start, keeps its anchor), so every row has the same
    length and no padding, as the latency sweep needs.
    """
    if not isinstance(length, int) or length < query_tokens + 2:
        raise ParameterError(f"length must be an int > query_tokens + 1, got {length!r}")
    k = max(1, -(-length // max(1, demo_tokens)) + 1)
    rows = []
    for prompt in kshot_prompts(documents, tokenizer, spec, k, batch, demo_tokens, query_tokens, seed):
        ids = tokenizer.encode(prompt.text, add_special_tokens=False)
        if len(ids) < length:
            raise DataError(f"prompt has {len(ids)} tokens, fewer than length={length}")
        rows.append(ids[-length:])
    return torch.tensor(rows, dtype=torch.long)
