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
    return [Item(f"t{i}", "A: some transcript text here.", r, source=f"train-{i}")
            for i, r in enumerate(TRAIN_REFS)]


def test_best_constant_matches_rouge_score_and_picks_the_generic_reference():
    index, means = best_constant(TRAIN_REFS)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2"], use_stemmer=True)
    expected = []
    for i, cand in enumerate(TRAIN_REFS):
        others = [scorer.score(r, cand) for j, r in enumerate(TRAIN_REFS) if j != i]
        expected.append(100 * sum((s["rouge1"].fmeasure + s["rouge2"].fmeasure) / 2
                                  for s in others) / len(others))
    assert means == pytest.approx(expected, abs=1e-9)
    assert index in (0, 1) and TRAIN_REFS[index].startswith("The team discussed")


def test_constant_summary_returns_one_text_for_every_item_and_says_which(items):
    system = ConstantSummary(_train())
    out = system.summarize(items, "short", progress=False)
    assert len(set(out)) == 1 and out[0] == system.summary
    assert system.describe()["chosen_reference"] == system.source in ("train-0", "train-1")
    with pytest.raises(ParameterError, match="'train'"):
        ConstantSummary([])
    with pytest.raises(ParameterError, match="at least 2 training references"):
        ConstantSummary(_train()[:1])


def test_random_sentences_are_seeded_fit_the_reference_and_keep_transcript_order():
    transcript = "\n".join(f"Speaker {j % 3}: this is sentence number {j} of the long meeting."
                           for j in range(40))
    items = [Item(f"m{i}", transcript, " ".join(["word"] * 25), source=f"m{i}") for i in range(3)]
    a = RandomSentences(0).summarize(items, "long", progress=False)
    again = RandomSentences(0).summarize(items, "long", use_cache=False, progress=False)
    other = RandomSentences(1).summarize(items, "long", progress=False)
    assert a == again and a != other
    cands = sentences(transcript)
    for summary in a:
        lines = summary.splitlines()
        assert all(line in cands for line in lines)
        assert [cands.index(x) for x in lines] == sorted(cands.index(x) for x in lines)
        assert len(summary.split()) <= 25 and len(lines) >= 2


def test_the_study_adds_both_baselines_to_the_extractive_systems():
    names = [s.name for s in study.extractive_systems("all-MiniLM-L6-v2", train=_train(), seed=3)]
    assert names[-2:] == ["Random sentences", "Constant (best train reference)"]
    kinds = {s.name: s.kind for s in study.extractive_systems("all-MiniLM-L6-v2", train=_train())}
    assert kinds["Random sentences"] == kinds["Constant (best train reference)"] == "baseline"
