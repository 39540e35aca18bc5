"""Calibration baselines: the best constant summary and random transcript sentences."""

import pytest
from rouge_score import rouge_scorer

from labkit.errors import ParameterError
from labkit.summarize import study
from labkit.summarize.baselines import ConstantSummary, RandomSentences, best_constant
from labkit.summarize.data import Item
from labkit.summarize.extractive import sentences

TRAIN_REFS = [
    "The team discussed the budget of the remote control and agreed on the design.",
    "The team discussed the design of the remote control and the budget.",
    "Grad students compared microphones.",
    "The council voted on a housing bill after a long debate about rents.",
]


def _train():
    return [Item(f"t{i}", "A: some transcript text here.", r, source=f"train-{i}") for i, r in enumerate(TRAIN_REFS)]


def test_best_constant_matches_rouge_score_and_picks_the_generic_reference():
    index, means = best_constant(TRAIN_REFS)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2"], use_stemmer=True)
    expected = []
    for i, cand in enumerate(TRAIN_REFS):
        others = [scorer.score(r, cand) for j, r in enumerate(TRAIN_REFS) if j != i]
        expected.append(100 * sum((s["rouge1"].fmeasure + s["rouge2"].fmeasure) / 2 for s in others) / len(others))
    assert means == pytest.approx(expected, abs=1e-9)
    assert index in (0, 1) and TRAIN_REFS[index].startswith("The team discussed")


def test_constant_summary_returns_one_text_per_kind_and_length_and_says_which(items):
    system = ConstantSummary(_train())
    out = system.summarize(items, "short", progress=False)
    choice = system.choice("general", 40)
    assert len(set(out)) == 1 and out[0] == choice["summary"]
    assert choice["chosen_reference"] in ("train-0", "train-1")
    assert "general | 40 words" in system.describe()["chosen"]
    # cut to the target length: a 5-word constant is the best reference's first 5 words
    five = system.choice("general", 5)["summary"]
    assert len(five.split()) == 5 and any(r.startswith(five) for r in TRAIN_REFS)
    with pytest.raises(ParameterError, match="'train'"):
        ConstantSummary([])
    with pytest.raises(ParameterError, match="at least 2 training references"):
        ConstantSummary(_train()[:1])


def test_constant_summary_is_chosen_among_the_items_own_query_kind():
    specific = [
        Item(f"s{i}", "A: text.", r, query="What about microphones?", source=f"s-{i}", kind="specific")
        for i, r in enumerate(
            [
                "Grad students compared two microphones.",
                "The students compared microphones and headsets.",
                "Nobody spoke.",
            ]
        )
    ]
    system = ConstantSummary(_train() + specific)
    assert system.choice("specific", 40)["chosen_reference"] in ("s-0", "s-1")
    assert system.choice("general", 40)["chosen_reference"] in ("train-0", "train-1")


def test_best_constant_judges_a_cut_candidate_against_the_full_references():
    refs = ["alpha beta gamma delta", "alpha beta gamma epsilon", "zeta eta theta iota"]
    index, means = best_constant(refs, ["alpha beta", "alpha beta", "zeta eta"])
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2"], use_stemmer=True)
    s = scorer.score(refs[1], "alpha beta")  # candidate 0 against reference 1 (not itself)
    other = scorer.score(refs[2], "alpha beta")
    expected = (
        100
        * (
            (s["rouge1"].fmeasure + s["rouge2"].fmeasure) / 2
            + (other["rouge1"].fmeasure + other["rouge2"].fmeasure) / 2
        )
        / 2
    )
    assert means[0] == pytest.approx(expected) and index in (0, 1)


def test_random_sentences_are_seeded_reach_the_target_length_and_keep_transcript_order():
    transcript = "\n".join(f"Speaker {j % 3}: this is sentence number {j} of the long meeting." for j in range(60))
    items = [Item(f"m{i}", transcript, " ".join(["word"] * 25), source=f"m{i}") for i in range(3)]
    a = RandomSentences(0).summarize(items, "short", progress=False)
    again = RandomSentences(0).summarize(items, "short", use_cache=False, progress=False)
    other = RandomSentences(1).summarize(items, "short", progress=False)
    assert a == again and a != other
    cands = sentences(transcript)
    for summary in a:
        lines = summary.splitlines()
        assert all(line in cands for line in lines)
        assert [cands.index(x) for x in lines] == sorted(cands.index(x) for x in lines)
        # the short instruction's 40 words, reached by the last sentence (as Lead-k does)
        assert 40 <= len(summary.split()) < 40 + 10
    longer = RandomSentences(0).summarize(items, "long", progress=False)
    assert all(len(s.split()) >= 200 for s in longer)


def test_the_study_adds_both_baselines_to_the_extractive_systems():
    names = [s.name for s in study.extractive_systems("all-MiniLM-L6-v2", train=_train(), seed=3)]
    assert names[-2:] == ["Random sentences", "Constant (best train reference)"]
    kinds = {s.name: s.kind for s in study.extractive_systems("all-MiniLM-L6-v2", train=_train())}
    assert kinds["Random sentences"] == kinds["Constant (best train reference)"] == "baseline"
