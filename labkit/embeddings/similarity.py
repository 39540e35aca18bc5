"""Pair similarity analysis: doctor-wise splits, thresholds, metrics and bootstrap statistics.

MQP's 11 doctors each wrote balanced similar/dissimilar rewrites of their own questions, so a
split by row would put one doctor's near-duplicate questions on both sides. Everything here
splits by doctor (``dr_id``), chooses thresholds on the training doctors only and reports on the
held-out doctors; intervals are percentile bootstraps over pairs, and model comparisons are
paired bootstraps on the same pairs.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, roc_auc_score

from labkit.errors import DataError, ParameterError

SPLITS = ("train", "val", "test")


def split_by_doctor(pairs: pd.DataFrame, test_doctors: int, val_doctors: int,
                    seed: int = 0) -> pd.Series:
    """``"train" / "val" / "test"`` per pair, drawn by doctor (no doctor in two splits).

    Args:
        pairs: with a ``dr_id`` column (a user's file without one: every row its own group).
        test_doctors, val_doctors: how many doctors to hold out for testing / early stopping.
    """
    if "dr_id" not in pairs.columns:
        raise DataError("pairs have no 'dr_id' column to split by")
    doctors = np.sort(pairs["dr_id"].unique())
    if test_doctors < 1 or val_doctors < 0 or test_doctors + val_doctors >= len(doctors):
        raise ParameterError(f"test_doctors={test_doctors}, val_doctors={val_doctors}: need at "
                             f"least one doctor left for training out of {len(doctors)}")
    order = np.random.default_rng(seed).permutation(doctors)
    role = {d: "test" for d in order[:test_doctors]}
    role.update({d: "val" for d in order[test_doctors:test_doctors + val_doctors]})
    return pairs["dr_id"].map(lambda d: role.get(d, "train")).rename("split")


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
        raise DataError(f"{where}: similarity score at position "
                        f"{int(np.flatnonzero(np.isnan(scores))[0])} is NaN")


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


def metrics_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, F1 and ROC-AUC of ``score >= threshold`` predicting label 1."""
    labels = np.asarray(labels).astype(int)
    pred = (np.asarray(scores) >= threshold).astype(int)
    auc = roc_auc_score(labels, scores) if len(np.unique(labels)) == 2 else float("nan")
    return {"accuracy": float((pred == labels).mean()),
            "f1": float(f1_score(labels, pred, zero_division=0)), "roc_auc": float(auc)}


def _resample_metrics(labels, scores, threshold, idx) -> np.ndarray:
    """accuracy, f1, auc for each row of bootstrap indices (vectorised where it is cheap)."""
    y, s = labels[idx], scores[idx]
    pred = s >= threshold
    acc = (pred == y).mean(1)
    tp = (pred & (y == 1)).sum(1)
    fp = (pred & (y == 0)).sum(1)
    fn = (~pred & (y == 1)).sum(1)
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros(len(idx)), where=(2 * tp + fp + fn) > 0)
    # AUC = P(score of a random positive > a random negative), via ranks per resample
    ranks = s.argsort(1).argsort(1) + 1.0
    n_pos = (y == 1).sum(1)
    n_neg = y.shape[1] - n_pos
    auc = np.divide((ranks * (y == 1)).sum(1) - n_pos * (n_pos + 1) / 2, n_pos * n_neg,
                    out=np.full(len(idx), np.nan), where=(n_pos * n_neg) > 0)
    return np.stack([acc, f1, auc], axis=1)


def evaluate_system(labels: np.ndarray, scores: np.ndarray, split: np.ndarray, *,
                    n_resamples: int = 1000, seed: int = 0) -> dict[str, float]:
    """Threshold on train(+val) pairs, metrics on ``test`` pairs with 95% bootstrap CIs."""
    labels, scores, split = np.asarray(labels).astype(int), np.asarray(scores, float), np.asarray(split)
    check_scores(labels, scores)
    fit_mask, test_mask = split != "test", split == "test"
    if not fit_mask.any() or not test_mask.any():
        raise DataError("need both training and held-out (test) pairs")
    threshold = best_threshold(labels[fit_mask], scores[fit_mask])
    point = metrics_at(labels[test_mask], scores[test_mask], threshold)
    y, s = labels[test_mask], scores[test_mask]
    idx = np.random.default_rng(seed).integers(0, len(y), size=(n_resamples, len(y)))
    boot = _resample_metrics(y, s, threshold, idx)
    out = {"threshold": threshold, "train_accuracy": metrics_at(labels[fit_mask], scores[fit_mask],
                                                                threshold)["accuracy"],
           "heldout_pairs": int(test_mask.sum())}
    for j, name in enumerate(("accuracy", "f1", "roc_auc")):
        out[name] = point[name]
        out[f"{name}_low"], out[f"{name}_high"] = (float(np.nanpercentile(boot[:, j], 2.5)),
                                                   float(np.nanpercentile(boot[:, j], 97.5)))
    return out


def paired_test(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                threshold_a: float, threshold_b: float, *, n_resamples: int = 1000,
                seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of held-out accuracy and AUC, system a minus b, on the same pairs.

    ``p_value`` is the two-sided share of resamples whose difference crosses zero.
    """
    y = np.asarray(labels).astype(int)
    idx = np.random.default_rng(seed).integers(0, len(y), size=(n_resamples, len(y)))
    a = _resample_metrics(y, np.asarray(scores_a, float), threshold_a, idx)
    b = _resample_metrics(y, np.asarray(scores_b, float), threshold_b, idx)
    out = {}
    for j, name in ((0, "accuracy"), (2, "roc_auc")):
        diff = a[:, j] - b[:, j]
        point = (metrics_at(y, scores_a, threshold_a)[name] - metrics_at(y, scores_b, threshold_b)[name])
        p = 2 * min((diff <= 0).mean(), (diff >= 0).mean())
        out.update({f"{name}_diff": float(point), f"{name}_diff_low": float(np.percentile(diff, 2.5)),
                    f"{name}_diff_high": float(np.percentile(diff, 97.5)),
                    f"{name}_p_value": float(min(1.0, p))})
    return out


def graded_correlation(gold: Sequence[float], scores: Sequence[float], *, n_resamples: int = 1000,
                       seed: int = 0) -> dict[str, float]:
    """Spearman and Pearson between graded gold scores (e.g. BIOSSES 0-4) and cosine, with CIs."""
    from scipy.stats import pearsonr, spearmanr

    g, s = np.asarray(gold, float), np.asarray(scores, float)
    if np.isnan(g).any() or np.isnan(s).any():
        raise DataError("graded scores contain NaN")
    idx = np.random.default_rng(seed).integers(0, len(g), size=(n_resamples, len(g)))
    out = {}
    for name, fn in (("spearman", lambda x, y: spearmanr(x, y)[0]), ("pearson", lambda x, y: pearsonr(x, y)[0])):
        boot = np.array([fn(g[i], s[i]) for i in idx])
        out[name] = float(fn(g, s))
        out[f"{name}_low"], out[f"{name}_high"] = (float(np.nanpercentile(boot, 2.5)),
                                                   float(np.nanpercentile(boot, 97.5)))
    return out
