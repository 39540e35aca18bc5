"""Doctor-wise splits, thresholds, metrics against scikit-learn, clustered bootstrap tests,
Siamese head, each trained system against its base, energy that says what it is."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from labkit.embeddings import similarity as S
from labkit.embeddings.siamese import HeadConfig, train_head
from labkit.errors import DataError, ParameterError


def frame(n_doctors=6, per=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "dr_id": np.repeat(np.arange(1, n_doctors + 1), per),
            "label": np.tile([1, 0], n_doctors * per // 2),
            "noise": rng.random(n_doctors * per),
        }
    )


def test_split_is_by_doctor_and_deterministic():
    pairs = frame()
    split = S.split_by_doctor(pairs, test_doctors=2, val_doctors=1, seed=3)
    per_doctor = pairs.assign(split=split).groupby("dr_id")["split"].nunique()
    assert (per_doctor == 1).all()  # no doctor on two sides
    assert split.value_counts().to_dict() == {"train": 120, "test": 80, "val": 40}
    assert split.equals(S.split_by_doctor(pairs, 2, 1, seed=3))
    with pytest.raises(ParameterError, match="at least one doctor left"):
        S.split_by_doctor(pairs, 5, 1)


def test_best_threshold_maximises_training_accuracy():
    labels = np.array([0, 0, 1, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9])
    t = S.best_threshold(labels, scores)
    best = max(((scores >= c) == labels).mean() for c in np.r_[scores, 1.0])
    assert ((scores >= t) == labels).mean() == best == 5 / 6
    assert S.best_threshold(np.array([0, 1]), np.array([0.2, 0.7])) == pytest.approx(0.45)


def test_metrics_match_scikit_learn_and_cis_bracket_them():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 400)
    scores = labels * 0.3 + rng.random(400)
    split = np.where(np.arange(400) < 200, "train", "test")
    r = S.evaluate_system(labels, scores, split, n_resamples=300)
    test = split == "test"
    pred = scores[test] >= r["threshold"]
    assert r["accuracy"] == pytest.approx((pred == labels[test]).mean())
    assert r["f1"] == pytest.approx(f1_score(labels[test], pred))
    assert r["roc_auc"] == pytest.approx(roc_auc_score(labels[test], scores[test]))
    for k in ("accuracy", "f1", "roc_auc"):
        assert r[f"{k}_low"] <= r[k] <= r[f"{k}_high"]


def test_weighted_resample_metrics_equal_scikit_learn_on_the_resampled_arrays():
    """The bootstrap scores a resample by item weights; with tied scores and repeated pairs
    that must equal scikit-learn on the resampled arrays themselves."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    s = np.round(y * 0.2 + rng.random(300), 1)  # heavy ties
    scorer = S._Scorer(y, s, 0.55)
    for _ in range(5):
        idx = rng.integers(0, 300, 300)
        w = np.bincount(idx, minlength=300).astype(float)
        acc, f1, auc = scorer(w)
        yi, si = y[idx], s[idx]
        assert acc == pytest.approx(((si >= 0.55) == yi).mean())
        assert f1 == pytest.approx(f1_score(yi, si >= 0.55))
        assert auc == pytest.approx(roc_auc_score(yi, si))


def test_group_resampling_draws_what_labkit_stats_draws():
    """The fast path hands labkit.stats the groups as units: same seed, same draws."""
    from labkit import stats

    rng = np.random.default_rng(5)
    y, s = np.tile([1, 0], 50), rng.random(100)
    groups = np.repeat(np.arange(50), 2)
    scorer = S._Scorer(y, s, 0.5)
    fast = S.resampled(scorer, 100, groups, n_resamples=40, seed=7)
    slow = stats.distribution(
        lambda idx: scorer(np.bincount(idx, minlength=100).astype(float)), 100, groups=groups, n_resamples=40, seed=7
    )
    assert np.allclose(fast, slow, equal_nan=True)


def test_question_groups_keep_both_pairs_of_a_question_together():
    """Two copies of every pair are one unit of evidence, not two: resampled by question group
    the interval is as wide as for the pairs alone, resampled by pair it is too narrow."""
    rng = np.random.default_rng(6)
    n = 200
    labels = np.r_[np.tile([1, 0], 100), np.tile([1, 0], n // 2)]
    scores = np.r_[labels[:200] * 0.4 + rng.random(200), np.zeros(n)]
    split = np.array(["train"] * 200 + ["test"] * n)
    test_scores = labels[200:] * 0.2 + rng.random(n)
    scores[200:] = test_scores
    one = S.evaluate_system(labels, scores, split, groups=np.arange(len(labels)), n_resamples=400)
    # the same held-out pairs twice: in groups of two copies, and as independent pairs
    labels2 = np.r_[labels, labels[200:]]
    scores2 = np.r_[scores, test_scores]
    split2 = np.r_[split, ["test"] * n]
    groups2 = np.r_[np.arange(len(labels)), np.arange(200, 200 + n)]
    grouped = S.evaluate_system(labels2, scores2, split2, groups=groups2, n_resamples=400)
    flat = S.evaluate_system(labels2, scores2, split2, n_resamples=400)
    width = lambda r: r["accuracy_high"] - r["accuracy_low"]  # noqa: E731
    assert grouped["accuracy"] == pytest.approx(one["accuracy"])
    assert width(grouped) == pytest.approx(width(one), rel=0.25)
    assert width(flat) < 0.85 * width(grouped)
    assert grouped["heldout_groups"] == n and flat["heldout_groups"] == 2 * n


def test_the_threshold_never_sees_validation_or_test_pairs():
    """Any scores and labels on the validation and test doctors leave the threshold where the
    training doctors put it; changing the training scores moves it (the check can fail)."""
    rng = np.random.default_rng(7)
    split = np.array(["train"] * 200 + ["val"] * 60 + ["test"] * 80)
    labels = rng.integers(0, 2, 340)
    scores = labels * 0.5 + rng.random(340)
    t = S.evaluate_system(labels, scores, split, n_resamples=20)["threshold"]
    assert t == S.threshold_on_training(labels, scores, split)
    assert t == S.best_threshold(labels[:200], scores[:200])
    for _ in range(3):
        other_scores, other_labels = scores.copy(), labels.copy()
        other_scores[200:] = rng.random(140) * 10 - 5
        other_labels[200:] = rng.integers(0, 2, 140)
        assert S.evaluate_system(other_labels, other_scores, split, n_resamples=20)["threshold"] == t
    moved = scores.copy()
    moved[:200] += 0.3
    assert S.evaluate_system(labels, moved, split, n_resamples=20)["threshold"] != t
    with pytest.raises(DataError, match="no 'train' pairs"):
        S.threshold_on_training(labels, scores, np.array(["val"] * 340))


def test_paired_test_tells_a_better_system_from_a_copy():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 500)
    good, bad = y + 0.8 * rng.random(500), y * 0.1 + rng.random(500)
    strong = S.paired_test(y, good, bad, 0.9, 0.55, n_resamples=500)
    assert strong["accuracy_diff"] > 0.2 and strong["accuracy_p_value"] < 0.01
    assert strong["accuracy_verdict"] == "better"
    assert S.paired_test(y, bad, good, 0.55, 0.9, n_resamples=200)["accuracy_verdict"] == "worse"
    same = S.paired_test(y, good, good, 0.9, 0.9, n_resamples=200)
    assert same["accuracy_diff"] == 0 and same["accuracy_p_value"] == 1.0
    assert same["accuracy_verdict"] == "no clear difference"
    grouped = S.paired_test(y, good, bad, 0.9, 0.55, groups=np.arange(500) // 2, n_resamples=200)
    assert grouped["accuracy_diff"] == strong["accuracy_diff"]


def test_bad_labels_and_nan_scores_are_named():
    with pytest.raises(DataError, match="label at position 1 is 2"):
        S.best_threshold(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(DataError, match="position 0 is NaN"):
        S.best_threshold(np.array([0, 1]), np.array([np.nan, 0.2]))


def test_graded_correlation_for_sts_style_data():
    gold = np.arange(20.0)
    r = S.graded_correlation(gold, gold**2, n_resamples=100)
    assert r["spearman"] == pytest.approx(1.0) and r["pearson"] < 1.0
    assert r["pearson_low"] <= r["pearson"] <= r["pearson_high"]


def test_siamese_head_learns_what_cosine_misses_and_measures_epochs():
    """'Different' pairs point the same way but are 3x longer: cosine cannot see it, a head can."""
    rng = np.random.default_rng(0)
    n, d = 600, 16
    a = rng.standard_normal((n, d)).astype(np.float32)
    labels = np.tile([1, 0], n // 2)
    b = a + 0.3 * rng.standard_normal((n, d)).astype(np.float32)
    b[labels == 0] *= 3.0
    split = np.array(["train"] * 400 + ["val"] * 100 + ["test"] * 100)
    before = S.evaluate_system(labels, S.cosine(a, b), split, n_resamples=50)["accuracy"]
    result = train_head(a, b, labels, split, HeadConfig(hidden=32, out=16, max_epochs=20, patience=5))
    after = S.evaluate_system(labels, result.scores, split, n_resamples=50)["accuracy"]
    assert before < 0.7 and after > before + 0.15
    assert 1 <= result.best_epoch <= len(result.epochs) <= 20
    assert {"epoch", "train_loss", "val_auc", "seconds", "energy_kwh"} <= set(result.epochs[0])


def test_head_needs_a_validation_split():
    with pytest.raises(ParameterError, match="'train' and 'val'"):
        train_head(np.ones((4, 2)), np.ones((4, 2)), np.array([0, 1, 0, 1]), np.array(["train"] * 4))
    with pytest.raises(ParameterError, match="head loss"):
        HeadConfig(loss="triplet")


def test_length_grouped_batches_cover_every_pair_once_in_similar_lengths_and_random_order():
    """The fine-tune's batches: every pair once per epoch, lengths close within a batch (less
    padding than random batches), a different batch order next epoch."""
    from labkit.embeddings.siamese import length_grouped_sampler

    rng = np.random.default_rng(8)
    lengths = rng.integers(8, 120, 1000).tolist()
    sampler = length_grouped_sampler(lengths)(list(range(1000)), batch_size=32, drop_last=False, seed=3)
    first = list(sampler)
    assert len(first) == len(sampler) == 32
    assert sorted(i for b in first for i in b) == list(range(1000))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in first)
    order = rng.permutation(1000)
    random_padded = sum(32 * max(lengths[i] for i in order[s : s + 32]) for s in range(0, 1000, 32))
    assert padded < 0.75 * random_padded
    maxima = [max(lengths[i] for i in b) for b in first]
    assert maxima != sorted(maxima, reverse=True)  # no long-to-short curriculum
    sampler.set_epoch(1)
    assert list(sampler) != first
