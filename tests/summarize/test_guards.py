"""Degenerate-output guards: word salad and constant outputs are flagged, real extracts are not."""

import os
from pathlib import Path

import numpy as np
import pytest

from labkit import records
from labkit.errors import ParameterError
from labkit.summarize import evaluate, guards, tables
from labkit.summarize.baselines import RandomSentences
from labkit.summarize.data import Item
from labkit.summarize.extractive import LeadK

# Hand-written meeting sentences (no data needed): different meetings, different content.
MEETINGS = [
    (
        "The project manager opened the kickoff and asked everyone to introduce themselves. "
        "We need a remote control that sells for twenty five euros. "
        "Marketing thinks younger buyers care more about looks than about buttons. "
        "The designer wants a rubber case because people drop remotes all the time."
    ),
    (
        "The committee reviewed the draft budget for the school library. "
        "Funding for new computers was cut by ten percent this year. "
        "A parent asked whether the reading programme would survive the cuts. "
        "The chair promised a written answer before the next session."
    ),
    (
        "The grad students compared two speech recognizers on the meeting corpus. "
        "Error rates dropped when the far-field microphones were aligned in time. "
        "Someone suggested running the alignment overnight on the cluster. "
        "They agreed to report word error rates at the next group meeting."
    ),
    (
        "The council debated the new housing bill for almost an hour. "
        "Several members worried that rents in the city centre would keep rising. "
        "The minister said the bill funds ten thousand affordable homes. "
        "Opposition members asked for an independent review of the costs."
    ),
]
REFS = [
    "The team discussed the remote control design and its price.",
    "The committee talked about the library budget cuts.",
    "The students compared speech recognizers and planned alignment work.",
    "The council debated the housing bill and its costs.",
]


def _items(n=4):
    return [Item(f"m{i}", MEETINGS[i].replace(". ", ".\nSpeaker: "), REFS[i], source=f"m{i}") for i in range(n)]


def _word_salad(seed: int, n_words: int = 80) -> str:
    """What a tiny LM fine-tuned on QMSum writes: meeting words in loops."""
    rng = np.random.default_rng(seed)
    loop = "the meeting was about the team was about a new meeting and the team discussed".split()
    start = int(rng.integers(0, 5))
    return " ".join(loop[(start + k) % len(loop)] for k in range(n_words)) + "."


def test_real_sentences_are_not_flagged():
    items = _items()
    outputs = [" ".join(MEETINGS[i].split(". ")[:3]) for i in range(4)]
    verdict = guards.assess(outputs, [it.transcript for it in items], REFS)
    assert not verdict["degenerate"], verdict["degenerate_reason"]
    assert verdict["novel_bigram_rate"] < 0.3  # copied from the transcript
    assert verdict["repeated_trigram_rate"] < guards.REPEATED_TRIGRAM_MAX / 4


def test_word_salad_is_flagged_with_the_reason():
    items = _items()
    salad = [_word_salad(i) for i in range(4)]
    verdict = guards.assess(salad, [it.transcript for it in items], REFS)
    assert verdict["degenerate"]
    assert "trigrams repeat" in verdict["degenerate_reason"]
    assert verdict["distinct2"] < guards.DISTINCT2_MIN
    assert "loops" in verdict["degenerate_tags"]


def test_one_constant_output_is_flagged_but_shared_transcripts_are_not_duplicates():
    items = _items()
    constant = ["The meeting was about the project and the team agreed on next steps."] * 4
    verdict = guards.assess(constant, [it.transcript for it in items], REFS)
    assert verdict["degenerate"] and verdict["duplicate_share"] == 1.0
    assert "share their output with another transcript" in verdict["degenerate_reason"]
    # two queries on the same meeting may get the same extract: not a duplicate
    same = [MEETINGS[0], MEETINGS[0], MEETINGS[1], MEETINGS[2]]
    outputs = [m.split(". ")[0] + "." for m in same]
    verdict = guards.assess(outputs, same, REFS)
    assert verdict["duplicate_share"] == 0.0 and not verdict["degenerate"]


def test_near_empty_outputs_are_flagged_and_bad_lengths_raise():
    items = _items()
    verdict = guards.assess(["", "", "ok", ""], [it.transcript for it in items], REFS)
    assert verdict["degenerate"] and "reference length" in verdict["degenerate_reason"]
    with pytest.raises(ParameterError, match="one transcript and reference per prediction"):
        guards.assess(["a"], ["b", "c"], ["d"])


def test_score_marks_the_flag_in_tables_warnings_and_record():
    items = _items()

    class Salad(LeadK):  # a real Summarizer whose outputs are the synthetic word salad
        kind = "fine-tuned"

        def _summarize_batch(self, batch, inst):
            return [_word_salad(int(it.item_id[1:])) for it in batch]

    record = records.RunRecord(evaluate.STUDY, {})
    seen = []
    systems = [LeadK(warn=seen.append), Salad("tiny LM (fine-tuned)", warn=seen.append)]
    runs = evaluate.run_all(systems, items, ["short"], progress=False)
    scores = evaluate.score(
        runs, lambda s: len(s.split()), {"default": {"usd_per_hour": 1}}, 50, 0, meaning_model=None, record=record
    )
    flags = dict(zip(scores["system"], scores["flag"]))
    assert flags["Lead-k"] == "" and flags["tiny LM (fine-tuned)"].startswith(guards.FLAG_MARK)
    degenerate = [m for m in seen if guards.FLAG_MARK in m]
    assert len(degenerate) == 1 and degenerate[0].startswith("tiny LM (fine-tuned) ⚠ degenerate")
    stored = record.results["output_guards"]["tiny LM (fine-tuned) | short"]
    assert stored["degenerate"] is True and "trigrams" in stored["degenerate_reason"]
    # the chunking study (one or two meetings) inherits the verdict from all items
    known = evaluate.verdicts(scores)
    assert evaluate.verdict_for("tiny LM (fine-tuned) [chunk]", known) == stored["degenerate_reason"]
    assert evaluate.verdict_for("Lead-k [chunk]", known) == ""
    table = tables.main_table(scores)
    assert table["system"].iloc[0] == "Lead-k"
    assert table["system"].iloc[1].startswith("tiny LM (fine-tuned) ⚠ degenerate: ")
    assert "loops" in table["system"].iloc[1]
    assert table["flag"].iloc[1].startswith("⚠ degenerate: ") and table["flag"].iloc[0] == ""
    assert table["queries"].iloc[0] == items[0].kind
    front = evaluate.with_pareto(scores)  # a degenerate system never joins the front
    assert not front.loc[scores["system"] == "tiny LM (fine-tuned)", "pareto_latency_s"].any()


_MIRROR = Path(os.environ.get("LABKIT_DATA_MIRROR", Path(__file__).parents[3] / "shared" / "data"))


@pytest.mark.skipif(not (_MIRROR / "qmsum").is_dir(), reason="QMSum mirror not available (set LABKIT_DATA_MIRROR)")
def test_real_qmsum_extracts_and_references_are_not_flagged(monkeypatch):
    monkeypatch.setenv("LABKIT_DATA_MIRROR", str(_MIRROR))
    import labkit.data as data
    from labkit.summarize.data import qmsum_items

    items = qmsum_items(data.load("qmsum")["val"], ["general"], 8)
    transcripts, refs = [it.transcript for it in items], [it.reference for it in items]
    for system in (LeadK(), RandomSentences(0)):
        for inst in ("long", "short"):
            verdict = guards.assess(system.summarize(items, inst, progress=False), transcripts, refs)
            assert not verdict["degenerate"], (system.name, inst, verdict["degenerate_reason"])
    assert not guards.assess(refs, transcripts, refs)["degenerate"]  # human summaries
