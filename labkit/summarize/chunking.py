"""Fitting long transcripts into a model's context: error, truncation, or map-reduce chunks.

QMSum transcripts are 4-5x longer than a 2,048-token context (Tiny Titans truncated them).
Three strategies, chosen by the caller, never silently:

* ``"error"``: a prompt that does not fit raises :class:`ParameterError` naming the item;
* ``"truncate"``: keep the head of the transcript that fits, and report it through ``warn``;
* ``"chunk"``: map-reduce ("summarize each chunk, then summarize the summaries"). Chunks are
  whole transcript lines packed up to the token budget the model's context leaves after the
  prompt template and the tokens reserved for the answer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from labkit.errors import ParameterError

STRATEGIES = ("error", "truncate", "chunk")


class TokenCounter:
    """Count and cut text in a model's tokens (an HF tokenizer, or ~4 characters per token)."""

    def __init__(self, tokenizer=None, chars_per_token: float = 4.0):
        self.tokenizer = tokenizer
        self.chars_per_token = chars_per_token

    def count(self, text: str) -> int:
        if self.tokenizer is None:
            return math.ceil(len(text) / self.chars_per_token)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def head(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` with at most ``max_tokens`` tokens."""
        if max_tokens <= 0:
            return ""
        if self.tokenizer is None:
            return text[: int(max_tokens * self.chars_per_token)]
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= max_tokens:
            return text
        return self.tokenizer.decode(ids[:max_tokens], skip_special_tokens=True)


def transcript_budget(context_length: int, template_tokens: int, max_new_tokens: int, what: str = "model") -> int:
    """Tokens left for the transcript once the template and the answer are accounted for."""
    budget = context_length - template_tokens - max_new_tokens
    if budget < 16:
        raise ParameterError(
            f"context_length={context_length} of {what} leaves {budget} tokens for "
            f"the transcript after the prompt template ({template_tokens}) and "
            f"max_new_tokens ({max_new_tokens}); lower max_new_tokens"
        )
    return budget


def _split_long_line(line: str, counter: TokenCounter, max_tokens: int) -> list[str]:
    """Cut one over-long line into word-aligned pieces of at most ``max_tokens`` tokens each
    (word counts are summed, which tokenizers match closely; a single giant word is cut)."""
    words = []
    for word in line.split():
        n = counter.count(" " + word)
        words.append((counter.head(word, max_tokens), max_tokens) if n > max_tokens else (word, n))
    return _pack(words, max_tokens, " ")


def _pack(pieces: list[tuple[str, int]], max_tokens: int, joiner: str) -> list[str]:
    """Greedy packing of ``(text, tokens)`` pieces, in order, into groups of at most
    ``max_tokens`` tokens (a piece larger than that is a group of its own), each joined by ``joiner``."""
    groups, current, used = [], [], 0
    for text, n in pieces:
        if current and used + n > max_tokens:
            groups.append(joiner.join(current))
            current, used = [], 0
        current.append(text)
        used += n
    if current:
        groups.append(joiner.join(current))
    return groups


def chunk_lines(text: str, counter: TokenCounter, max_tokens: int) -> list[str]:
    """Pack whole lines into chunks of at most ``max_tokens``; a line longer than a chunk is
    split at word boundaries, so map-reduce reads every word of the transcript."""
    if max_tokens < 1:
        raise ParameterError(f"chunk size must be >= 1 token, got {max_tokens}")
    lines = []
    for line in text.splitlines():
        if counter.count(line) + 1 > max_tokens:
            lines.extend(_split_long_line(line, counter, max(1, max_tokens - 1)))
        else:
            lines.append(line)
    return _pack([(line, counter.count(line) + 1) for line in lines], max_tokens, "\n")  # + 1: the newline


@dataclass
class Fitted:
    """How one transcript was fitted: the text(s) to prompt with and what was done."""

    texts: list[str]
    truncated: bool = False
    kept_share: float = 1.0  # share of the transcript's tokens the model saw (truncation)


def fit(text: str, counter: TokenCounter, budget: int, strategy: str, where: str = "") -> Fitted:
    """Apply ``strategy`` to one transcript that must fit in ``budget`` tokens."""
    if strategy not in STRATEGIES:
        raise ParameterError(f"context strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    n = counter.count(text)
    if n <= budget:
        return Fitted([text])
    if strategy == "error":
        raise ParameterError(
            f"{where or 'input'}: the prompt needs {n} transcript tokens but the context leaves "
            f"{budget}; set context_strategy='truncate' or 'chunk'"
        )
    if strategy == "truncate":
        return Fitted([counter.head(text, budget)], truncated=True, kept_share=budget / n)
    return Fitted(chunk_lines(text, counter, budget))


def map_reduce(
    texts: Sequence[Sequence[str]],
    make_prompt: Callable[[str, bool, int], str],
    generate: Callable[[list[str]], list[str]],
    counter: TokenCounter,
    budget: int,
    max_rounds: int = 3,
) -> tuple[list[str], int]:
    """Summarize each item's chunks, then the joined chunk summaries, until one text remains.

    Args:
        texts: per item, its chunks (one chunk: a single ordinary call).
        make_prompt: ``(text, is_final, n_chunks) -> prompt``.
        generate: prompts -> outputs (one batched call per round, across items).
        budget: transcript tokens per prompt, as for the chunks.
        max_rounds: after this many rounds the joined summaries are cut to ``budget``.
    Returns:
        (one summary per item, number of rounds used).
    """
    results: list[str] = [""] * len(texts)
    state = {i: list(chunks) or [" "] for i, chunks in enumerate(texts)}
    rounds = 0
    while state:
        rounds += 1
        prompts, owners = [], []
        for i, chunks in state.items():
            for chunk in chunks:
                prompts.append(make_prompt(chunk, len(chunks) == 1, len(chunks)))
                owners.append(i)
        merged: dict[int, list[str]] = defaultdict(list)
        for i, out in zip(owners, generate(prompts)):
            merged[i].append(out.strip())
        next_state = {}
        for i, parts in merged.items():
            if len(state[i]) == 1:
                results[i] = parts[0]
                continue
            joined = "\n".join(p for p in parts if p) or " "
            if rounds + 1 >= max_rounds:
                next_state[i] = [counter.head(joined, budget)]
            else:
                next_state[i] = chunk_lines(joined, counter, budget) or [" "]
        state = next_state
    return results, rounds
