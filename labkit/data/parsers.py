"""Parsers for the registry's datasets, with row-level validation.

Each parser turns a file (or folder) into typed records or a pandas frame and raises one
:class:`~labkit.errors.DataError` naming the file, the row and the field for bad input, so a
user's own CSV in the same format gets the same checks as the mirrored original.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from labkit.errors import DataError

PAIR_COLUMNS = ("dr_id", "question_1", "question_2", "label")


def _read_csv_rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable UTF-8 CSV ({exc})") from None


def parse_pairs_csv(path: Path) -> pd.DataFrame:
    """Sentence pairs with binary labels, as in Curai's MQP.

    Accepts MQP's own layout (no header: ``dr_id, question_1, question_2, label``) or a CSV with
    a header naming at least ``question_1, question_2, label`` (``dr_id`` optional: it is the
    grouping used for doctor-wise splits; without it every row is its own group).

    Returns a frame with columns ``dr_id`` (int), ``question_1``, ``question_2`` (str),
    ``label`` (int 0/1); index = 1-based CSV row number.
    """
    path = Path(path)
    rows = _read_csv_rows(path)
    header = [c.strip().lower() for c in rows[0]]
    if {"question_1", "question_2", "label"} <= set(header):
        index = {name: header.index(name) for name in header}
        body, first_row = rows[1:], 2
    elif any(name in header for name in PAIR_COLUMNS) or any(
            name in header for name in ("question1", "text_1", "sentence1")):
        missing = [c for c in ("question_1", "question_2", "label") if c not in header]
        raise DataError(f"{path}: header lacks column(s) {', '.join(missing)} "
                        f"(found: {', '.join(header)})")
    else:
        index = {name: i for i, name in enumerate(PAIR_COLUMNS)}
        body, first_row = rows, 1
    if not body:
        raise DataError(f"{path}: no data rows")
    records = []
    for offset, row in enumerate(body):
        line = first_row + offset
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < max(index.values()) + 1:
            raise DataError(f"{path}: row {line} has {len(row)} fields, expected "
                            f"{max(index.values()) + 1} ({', '.join(index)}); truncated file?")
        record = {}
        for name in ("question_1", "question_2"):
            text = row[index[name]].strip()
            if not text:
                raise DataError(f"{path}: row {line}, field {name!r} is empty")
            record[name] = text
        raw_label = row[index["label"]].strip()
        if raw_label not in ("0", "1", "0.0", "1.0"):
            raise DataError(f"{path}: row {line}, field 'label' must be 0 or 1, got {raw_label!r}")
        record["label"] = int(float(raw_label))
        if "dr_id" in index:
            raw = row[index["dr_id"]].strip()
            try:
                record["dr_id"] = int(raw)
            except ValueError:
                raise DataError(f"{path}: row {line}, field 'dr_id' must be an integer, "
                                f"got {raw!r}") from None
        else:
            record["dr_id"] = line
        records.append((line, record))
    frame = pd.DataFrame([r for _, r in records], index=[i for i, _ in records],
                         columns=list(PAIR_COLUMNS))
    frame.index.name = "row"
    return frame.astype({"dr_id": int, "label": int})


def parse_text(path: Path) -> str:
    """A plain UTF-8 text corpus (tinyshakespeare)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise DataError(f"{path}: text corpus is empty")
    return text


CHINCHILLA_COLUMNS = {"Model Size": "N", "Training FLOP": "C", "loss": "loss"}


def parse_chinchilla(path: Path) -> pd.DataFrame:
    """Chinchilla Fig. 4 points: columns ``N`` (params), ``C`` (FLOP), ``D = C/(6N)``, ``loss``."""
    path = Path(path)
    _read_csv_rows(path)  # existence, emptiness, encoding
    frame = pd.read_csv(path)
    missing = [c for c in CHINCHILLA_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} "
                        f"(found: {', '.join(map(str, frame.columns))})")
    out = frame[list(CHINCHILLA_COLUMNS)].rename(columns=CHINCHILLA_COLUMNS)
    for column in out.columns:
        values = pd.to_numeric(out[column], errors="coerce")
        bad = values.isna() | ~(values > 0)
        if bad.any():
            row = int(bad.idxmax()) + 2  # header is line 1
            raise DataError(f"{path}: row {row}, field {column!r} must be a positive number, "
                            f"got {out[column].iloc[int(bad.idxmax())]!r}")
        out[column] = values.astype(float)
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


def parse_qmsum_meeting(path: Path, split: str) -> Meeting:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    for key in ("meeting_transcripts", "general_query_list", "specific_query_list"):
        if key not in raw:
            raise DataError(f"{path}: missing field {key!r}")
    turns = []
    for i, turn in enumerate(raw["meeting_transcripts"]):
        if not isinstance(turn, dict) or "content" not in turn:
            raise DataError(f"{path}: meeting_transcripts[{i}] lacks 'content'")
        turns.append(Turn(str(turn.get("speaker", "")), str(turn["content"])))
    if not turns:
        raise DataError(f"{path}: transcript is empty")
    queries = []
    for kind in ("general", "specific"):
        for i, item in enumerate(raw[f"{kind}_query_list"]):
            if not item.get("answer", "").strip():
                raise DataError(f"{path}: {kind}_query_list[{i}] has an empty 'answer'")
            spans = [(int(a), int(b)) for a, b in item.get("relevant_text_span", [])]
            queries.append(Query(item["query"], item["answer"], kind, spans))
    topics = [t.get("topic", "") for t in raw.get("topic_list", [])]
    meeting_id = Path(path).stem
    return Meeting(meeting_id, split, qmsum_domain(meeting_id), turns, queries, topics)


def parse_qmsum(root: Path, splits: tuple[str, ...] = ("train", "val", "test")) -> dict[str, list[Meeting]]:
    """All QMSum meetings under ``root/{train,val,test}/*.json``, split as published."""
    root = Path(root)
    out = {}
    for split in splits:
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"{root}: no {split}/ folder (QMSum layout is {{train,val,test}}/*.json)")
        out[split] = [parse_qmsum_meeting(p, split) for p in sorted(folder.glob("*.json"))]
        if not out[split]:
            raise DataError(f"{folder}: no meeting JSON files")
    return out

