"""The MiniLM turn selector: training labels from spans and the oracle, selection, fine-tuning."""

from dataclasses import replace

import pytest

from labkit.data.parsers import Meeting, Query, Turn
from labkit.errors import DataError, ParameterError
from labkit.summarize.data import Item
from labkit.summarize.extractive import sentences
from labkit.summarize.selector import SelectorConfig, TurnSelector, triplet_options
from labkit.summarize.selector_data import (
    GENERAL_QUERY,
    TrainQuery,
    queries_from_items,
    queries_from_meetings,
    training_triplets,
    turn_units,
)

TURNS = [
    ("Chair", "Welcome everyone to the weekly design meeting today."),
    ("Ann", "Yeah."),
    ("Ann", "The remote control should cost less than twenty five euros in total."),
    ("Bob", "I think the budget for the remote is tight but we can manage it."),
    ("Cid", "Our microphones picked up a lot of noise in the test room yesterday."),
    ("Cid", "The speech recogniser made many errors on the noisy microphone channel."),
]


def _meeting():
    turns = [Turn(s, c) for s, c in TURNS]
    queries = [
        Query(
            "Summarize the whole meeting.",
            "They talked about the remote control budget and noisy microphones.",
            "general",
        ),
        Query(
            "What did the group say about the budget?",
            "The remote must cost under twenty five euros; the budget is tight.",
            "specific",
            [(2, 3)],
        ),
    ]
    return Meeting("ES2002a", "train", "Product", turns, queries, [])


def test_spans_label_sentences_of_relevant_turns_and_general_queries_use_the_oracle():
    queries = queries_from_meetings([_meeting()])
    assert [q.kind for q in queries] == ["general", "specific"]
    assert queries[0].anchor == GENERAL_QUERY and queries[0].relevant is None
    assert queries[1].relevant == frozenset({2, 3})  # QMSum spans are inclusive turn ranges
    triplets = training_triplets(queries, **triplet_options(SelectorConfig(positives_per_query=5)))
    spec = triplets["specific"]
    assert set(spec["anchor"]) == {"What did the group say about the budget?"}
    assert all("remote" in p for p in spec["positive"]) and len(spec["positive"]) == 2
    assert not any("remote" in n for n in spec["negative"])  # hard negatives: outside the span
    general = triplets["general"]
    assert general["anchor"] and set(general["anchor"]) == {GENERAL_QUERY}
    assert not set(general["positive"]) & set(general["negative"])
    # "Yeah." holds no sentence of 5 words: never a unit
    turns, per_turn = turn_units([f"{s}: {c}" for s, c in TURNS], 5)
    assert 1 not in turns and [s for group in per_turn for s in group] == sentences(
        "\n".join(f"{s}: {c}" for s, c in TURNS)
    )


def test_training_refuses_queries_without_any_usable_sentence():
    bare = [TrainQuery("What?", ("A: yes.", "B: no."), frozenset({0}), "ref", "specific")]
    with pytest.raises(DataError, match="no training triplets"):
        training_triplets(bare, **triplet_options(SelectorConfig()))
    with pytest.raises(ParameterError, match="positives_per_query"):
        SelectorConfig(positives_per_query=0)


def test_a_users_items_train_with_oracle_labels():
    item = Item(
        "x",
        "\n".join(f"{s}: {c}" for s, c in TURNS),
        "The budget of the remote is tight.",
        query="Budget?",
        source="mine.jsonl:1",
        kind="specific",
    )
    [q] = queries_from_items([item])
    assert q.relevant is None and q.anchor == "Budget?"
    assert training_triplets([q], **triplet_options(SelectorConfig()))["specific"]["positive"]


def test_zero_shot_selector_picks_the_turn_that_answers_the_query():
    transcript = "\n".join(f"{s}: {c}" for s, c in TURNS)
    items = [
        Item(
            "m/specific/0",
            transcript,
            "ref",
            query="What went wrong with the microphones?",
            source="m",
            kind="specific",
        ),
        Item(
            "m/specific/1",
            transcript,
            "ref",
            query="How much may the remote control cost?",
            source="m",
            kind="specific",
        ),
    ]
    system = TurnSelector()
    mic, remote = system.summarize(items, "short", progress=False)
    assert "microphone" in mic.splitlines()[0].lower() or "microphones" in mic
    assert "twenty five euros" in remote
    assert all(s.latency_s > 0 for s in system.last_stats)  # embedding cost charged per item
    # the same sentences Centroid embeds: a shared embedder computes nothing new for them
    per_turn, score = system.turn_scores(items[0])
    assert len(score) == len(per_turn) == 5


@pytest.mark.slow
def test_fine_tuning_is_cached_and_its_energy_recorded(tmp_path):
    from labkit.summarize.selector import finetune_selector

    queries = queries_from_meetings([_meeting(), replace(_meeting(), meeting_id="ES2002b")])
    cfg = SelectorConfig(positives_per_query=2, batch_size=4, max_seq_length=24)
    model = finetune_selector(queries, cfg)
    assert model.metrics["triplets"]["specific"] == 4 and model.metrics["energy_kwh"] > 0
    assert (model.path / "labkit_model.json").is_file()
    assert finetune_selector(queries, cfg).path == model.path  # a cache hit
    assert model.metrics["tuned"] == "query tower"
    assert 0 < model.metrics["trainable_parameters"] <= model.metrics["parameters"]
    out = TurnSelector(query_model=str(model.path), kind="fine-tuned").summarize(
        [Item("m", "\n".join(f"{s}: {c}" for s, c in TURNS), "ref", query="Budget?")], "short", progress=False
    )
    assert out[0]
