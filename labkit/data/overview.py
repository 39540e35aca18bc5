"""What each dataset holds: counts, lengths, label balance, transcript length vs context.

The computations behind ``notebooks/data_overview.ipynb``; each returns a pandas frame so the
notebook only plots and saves.
"""
from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd

from labkit.data.parsers import Meeting

PROFILES = {
    "smoke": {"qmsum_splits": ["test"], "max_meetings": 8, "tokenizer": "all-MiniLM-L6-v2",
              "contexts": [512, 2048, 4096, 8192]},
    "default": {"qmsum_splits": ["train", "val", "test"], "max_meetings": 0,
                "tokenizer": "all-MiniLM-L6-v2", "contexts": [512, 2048, 4096, 8192, 32768]},
    "paper": {"qmsum_splits": ["train", "val", "test"], "max_meetings": 0,
              "tokenizer": "all-MiniLM-L6-v2", "contexts": [512, 2048, 4096, 8192, 32768]},
}


def word_count(text: str) -> int:
    return len(text.split())


def mqp_by_doctor(pairs: pd.DataFrame) -> pd.DataFrame:
    """Pairs per doctor and label (doctor-wise splits must keep this balance in mind)."""
    table = pairs.groupby(["dr_id", "label"]).size().unstack(fill_value=0)
    table.columns = [f"label_{c}" for c in table.columns]
    table["pairs"] = table.sum(axis=1)
    table["unique_question_1"] = pairs.groupby("dr_id")["question_1"].nunique()
    return table.reset_index()


def mqp_lengths(pairs: pd.DataFrame) -> pd.DataFrame:
    """Long form: one row per question with its word count, label and side."""
    rows = []
    for side in ("question_1", "question_2"):
        rows.append(pd.DataFrame({"side": side, "label": pairs["label"].map({0: "different", 1: "similar"}),
                                  "words": pairs[side].map(word_count)}))
    return pd.concat(rows, ignore_index=True)


def text_summary(text: str) -> dict[str, float]:
    lines = [line for line in text.splitlines() if line.strip()]
    return {"characters": len(text), "words": word_count(text), "non_empty_lines": len(lines),
            "unique_words": len(set(text.split()))}


def qmsum_lengths(splits: dict[str, list[Meeting]], count_tokens: Callable[[str], int],
                  max_meetings: int = 0) -> pd.DataFrame:
    """One row per meeting: split, domain, turns, words, tokens, queries."""
    rows = []
    for split, meetings in splits.items():
        for meeting in meetings[:max_meetings or None]:
            text = meeting.transcript
            rows.append({"meeting": meeting.meeting_id, "split": split, "domain": meeting.domain,
                         "turns": len(meeting.turns), "words": word_count(text),
                         "tokens": count_tokens(text),
                         "general_queries": len(meeting.general_queries),
                         "specific_queries": len(meeting.specific_queries),
                         "summary_words": sum(word_count(q.answer) for q in meeting.general_queries)})
    return pd.DataFrame(rows)


def context_coverage(lengths: pd.DataFrame, contexts: Sequence[int]) -> pd.DataFrame:
    """For each context size: share of meetings that fit, and the median overflow factor."""
    rows = []
    for context in contexts:
        fits = lengths["tokens"] <= context
        rows.append({"context_tokens": context, "meetings": len(lengths),
                     "fit_share": float(fits.mean()),
                     "median_length_over_context": float((lengths["tokens"] / context).median())})
    return pd.DataFrame(rows)


def token_counter(model_name: str) -> Callable[[str], int]:
    """Count tokens with a real tokenizer resolved through the model registry."""
    from transformers import AutoTokenizer

    from labkit.models import resolve

    tokenizer = AutoTokenizer.from_pretrained(str(resolve(model_name).path))
    tokenizer.model_max_length = 10**9  # we count, we do not feed a model

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count
