"""Summarization items: QMSum meetings or a user's JSONL, the three instruction types, lengths.

Every system in :mod:`labkit.summarize` consumes a list of :class:`Item` (a transcript, an
optional query and a reference summary), so QMSum and a user's own data go through the same
code. The instruction types follow Tiny Titans (Fu et al. 2024): *long*, *medium* and *short*
summaries. QMSum has one reference per query, so all three instruction types are scored
against that reference (the paper regenerated references per type with GPT-4; we cannot).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from labkit.data.parsers import read_utf8
from labkit.errors import DataError, ParameterError

# QMSum marks disfluencies and noises as {disfmarker}, {vocalsound}, {gap}, ...: they are not
# words a summary should contain, so systems see the transcript without them.
_MARKER = re.compile(r"\{[a-z_]+\}")
_SPACES = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class Instruction:
    """One instruction type: a prompt template and the length (words) it asks for."""

    name: str
    template: str
    target_words: int

    def prompt(self, transcript: str, query: str | None = None) -> str:
        task = query.strip() if query and query.strip() else "Summarize the meeting."
        return self.template.format(transcript=transcript, task=task, words=self.target_words)


_TEMPLATE = "Below is a meeting transcript.\n\n{transcript}\n\n{task} {style} Write about {words} words.\nSummary:"
INSTRUCTIONS: dict[str, Instruction] = {
    "long": Instruction(
        "long", _TEMPLATE.replace("{style}", "Write a long, detailed summary that covers every topic discussed."), 200
    ),
    "medium": Instruction(
        "medium", _TEMPLATE.replace("{style}", "Write a summary of medium length covering the main points."), 100
    ),
    "short": Instruction(
        "short", _TEMPLATE.replace("{style}", "Write a short summary with only the most important points."), 40
    ),
}


def instruction(name: str) -> Instruction:
    """The instruction type ``name`` ("long" | "medium" | "short")."""
    if name not in INSTRUCTIONS:
        raise ParameterError(f"unknown instruction type {name!r}; choose one of {', '.join(INSTRUCTIONS)}")
    return INSTRUCTIONS[name]


@dataclass(frozen=True)
class Item:
    """One thing to summarize: a transcript, an optional query, and its reference summary."""

    item_id: str
    transcript: str
    reference: str
    query: str | None = None
    source: str = ""  # meeting id or "file:line" (for error messages and tables)
    domain: str = ""
    kind: str = "general"


def clean_text(text: str) -> str:
    """Drop QMSum's ``{disfmarker}``-style markers and collapse spaces (keeps line breaks)."""
    lines = (_SPACES.sub(" ", _MARKER.sub(" ", line)).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line and not line.endswith(":"))


def validate(item: Item) -> Item:
    """Raise :class:`DataError` naming the item when its transcript or reference is empty."""
    where = item.source or item.item_id
    if not isinstance(item.transcript, str) or not item.transcript.strip():
        raise DataError(f"{where}: field 'transcript' is empty")
    if not isinstance(item.reference, str) or not item.reference.strip():
        raise DataError(f"{where}: field 'summary' (the reference) has no text")
    return item


def qmsum_items(meetings: Sequence, kinds: Iterable[str] = ("general",), max_meetings: int = 0) -> list[Item]:
    """Items from QMSum meetings (``labkit.data.load("qmsum")[split]``), one per query.

    Args:
        meetings: :class:`labkit.data.Meeting` objects of one split.
        kinds: ``"general"`` (summarize the whole meeting) and/or ``"specific"`` queries.
        max_meetings: keep the first ``n`` meetings (0: all).
    """
    kinds = tuple(kinds)
    for kind in kinds:
        if kind not in ("general", "specific"):
            raise ParameterError(f"query kind {kind!r} is not 'general' or 'specific'")
    items = []
    for meeting in list(meetings)[: max_meetings or None]:
        transcript = clean_text(meeting.transcript)
        for kind in kinds:
            queries = meeting.general_queries if kind == "general" else meeting.specific_queries
            for i, q in enumerate(queries):
                items.append(
                    validate(
                        Item(
                            f"{meeting.meeting_id}/{kind}/{i}",
                            transcript,
                            q.answer,
                            None if kind == "general" else q.query,
                            meeting.meeting_id,
                            meeting.domain,
                            kind,
                        )
                    )
                )
    if not items:
        raise DataError(f"no {'/'.join(kinds)} queries in the {len(meetings)} meetings given")
    return items


def load_jsonl(path: str | Path) -> list[Item]:
    """A user's data: one JSON object per line with ``transcript``, ``summary``, optional ``query``.

    Raises :class:`DataError` naming the file, line and field for anything malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    items = []
    for n, line in enumerate(read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object")
        for field in ("transcript", "summary"):
            if field not in row:
                raise DataError(f"{where}: missing field {field!r}")
            if not isinstance(row[field], str):
                raise DataError(f"{where}: field {field!r} must be a string")
        query = row.get("query")
        if query is not None and not isinstance(query, str):
            raise DataError(f"{where}: field 'query' must be a string")
        items.append(
            validate(
                Item(
                    str(row.get("id", f"{path.stem}/{n}")),
                    row["transcript"],
                    row["summary"],
                    query or None,
                    where,
                    str(row.get("domain", "")),
                    "specific" if query else "general",
                )
            )
        )
    if not items:
        raise DataError(f"{path}: no items (expected JSON lines with 'transcript' and 'summary')")
    return items


def token_lengths(
    items: Sequence[Item], count_tokens: Callable[[str], int], instruction_name: str = "medium"
) -> pd.DataFrame:
    """One row per item: words and tokens of the transcript, the full prompt and the reference.

    Prompt tokens are the transcript's plus the template's (with the item's query): counted
    apart, so a transcript asked several queries is tokenized once (the sum differs from
    tokenizing the joined prompt by a token or two at the seams).
    """
    inst = instruction(instruction_name)
    rows = []
    for item in items:
        transcript_tokens = count_tokens(item.transcript)
        rows.append(
            {
                "item": item.item_id,
                "domain": item.domain,
                "queries": item.kind,
                "transcript_words": len(item.transcript.split()),
                "transcript_tokens": transcript_tokens,
                "prompt_tokens": transcript_tokens + count_tokens(inst.prompt("", item.query)),
                "reference_words": len(item.reference.split()),
                "reference_tokens": count_tokens(item.reference),
            }
        )
    return pd.DataFrame(rows)


def context_fit(lengths: pd.DataFrame, contexts: dict[str, int]) -> pd.DataFrame:
    """Per model context: share of prompts that fit, and how many times too long they are."""
    rows = []
    for model, context in contexts.items():
        ratio = lengths["prompt_tokens"] / context
        rows.append(
            {
                "model": model,
                "context_tokens": int(context),
                "items": len(lengths),
                "fit_share": float((ratio <= 1).mean()),
                "median_prompt_over_context": float(ratio.median()),
                "max_prompt_over_context": float(ratio.max()),
            }
        )
    return pd.DataFrame(rows)
