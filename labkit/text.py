r"""Text helpers every study shares: one sentence splitter, word counts, a real-tokenizer counter.

One splitter for labkit (the anchor study's sentences, ROUGE-Lsum's one-sentence-per-line, the
extractive summarizers' candidates, the meaning score's units), so a sentence means the same
thing in every table. It is rule-based and punkt-like: a sentence ends at . ! ? (runs of them,
e.g. "?!" or "..."), optionally followed by closing quotes / brackets, when whitespace and then
a plausible sentence start follow, or at a blank line. Known abbreviations, single-letter
initials and numbers ("3.5") do not end a sentence. Hand-written because NLTK's punkt needs a
data download and labkit runs offline; spaCy's sentencizer would add a large dependency for
the same rules.

>>> split_sentences("Dr. Smith arrived at 3.5 p.m. today. Was it late? Yes!")
['Dr. Smith arrived at 3.5 p.m. today.', 'Was it late?', 'Yes!']
>>> split_sentences("OK . so we start . Right .", split_before_lowercase=True)
['OK .', 'so we start .', 'Right .']
>>> one_sentence_per_line("First one. Second one!\nThird")
'First one.\nSecond one!\nThird'
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from labkit.errors import ParameterError
from labkit.models import resolve

__all__ = [
    "one_sentence_per_line",
    "sentence_spans",
    "split_sentences",
    "token_counter",
    "transcript_sentences",
    "word_count",
]

# Rule-based, punkt-like: a sentence ends at . ! ? (runs of them, e.g. "?!" or "..."), optionally
# followed by closing quotes / brackets, when whitespace and then a plausible sentence start follow,
# or at a blank line. Known abbreviations, single-letter initials and numbers ("3.5") do not end
# a sentence.
_ABBREVIATIONS = frozenset(
    """
mr mrs ms dr prof sr jr st mt vs etc e.g i.e cf al fig figs no nos vol vols ed eds approx
dept est inc ltd co corp jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k a.m p.m ph.d
gen col lt capt sgt rev hon
""".split()
)
_BOUNDARY = re.compile(r"""([.!?]+|…)(["'”’)\]]*)(?=\s+|$)|\n\s*\n""")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")
_NEXT_VISIBLE = re.compile(r"\s*(\S)")
#: how far back from a period the word before it is looked for: every check reads a bounded
#: window, so splitting is linear in the text (slicing ``text[:dot]`` at every period made a
#: 1 MB text take minutes)
_LOOKBACK = 64


def sentence_spans(text: str, *, split_before_lowercase: bool = False) -> list[tuple[int, int]]:
    """``(start, end)`` character spans of the sentences of ``text`` (whitespace excluded).

    Why spans and not strings: the anchor study puts ``<AC>`` right after a sentence while
    keeping the original whitespace, so the text round-trips.

    ``split_before_lowercase``: also end a sentence when the next one starts in lower case.
    Edited prose rarely does that after a full stop ("e.g. this" is one sentence), but speech
    transcripts do all the time ("OK . so we ..."), so the summarization study turns it on.
    """
    if not isinstance(text, str):
        raise ParameterError(f"text must be a str, got {type(text).__name__}")
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if match.group(1) is None:  # blank line: paragraph break
            end = match.start()
        else:
            end = match.end()
            if match.group(1) == "." and _is_abbreviation(text, match.start()):
                continue
            if not split_before_lowercase and not _next_starts_sentence(text, end):
                continue
        _append_span(spans, text, start, end)
        start = end
    _append_span(spans, text, start, len(text))
    return spans


def _is_abbreviation(text: str, dot: int) -> bool:
    word = _WORD_BEFORE.search(text, max(0, dot - _LOOKBACK), dot)
    if not word:
        return False
    token = word.group(1).lower().rstrip(".")
    if token in _ABBREVIATIONS:
        return True
    # A single capital letter before the dot is an initial ("J. R. R. Tolkien").
    return (
        len(token) == 1 and word.group(1).isupper() and (dot - len(word.group(1)) == 0 or not text[dot - 2].isalpha())
    )


def _next_starts_sentence(text: str, end: int) -> bool:
    following = _NEXT_VISIBLE.match(text, end)
    if not following:
        return True
    # Lower-case continuation ("e.g. this", "... and then") is not a new sentence.
    return not following.group(1).islower()


def _append_span(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    chunk = text[start:end]
    stripped = chunk.strip()
    if stripped:
        lead = len(chunk) - len(chunk.lstrip())
        spans.append((start + lead, start + lead + len(stripped)))


def split_sentences(text: str, *, split_before_lowercase: bool = False) -> list[str]:
    """Split ``text`` into sentences without any network access or NLTK data.

    >>> split_sentences("Dr. Smith arrived at 3.5 p.m. today. Was it late? Yes!")
    ['Dr. Smith arrived at 3.5 p.m. today.', 'Was it late?', 'Yes!']
    """
    return [text[a:b] for a, b in sentence_spans(text, split_before_lowercase=split_before_lowercase)]


def one_sentence_per_line(text: str) -> str:
    """``text`` with one sentence per line (existing line breaks kept): the input ROUGE-Lsum
    needs, since ``rouge_score`` splits summaries at newlines only."""
    lines = []
    for line in (text or "").splitlines():
        lines.extend(split_sentences(line, split_before_lowercase=True))
    return "\n".join(lines)


def word_count(text: str) -> int:
    """Whitespace-separated words: the unit of the summarization study's length budgets."""
    return len(text.split())


def transcript_sentences(transcript: str, min_words: int = 5) -> list[str]:
    """Sentences of a ``speaker: text`` transcript (speaker names dropped), each of at least
    ``min_words`` words: the candidates extractive summarizers choose from.

    Memoised (a fresh list each call): every extractive system, floor and guard of the
    summarization study asks for the same ~300 transcripts' sentences, once per instruction."""
    return list(_transcript_sentences(transcript, min_words))


@functools.lru_cache(maxsize=512)
def _transcript_sentences(transcript: str, min_words: int) -> tuple[str, ...]:
    out = []
    for line in transcript.splitlines():
        speaker, sep, content = line.partition(": ")
        text = content if sep and len(speaker.split()) <= 4 else line
        out.extend(s for s in split_sentences(text, split_before_lowercase=True) if word_count(s) >= min_words)
    return tuple(out)


def token_counter(model_name: str) -> Callable[[str], int]:
    """Count tokens with a real tokenizer resolved through the model registry (one counter for
    all systems keeps tokens per second comparable)."""
    from transformers import AutoTokenizer  # heavy import, only when a counter is asked for

    tokenizer = AutoTokenizer.from_pretrained(str(resolve(model_name).path))
    tokenizer.model_max_length = 10**9  # we count, we do not feed a model

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count
