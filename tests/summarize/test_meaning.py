"""The MiniLM meaning score (real all-MiniLM-L6-v2 from the pip package) and rank disagreement."""

import pandas as pd
import pytest

from labkit.errors import ParameterError
from labkit.summarize.meaning import MEANING, MeaningScorer, rank_disagreement, split_sentences

REF = "The team agreed on a budget of twenty five euros. The remote will have a rubber case."


@pytest.fixture(scope="module")
def scorer():
    return MeaningScorer()


def test_meaning_rewards_paraphrase_over_shared_words(scorer):
    same, paraphrase, salad, empty = scorer.per_item(
        [
            REF,
            "They settled on spending 25 euros per unit.\nThe controller gets a soft rubber shell.",
            "The team was about the team was about a case of the budget the the.",
            "",
        ],
        [REF] * 4,
    )
    assert same == pytest.approx(100, abs=0.1)
    assert paraphrase > salad  # meaning over word overlap
    assert empty == 0.0
    with pytest.raises(ParameterError, match="2 predictions but 1 references"):
        scorer.per_item(["a", "b"], ["c"])


def test_meaning_summary_has_a_bootstrap_ci(scorer):
    refs = [REF, "The council debated the housing bill.", "Students compared two microphones."]
    preds = [REF, "A housing bill was discussed by the council.", "The weather was nice."]
    out = scorer.summary(preds, refs, n_resamples=200)
    assert out[f"{MEANING}_low"] <= out[MEANING] <= out[f"{MEANING}_high"]
    assert split_sentences("One. Two!\nThree") == ["One.", "Two!", "Three"]


def test_rank_disagreement_says_where_rouge_flatters():
    scores = pd.DataFrame(
        {
            "system": ["salad", "extract", "oracle"],
            "kind": ["fine-tuned"] * 3,
            "instruction": ["short"] * 3,
            "rouge1": [33.0, 20.0, 31.0],
            MEANING: [30.0, 45.0, 50.0],
        }
    )
    ranks = rank_disagreement(scores).set_index("system")
    assert ranks.loc["salad", "rank_rouge1"] == 1 and ranks.loc["salad", "rank_meaning"] == 3
    assert ranks.loc["salad", "rank_shift"] == 2 and ranks["disagree"].all()
