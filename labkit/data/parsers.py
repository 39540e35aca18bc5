"""Parsers for the registry's datasets, with row-level validation.

Each parser turns a file (or folder) into typed records or a pandas frame and raises one
:class:`~labkit.errors.DataError` naming the file, the row and the field for bad input, so a
user's own CSV in the same format gets the same checks as the mirrored original.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from labkit.errors import DataError

PAIR_COLUMNS = ("dr_id", "question_1", "question_2", "label")


def read_utf8(path: Path) -> str:
    """A file's text as people save it: UTF-8 with or without a byte-order mark (Excel writes
    one), Windows (CRLF) or old Mac (CR) line ends, all read as ``\n``. A byte that is not
    UTF-8 (a file saved as Latin-1 or Windows-1252) is one :class:`DataError` naming the file,
    line and column, rather than a bare ``UnicodeDecodeError`` with no file name.

    Why no guessing of other encodings: a wrong guess turns "é" into "Ã©" silently, and the
    numbers computed from the text would carry it; asking for UTF-8 is one clear step.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, start) + 1
        column = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        latin = raw[start : start + 1].decode("latin-1")
        hint = " (in Excel: Save As, 'CSV UTF-8')" if path.suffix.lower() == ".csv" else ""
        raise DataError(
            f"{path}: line {line}, column {column}: not UTF-8 text (byte "
            f"0x{raw[start]:02x}: {latin!r} in Latin-1); save the file as UTF-8"
            f"{hint}"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_csv_lines(path: Path) -> list[tuple[int, list[str]]]:
    """``(file line number, fields)`` for each CSV record (blank lines skipped).

    The line number is where the record starts in the file, so a message points at what the
    user sees in an editor even when a quoted field spans lines (a data-frame row number does
    not, once blank or multi-line records come in between).
    """
    path = Path(path)
    text = read_utf8(path)
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    reader = csv.reader(io.StringIO(text, newline=""))
    out, start = [], 1
    try:
        for row in reader:
            if row and any(c.strip() for c in row):
                out.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: not a readable CSV ({exc})") from None
    return out


def parse_pairs_csv(path: Path) -> pd.DataFrame:
    """Sentence pairs with binary labels, as in Curai's MQP.

    Accepts MQP's own layout (no header: ``dr_id, question_1, question_2, label``) or a CSV with
    a header naming at least ``question_1, question_2, label`` (``dr_id`` optional: it is the
    grouping used for doctor-wise splits; without it every row is its own group).

    Returns a frame with columns ``dr_id`` (int), ``question_1``, ``question_2`` (str),
    ``label`` (int 0/1); index = the file line where each pair starts (1-based; for a file
    without multi-line fields or blank lines, the CSV row number). Without ``dr_id`` each
    pair's group is that line number.
    """
    path = Path(path)
    rows = read_csv_lines(path)
    header = [c.strip().lower() for c in rows[0][1]]
    if {"question_1", "question_2", "label"} <= set(header):
        index = {name: header.index(name) for name in header}
        body = rows[1:]
    elif any(name in header for name in PAIR_COLUMNS) or any(
        name in header for name in ("question1", "text_1", "sentence1")
    ):
        missing = [c for c in ("question_1", "question_2", "label") if c not in header]
        raise DataError(f"{path}: header lacks column(s) {', '.join(missing)} (found: {', '.join(header)})")
    else:
        index = {name: i for i, name in enumerate(PAIR_COLUMNS)}
        body = rows
    if not body:
        raise DataError(f"{path}: no data rows")
    records = []
    for line, row in body:
        if len(row) < max(index.values()) + 1:
            raise DataError(
                f"{path}: line {line} has {len(row)} fields, expected "
                f"{max(index.values()) + 1} ({', '.join(index)}); truncated file?"
            )
        record = {}
        for name in ("question_1", "question_2"):
            text = row[index[name]].strip()
            if not text:
                raise DataError(f"{path}: line {line}, field {name!r} is empty")
            record[name] = text
        raw_label = row[index["label"]].strip()
        if raw_label not in ("0", "1", "0.0", "1.0"):
            raise DataError(f"{path}: line {line}, field 'label' must be 0 or 1, got {raw_label!r}")
        record["label"] = int(float(raw_label))
        if "dr_id" in index:
            raw = row[index["dr_id"]].strip()
            try:
                record["dr_id"] = int(raw)
            except ValueError:
                raise DataError(f"{path}: line {line}, field 'dr_id' must be an integer, got {raw!r}") from None
        else:
            record["dr_id"] = line
        records.append((line, record))
    frame = pd.DataFrame([r for _, r in records], index=[i for i, _ in records], columns=list(PAIR_COLUMNS))
    frame.index.name = "row"
    return frame.astype({"dr_id": int, "label": int})


def parse_text(path: Path) -> str:
    """A plain UTF-8 text corpus (tinyshakespeare)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    text = read_utf8(path)
    if not text.strip():
        raise DataError(f"{path}: text corpus is empty")
    return text


CHINCHILLA_COLUMNS = {"Model Size": "N", "Training FLOP": "C", "loss": "loss"}


def positive_finite(path: Path, line: int, field: str, raw: str) -> float:
    """``raw`` as a float > 0 that is finite; else a DataError naming file, line and field
    and showing the value as written in the file (never ``np.float64(...)``)."""
    text = raw.strip()
    try:
        value = float(text)
    except ValueError:
        why = "is missing" if not text else "is not a number"
        raise DataError(f"{path}: line {line}, field {field!r} {why}, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise DataError(f"{path}: line {line}, field {field!r} must be a positive finite number, got {text!r}")
    return value


def parse_chinchilla(path: Path) -> pd.DataFrame:
    """Chinchilla Fig. 4 points: columns ``N`` (params), ``C`` (FLOP), ``D = C/(6N)``, ``loss``.

    Every value must be a positive finite number (``inf``, ``nan``, ``0`` are rejected with
    the file line and the column's name in the file)."""
    path = Path(path)
    rows = read_csv_lines(path)
    (_, header), body = rows[0], rows[1:]
    header = [c.strip() for c in header]
    missing = [c for c in CHINCHILLA_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(header)})")
    if not body:
        raise DataError(f"{path}: no data rows")
    where = {column: header.index(column) for column in CHINCHILLA_COLUMNS}
    records, lines = [], []
    for line, row in body:
        if len(row) != len(header):
            raise DataError(f"{path}: line {line} has {len(row)} fields, expected {len(header)} ({', '.join(header)})")
        records.append({CHINCHILLA_COLUMNS[c]: positive_finite(path, line, c, row[i]) for c, i in where.items()})
        lines.append(line)
    out = pd.DataFrame(records, columns=list(CHINCHILLA_COLUMNS.values()))
    out["D"] = out["C"] / (6.0 * out["N"])
    return out[["N", "D", "C", "loss"]]


@dataclass
class Turn:
    speaker: str
    content: str


@dataclass
class Query:
    query: str
    answer: str
    kind: str  # "general" | "specific"
    spans: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Meeting:
    """One QMSum meeting: transcript turns plus its general and specific query-summary pairs."""

    meeting_id: str
    split: str
    domain: str
    turns: list[Turn]
    queries: list[Query]
    topics: list[str]

    @property
    def transcript(self) -> str:
        """The transcript as ``Speaker: text`` lines."""
        return "\n".join(f"{t.speaker}: {t.content}" for t in self.turns)

    @property
    def general_queries(self) -> list[Query]:
        return [q for q in self.queries if q.kind == "general"]

    @property
    def specific_queries(self) -> list[Query]:
        return [q for q in self.queries if q.kind == "specific"]


def qmsum_domain(meeting_id: str) -> str:
    """QMSum's three domains: Academic (ICSI, ``B*``), Product (AMI), Committee (the rest)."""
    if meeting_id[:1] == "B" and meeting_id[1:3].isalpha():
        return "Academic"
    if meeting_id[:2] in ("ES", "IS", "TS", "IB", "IN", "EN"):
        return "Product"
    return "Committee"


_WS = re.compile(r"[ \t\n\r]*")


def json_line(text: str, where: tuple[str | int, ...]) -> int | None:
    """The file line where the value at ``where`` (keys and list indices) starts, or None.

    ``json`` keeps no positions for parsed values, and a QMSum file is one JSON object over
    thousands of lines; this walks only the path asked for with ``JSONDecoder.raw_decode``
    (which does report where each value ends), and runs only when there is an error to report.
    """
    decoder = json.JSONDecoder()
    try:
        pos = _WS.match(text, 0).end()
        for step in where:
            if isinstance(step, str):
                if text[pos : pos + 1] != "{":
                    return None
                pos = _WS.match(text, pos + 1).end()
                while True:
                    if text[pos : pos + 1] == "}":
                        return None
                    key, pos = decoder.raw_decode(text, pos)
                    pos = _WS.match(text, _WS.match(text, pos).end() + 1).end()  # past ':'
                    if key == step:
                        break
                    _, pos = decoder.raw_decode(text, pos)
                    pos = _WS.match(text, pos).end()
                    if text[pos : pos + 1] == ",":
                        pos = _WS.match(text, pos + 1).end()
            else:
                if text[pos : pos + 1] != "[":
                    return None
                pos = _WS.match(text, pos + 1).end()
                for _ in range(step):
                    _, pos = decoder.raw_decode(text, pos)
                    pos = _WS.match(text, pos).end()
                    if text[pos : pos + 1] != ",":
                        return None
                    pos = _WS.match(text, pos + 1).end()
    except (json.JSONDecodeError, ValueError):
        return None
    return text.count("\n", 0, pos) + 1


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), "a number")


class _Where:
    """Builds "file: line N: field path ..." messages for one JSON file."""

    def __init__(self, path: Path, text: str):
        self.path, self.text = path, text

    def error(self, steps: tuple[str | int, ...], message: str) -> DataError:
        label = "".join(f"[{s}]" if isinstance(s, int) else (f".{s}" if i else s) for i, s in enumerate(steps))
        line = json_line(self.text, steps)
        at = f"line {line}: " if line else ""
        return DataError(f"{self.path}: {at}{label} {message}")


def parse_qmsum_meeting(path: Path, split: str) -> Meeting:
    """One QMSum meeting file, every field checked; errors name the file and the line."""
    path = Path(path)
    text = read_utf8(path)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: line 1: expected a JSON object (a QMSum meeting), got {_kind(raw)}")
    where = _Where(path, text)
    for key in ("meeting_transcripts", "general_query_list", "specific_query_list"):
        if key not in raw:
            raise DataError(f"{path}: missing field {key!r}")
        if not isinstance(raw[key], list):
            raise where.error((key,), f"must be a list, got {_kind(raw[key])}")
    turns = []
    for i, turn in enumerate(raw["meeting_transcripts"]):
        steps = ("meeting_transcripts", i)
        if not isinstance(turn, dict):
            raise where.error(steps, f"must be an object with 'speaker' and 'content', got {_kind(turn)}")
        if not isinstance(turn.get("content"), str):
            raise where.error(
                steps,
                "lacks 'content'"
                if "content" not in turn
                else f"field 'content' must be a string, got {_kind(turn['content'])}",
            )
        turns.append(Turn(str(turn.get("speaker", "")), turn["content"]))
    if not turns:
        raise DataError(f"{path}: transcript is empty")
    queries = []
    for kind in ("general", "specific"):
        for i, item in enumerate(raw[f"{kind}_query_list"]):
            steps = (f"{kind}_query_list", i)
            if not isinstance(item, dict):
                raise where.error(steps, f"must be an object with 'query' and 'answer', got {_kind(item)}")
            for name in ("query", "answer"):
                if not isinstance(item.get(name), str):
                    raise where.error(
                        steps,
                        f"lacks {name!r}"
                        if name not in item
                        else f"field {name!r} must be a string, got {_kind(item[name])}",
                    )
            if not item["answer"].strip():
                raise where.error(steps, "has an empty 'answer'")
            spans = []
            for j, span in enumerate(item.get("relevant_text_span", [])):
                try:
                    a, b = span
                    spans.append((int(a), int(b)))
                except (TypeError, ValueError):
                    raise where.error(
                        (*steps, "relevant_text_span", j),
                        f"must be a pair of turn numbers, got {json.dumps(span)}",
                    ) from None
            queries.append(Query(item["query"], item["answer"], kind, spans))
    topics = []
    for i, topic in enumerate(raw.get("topic_list", [])):
        if not isinstance(topic, dict):
            raise where.error(("topic_list", i), f"must be an object, got {_kind(topic)}")
        topics.append(str(topic.get("topic", "")))
    meeting_id = path.stem
    return Meeting(meeting_id, split, qmsum_domain(meeting_id), turns, queries, topics)


def parse_qmsum(root: Path, splits: tuple[str, ...] = ("train", "val", "test")) -> dict[str, list[Meeting]]:
    """All QMSum meetings under ``root/{train,val,test}/*.json``, split as published.

    The same checks apply to the registry's copy and to a user's own folder in QMSum's layout
    (``labkit.data.load("qmsum", path=folder)``; pass ``splits=("test",)`` for a folder that
    holds only some splits).
    """
    root = Path(root)
    out = {}
    for split in splits:
        folder = root / split
        if not folder.is_dir():
            raise DataError(
                f"{root}: no {split}/ folder (QMSum layout is {{train,val,test}}/*.json; "
                f"pass splits=(...) to load only the splits you have)"
            )
        out[split] = [parse_qmsum_meeting(p, split) for p in sorted(folder.glob("*.json"))]
        if not out[split]:
            raise DataError(f"{folder}: no meeting JSON files")
    return out
