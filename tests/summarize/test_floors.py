"""The floor guard: a system below the best floor is flagged in tables, figures and the record."""

import numpy as np
import pandas as pd

from labkit import records
from labkit.summarize import evaluate, floors, plots, tables
from labkit.summarize.base import Summarizer
from labkit.summarize.baselines import RandomSentences
from labkit.summarize.data import Item
from labkit.summarize.extractive import LeadK

TOPICS = [
    "the remote control budget",
    "the microphone test",
    "the housing bill",
    "the speech recogniser",
    "the marketing report",
    "the fruit shaped case",
]


def _items():
    items = []
    for m, topic in enumerate(TOPICS):
        transcript = "\n".join(
            [f"Chair: welcome everyone , today we talk about {topic} and nothing else ."]
            + [f"Speaker {j % 3}: point number {j} about {topic} was raised by the team ." for j in range(30)]
        )
        for q in range(2):  # two queries per meeting: the intervals resample meetings
            items.append(
                Item(
                    f"m{m}/specific/{q}",
                    transcript,
                    f"{topic} , {('first', 'second')[q]} point raised",
                    query=f"What about point {q}?",
                    source=f"m{m}",
                    kind="specific",
                )
            )
    return items


class Unrelated(Summarizer):
    """A synthetic system below every floor: one fixed sentence about nothing in the meeting,
    varied per item so that the degenerate guard does not catch it first."""

    kind = "zero-shot"

    WORDS = (
        "weather mountain river violin orange planet garden winter silver ocean harbour "
        "forest candle pepper desert castle meadow thunder lantern comet"
    ).split()

    def _summarize_batch(self, batch, inst):
        out = []
        for it in batch:  # different words per item: the degenerate guard does not fire
            rng = np.random.default_rng(abs(hash(it.item_id)) % 2**32)
            out.append(" ".join(rng.choice(self.WORDS, 10, replace=False)) + " .")
        return out


class ReadsTheAnswer(Summarizer):
    """A synthetic system far above every floor (it returns the reference)."""

    kind = "fine-tuned"

    def _summarize_batch(self, batch, inst):
        return [it.reference for it in batch]


def test_a_system_below_the_floor_is_flagged_everywhere():
    items = _items()
    record = records.RunRecord(evaluate.STUDY, {})
    seen = []
    systems = [
        LeadK(warn=seen.append),
        RandomSentences(0, warn=seen.append),
        Unrelated("Unrelated text", warn=seen.append),
        ReadsTheAnswer("Reads the answer", warn=seen.append),
    ]
    runs = evaluate.run_all(systems, items, ["short", "medium"], progress=False)
    assert all(r.floor for r in runs if r.system in ("Lead-k", "Random sentences"))
    scores = evaluate.score(
        runs, lambda s: len(s.split()), {"default": {"usd_per_hour": 1}}, 100, 0, meaning_model=None, record=record
    )
    row = scores.set_index(["system", "instruction"])
    assert row.loc[("Unrelated text", "short"), "below_floor"] is True
    assert row.loc[("Unrelated text", "short"), "flag"].startswith(floors.FLOOR_MARK)
    assert row.loc[("Reads the answer", "short"), "below_floor"] is False
    assert row.loc[("Reads the answer", "short"), "flag"] == ""
    assert row.loc[("Random sentences", "short"), "below_floor"] is None  # a floor is not judged
    assert row.loc[("Unrelated text", "short"), "floor_system"] in ("Lead-k", "Random sentences")
    # warnings and the run record
    assert any(m.startswith(f"Unrelated text {floors.FLOOR_MARK}") for m in seen)
    assert not any(m.startswith("Reads the answer") for m in seen)
    entry = record.results["floors"]["specific | short"]
    assert "Unrelated text" in entry["not_above"] and "Reads the answer" in entry["above"]
    assert set(entry["floor_rouge1"]) == {"Lead-k", "Random sentences"}
    assert record.results["floor_verdict"]["clears_every_floor"] == ["Reads the answer"]
    # tables and figures
    main = tables.main_table(scores).set_index("queries")
    labels = main["system"].tolist()
    assert f"Unrelated text {floors.FLOOR_MARK}" in labels and "Reads the answer" in labels
    pareto = plots.pareto_figure(scores, "short")
    names = [t.name for t in pareto.data if t.showlegend]
    assert any(n.endswith(f"Unrelated text {floors.FLOOR_MARK}") for n in names)
    assert floors.FLOOR_MARK in pareto.layout.title.text
    front = evaluate.with_pareto(scores)
    assert not front.loc[scores["system"] == "Unrelated text", "pareto_latency_s"].any()
    main_fig = plots.main_figure(scores)
    assert any(floors.FLOOR_MARK in str(y) for t in main_fig.data for y in t.y)
    assert "Unrelated text" in plots.flag_note(scores)


def test_the_verdict_says_plainly_when_no_system_clears_the_floor():
    frame = pd.DataFrame(
        {
            "system": ["A", "A", "Oracle (greedy)"],
            "below_floor": [True, False, False],
            "queries": ["general"] * 3,
            "instruction": ["short", "long", "short"],
        }
    )
    clear, sentence = floors.verdict(frame)
    assert clear == [] and sentence.startswith("no non-oracle system clears every floor")
    assert "A clears it in some rows only" in sentence
