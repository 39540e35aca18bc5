"""Pair similarity analysis: doctor-wise splits, thresholds, metrics and clustered intervals.

MQP's 11 doctors each wrote balanced similar/dissimilar rewrites of their own questions, so a
split by row would put one doctor's near-duplicate questions on both sides. Everything here
splits by doctor (``dr_id``), chooses thresholds on the **training doctors only** (the
validation doctor is kept for early stopping, the test doctors for reporting) and reports on
the held-out doctors.

Intervals and paired tests come from :mod:`labkit.stats` (percentile bootstrap on
``scipy.stats.bootstrap``), resampled **by question group**: every ``question_1`` of MQP
appears in exactly two pairs (one similar rewrite, one different question), so the two pairs
of a group share a text and are not independent draws. A bootstrap over single pairs treats
them as independent; one over groups draws both or neither (:func:`question_groups`). Why not
by doctor: the test split holds 3 doctors, and a bootstrap over 3 units has only 10 distinct
resamples, which is no interval at all; the between-doctor spread is what the seed rotation of
the held-out doctors shows (``labkit run embeddings_medical --seeds 0,1,2``), and
:func:`unit_comparison` shows all three units side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, roc_auc_score

from labkit import stats
from labkit.errors import DataError, ParameterError

SPLITS = ("train", "val", "test")
#: the split the decision threshold is chosen on (never validation or test doctors)
THRESHOLD_SPLIT = "train"
METRICS = ("accuracy", "f1", "roc_auc")


def split_by_doctor(pairs: pd.DataFrame, test_doctors: int, val_doctors: int, seed: int = 0) -> pd.Series:
    """``"train" / "val" / "test"`` per pair, drawn by doctor (no doctor in two splits).

    Args:
        pairs: with a ``dr_id`` column (a user's file without one: every row its own group).
        test_doctors, val_doctors: how many doctors to hold out for testing / early stopping.
        seed: which doctors are held out (a different seed rotates them).
    """
    if "dr_id" not in pairs.columns:
        raise DataError("pairs have no 'dr_id' column to split by")
    doctors = np.sort(pairs["dr_id"].unique())
    if test_doctors < 1 or val_doctors < 0 or test_doctors + val_doctors >= len(doctors):
        raise ParameterError(
            f"test_doctors={test_doctors}, val_doctors={val_doctors}: need at "
            f"least one doctor left for training out of {len(doctors)}"
        )
    order = np.random.default_rng(seed).permutation(doctors)
    role = {d: "test" for d in order[:test_doctors]}
    role.update({d: "val" for d in order[test_doctors : test_doctors + val_doctors]})
    return pairs["dr_id"].map(lambda d: role.get(d, "train")).rename("split")


def question_groups(pairs: pd.DataFrame) -> np.ndarray:
    """The resampling unit of every interval: one label per pair, shared by the pairs that
    have the same ``question_1`` (after stripping whitespace). In MQP every group has exactly
    two pairs; in a user's file without repeated questions each pair is its own group, which
    is the plain pair bootstrap."""
    if "question_1" not in pairs.columns:
        raise DataError("pairs have no 'question_1' column to group by")
    return pairs["question_1"].astype(str).str.strip().to_numpy(dtype=object)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, d) arrays."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ParameterError(f"cosine needs equal shapes, got {a.shape} and {b.shape}")
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.divide((a * b).sum(1), denom, out=np.zeros(len(a)), where=denom > 0)


def check_scores(labels: np.ndarray, scores: np.ndarray, where: str = "scores") -> None:
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    if not np.isin(labels, (0, 1)).all():
        bad = int(np.flatnonzero(~np.isin(labels, (0, 1)))[0])
        raise DataError(f"{where}: label at position {bad} is {labels[bad].item()!r}, expected 0 or 1")
    if np.isnan(scores).any():
        raise DataError(f"{where}: similarity score at position {int(np.flatnonzero(np.isnan(scores))[0])} is NaN")


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold maximising accuracy of ``score >= t`` (midpoint between sorted scores)."""
    labels, scores = np.asarray(labels).astype(int), np.asarray(scores, dtype=float)
    check_scores(labels, scores, "threshold selection")
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order]
    # predicting 1 for everything at index >= i: correct = zeros before i + ones from i
    zeros_before = np.r_[0, np.cumsum(1 - y)]
    ones_from = np.r_[np.cumsum(y[::-1])[::-1], 0]
    correct = zeros_before + ones_from
    valid = np.r_[True, s[1:] > s[:-1], True]  # only cut between distinct scores
    i = int(np.argmax(np.where(valid, correct, -1)))
    if i == 0:
        return float(s[0] - 1e-6)
    if i == len(s):
        return float(s[-1] + 1e-6)
    return float((s[i - 1] + s[i]) / 2)


def threshold_on_training(labels: np.ndarray, scores: np.ndarray, split: np.ndarray) -> float:
    """:func:`best_threshold` on the ``train`` pairs only: validation and test doctors never
    move the threshold (a test perturbs their scores and checks it)."""
    split = np.asarray(split)
    fit = split == THRESHOLD_SPLIT
    if not fit.any():
        raise DataError(f"no '{THRESHOLD_SPLIT}' pairs to choose the threshold on")
    return best_threshold(np.asarray(labels)[fit], np.asarray(scores, dtype=float)[fit])


def metrics_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, F1 and ROC-AUC of ``score >= threshold`` predicting label 1."""
    labels = np.asarray(labels).astype(int)
    pred = (np.asarray(scores) >= threshold).astype(int)
    auc = roc_auc_score(labels, scores) if len(np.unique(labels)) == 2 else float("nan")
    return {
        "accuracy": float((pred == labels).mean()),
        "f1": float(f1_score(labels, pred, zero_division=0)),
        "roc_auc": float(auc),
    }


class _Scorer:
    """[accuracy, F1, ROC-AUC] of one system on the held-out pairs under item weights (how
    often each pair was drawn in a resample): the bootstrap evaluates it 1,000 times per
    system, so the sort and the tie blocks are computed once here.

    AUC is the Mann-Whitney statistic with ties counted one half, weighted, which equals
    ``roc_auc_score`` on the resampled arrays (a test checks it).
    """

    def __init__(self, labels: np.ndarray, scores: np.ndarray, threshold: float):
        s = np.asarray(scores, dtype=float)
        self.pos = np.asarray(labels).astype(int) == 1
        self.pred = s >= threshold
        self.correct = self.pred == self.pos
        order = np.argsort(s, kind="stable")
        sorted_s = s[order]
        blocks = np.r_[0, np.cumsum(sorted_s[1:] > sorted_s[:-1])] if s.size else np.empty(0, int)
        self.block = np.empty(s.size, dtype=int)
        self.block[order] = blocks
        self.n_blocks = int(blocks[-1]) + 1 if s.size else 0

    def __call__(self, w: np.ndarray) -> np.ndarray:
        wp = w * self.pos
        wn = w - wp
        n_pos, n_neg = wp.sum(), wn.sum()
        accuracy = (w * self.correct).sum() / w.sum()
        tp, fp = (wp * self.pred).sum(), (wn * self.pred).sum()
        fn = n_pos - tp
        f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
        if n_pos and n_neg:
            bp = np.bincount(self.block, weights=wp, minlength=self.n_blocks)
            bn = np.bincount(self.block, weights=wn, minlength=self.n_blocks)
            auc = (bp * (np.cumsum(bn) - bn + 0.5 * bn)).sum() / (n_pos * n_neg)
        else:
            auc = np.nan
        return np.array([accuracy, f1, auc])


def resampled(statistic, n: int, groups: Sequence | None, *, n_resamples: int, seed: int) -> np.ndarray:
    """Bootstrap distribution of ``statistic(weights)`` over ``n`` items, resampled by
    ``groups`` (None: single items), through :func:`labkit.stats.distribution`.

    ``weights[i]`` is how often item ``i`` came along in the resample. The units handed to
    :func:`labkit.stats.distribution` are the groups themselves and each resample's group
    draws are expanded to item weights here: the same draws (same seed, same units) as its
    ``groups=`` path, which concatenates the member indices of every drawn group in Python
    (0.8 ms per resample at MQP's 417 test groups, most of the study's statistics time).
    """
    codes = stats.group_codes(groups, n) if groups is not None else np.arange(n)
    units = int(codes.max()) + 1 if n else 0
    if groups is not None and units < 2:
        raise ParameterError("a clustered bootstrap needs at least 2 groups")

    def on_units(idx: np.ndarray):
        return statistic(np.bincount(idx, minlength=units)[codes].astype(float))

    return stats.distribution(on_units, units, n_resamples=n_resamples, seed=seed)


def evaluate_system(
    labels: np.ndarray,
    scores: np.ndarray,
    split: np.ndarray,
    *,
    groups: Sequence | None = None,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Threshold on the training doctors, metrics on ``test`` pairs with 95% intervals.

    Args:
        groups: resampling unit per pair (:func:`question_groups`); None resamples single
            pairs (only for comparison: MQP's pairs are not independent).
    """
    labels, scores, split = np.asarray(labels).astype(int), np.asarray(scores, float), np.asarray(split)
    check_scores(labels, scores)
    test = split == "test"
    if not (split == THRESHOLD_SPLIT).any() or not test.any():
        raise DataError("need both training and held-out (test) pairs")
    threshold = threshold_on_training(labels, scores, split)
    y, s = labels[test], scores[test]
    g = None if groups is None else np.asarray(groups, dtype=object)[test]
    point = metrics_at(y, s, threshold)
    boot = resampled(_Scorer(y, s, threshold), len(y), g, n_resamples=n_resamples, seed=seed)
    train = split == THRESHOLD_SPLIT
    out = {
        "threshold": threshold,
        "train_accuracy": metrics_at(labels[train], scores[train], threshold)["accuracy"],
        "heldout_pairs": int(test.sum()),
        "heldout_groups": int(len(set(g)) if g is not None else test.sum()),
    }
    for j, name in enumerate(METRICS):
        out.update(stats.from_samples(point[name], boot[:, j]).as_dict(name))
    return out


def paired_test(
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    threshold_a: float,
    threshold_b: float,
    *,
    groups: Sequence | None = None,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Paired bootstrap of held-out accuracy and AUC, system a minus b, on the same pairs
    (both systems scored on every resample; resampled by ``groups`` when given).

    ``<metric>_p_value`` is two-sided (:class:`labkit.stats.PairedDifference`); ``<metric>_verdict``
    says whether the 95% interval of the difference excludes zero.
    """
    y = np.asarray(labels).astype(int)
    sa, sb = np.asarray(scores_a, float), np.asarray(scores_b, float)
    if not (len(y) == len(sa) == len(sb)):
        raise ParameterError(
            f"a paired test needs scores on the same pairs ({len(y)} labels, {len(sa)} and {len(sb)} scores)"
        )
    score_a, score_b = _Scorer(y, sa, threshold_a), _Scorer(y, sb, threshold_b)
    boot = resampled(lambda w: score_a(w) - score_b(w), len(y), groups, n_resamples=n_resamples, seed=seed)
    a, b = metrics_at(y, sa, threshold_a), metrics_at(y, sb, threshold_b)
    out = {}
    for j, name in enumerate(METRICS):
        if name == "f1":
            continue
        d = stats.paired_from_samples(a[name] - b[name], boot[:, j])
        out.update(
            {
                f"{name}_diff": d.estimate,
                f"{name}_diff_low": d.low,
                f"{name}_diff_high": d.high,
                f"{name}_p_value": d.p_value,
                f"{name}_verdict": verdict(d),
            }
        )
    return out


def verdict(d: stats.Interval) -> str:
    """``better`` / ``worse`` when the 95% interval of a - b excludes 0, else ``no clear
    difference`` (the words the study page cites)."""
    if d.clears(0.0):
        return "better"
    if d.below(0.0):
        return "worse"
    return "no clear difference"


def unit_comparison(
    labels: np.ndarray,
    scores: np.ndarray,
    split: np.ndarray,
    units: dict[str, Sequence | None],
    *,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Held-out accuracy's interval under each resampling unit (``{"pair": None, "question
    group": groups, "doctor": dr_id}``): how much the unit changes the width."""
    rows = []
    test = np.asarray(split) == "test"
    for unit, groups in units.items():
        r = evaluate_system(labels, scores, split, groups=groups, n_resamples=n_resamples, seed=seed)
        n_units = int(test.sum()) if groups is None else len(set(np.asarray(groups)[test]))
        rows.append(
            {
                "unit": unit,
                "units": n_units,
                "accuracy": r["accuracy"],
                "accuracy_low": r["accuracy_low"],
                "accuracy_high": r["accuracy_high"],
                "width": r["accuracy_high"] - r["accuracy_low"],
            }
        )
    return rows


def graded_correlation(
    gold: Sequence[float],
    scores: Sequence[float],
    *,
    groups: Sequence | None = None,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Spearman and Pearson between graded gold scores (e.g. BIOSSES 0-4) and cosine, with
    95% intervals (for graded pair data; the MQP notebook has binary labels and does not use
    it)."""
    from scipy.stats import pearsonr, spearmanr

    g, s = np.asarray(gold, float), np.asarray(scores, float)
    if np.isnan(g).any() or np.isnan(s).any():
        raise DataError("graded scores contain NaN")
    if len(g) != len(s):
        raise ParameterError(f"graded_correlation needs one score per gold value ({len(g)} vs {len(s)})")

    def both(idx):
        if np.ptp(g[idx]) == 0 or np.ptp(s[idx]) == 0:  # a constant resample has no correlation
            return np.array([np.nan, np.nan])
        return np.array([spearmanr(g[idx], s[idx])[0], pearsonr(g[idx], s[idx])[0]])

    boot = stats.distribution(both, len(g), groups=groups, n_resamples=n_resamples, seed=seed)
    point = both(np.arange(len(g)))
    out = {}
    for j, name in enumerate(("spearman", "pearson")):
        out.update(stats.from_samples(point[j], boot[:, j]).as_dict(name))
    return out
