"""Doctor-wise splits, thresholds, metrics against scikit-learn, bootstrap tests, Siamese head."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from labkit.embeddings import similarity as S
from labkit.embeddings.siamese import HeadConfig, train_head
from labkit.errors import DataError, ParameterError


def frame(n_doctors=6, per=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"dr_id": np.repeat(np.arange(1, n_doctors + 1), per),
                         "label": np.tile([1, 0], n_doctors * per // 2),
                         "noise": rng.random(n_doctors * per)})


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
    # the vectorised bootstrap AUC equals scikit-learn's on a resample
    idx = rng.integers(0, test.sum(), (1, test.sum()))
    boot = S._resample_metrics(labels[test], scores[test], r["threshold"], idx)
    assert boot[0, 2] == pytest.approx(roc_auc_score(labels[test][idx[0]], scores[test][idx[0]]))


def test_paired_test_tells_a_better_system_from_a_copy():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 500)
    good, bad = y + 0.8 * rng.random(500), y * 0.1 + rng.random(500)
    strong = S.paired_test(y, good, bad, 0.9, 0.55, n_resamples=500)
    assert strong["accuracy_diff"] > 0.2 and strong["accuracy_p_value"] < 0.01
    same = S.paired_test(y, good, good, 0.9, 0.9, n_resamples=200)
    assert same["accuracy_diff"] == 0 and same["accuracy_p_value"] == 1.0


def test_bad_labels_and_nan_scores_are_named():
    with pytest.raises(DataError, match="label at position 1 is 2"):
        S.best_threshold(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(DataError, match="position 0 is NaN"):
        S.best_threshold(np.array([0, 1]), np.array([np.nan, 0.2]))


def test_graded_correlation_for_sts_style_data():
    gold = np.arange(20.0)
    r = S.graded_correlation(gold, gold ** 2, n_resamples=100)
    assert r["spearman"] == pytest.approx(1.0) and r["pearson"] < 1.0


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
