"""Study 1's tables: every system evaluated the same way, and the record's headlines.

Threshold on the training doctors only, metrics on the held-out doctors, 95% intervals
resampled by question group through :mod:`labkit.stats`; each system lands as one score column
in ``pair_scores.csv`` and one row in ``thresholds.csv``, the explorer's inputs. Every trained
system is also tested against its own base on the same pairs (:func:`versus_base_table`).

Energy comes from codecarbon; where it is an estimate from CPU load x TDP the tables say so in
an ``energy_basis`` column and put seconds first (:mod:`labkit.carbon`).
"""

from __future__ import annotations

import pandas as pd

from labkit import carbon as energy
from labkit.embeddings import similarity
from labkit.embeddings.study import Systems

#: the held-out accuracy the fine-tuned encoder is asked to reach (issue: >= 0.87; the dataset
#: authors' BERT reached 0.826-0.845); met only when the whole 95% interval lies above it
TARGET_ACCURACY = 0.87


def _groups(pairs: pd.DataFrame):
    """The resampling unit of every interval (question groups; see :mod:`.similarity`)."""
    return similarity.question_groups(pairs) if "question_1" in pairs.columns else None


def results_table(
    systems: Systems, pairs: pd.DataFrame, n_resamples: int, seed: int = 0, *, power_method: str | None = None
) -> pd.DataFrame:
    """One row per system: threshold (training doctors), held-out accuracy / F1 / ROC-AUC with
    95% intervals resampled by question group, then training seconds before training energy,
    and what that energy is (``energy_basis``: estimated or measured).

    ``status`` is ``"ok"``, ``"skipped: <reason>"`` or ``"failed: <cause>"``; rows that did not
    run repeat it in ``kind`` and have no metrics.
    """
    labels, split = pairs["label"].to_numpy(), pairs["split"].to_numpy()
    groups = _groups(pairs)
    epochs = pd.DataFrame(systems.epochs)
    basis = energy.energy_label(power_method) if power_method else "not recorded"
    rows = []
    for name, scores in systems.scores.items():
        r = similarity.evaluate_system(labels, scores, split, groups=groups, n_resamples=n_resamples, seed=seed)
        mine = epochs[epochs["system"] == name] if len(epochs) else epochs
        trained = bool(len(mine))
        rows.append(
            {
                "system": name,
                "kind": systems.kind[name],
                "status": "ok",
                **r,
                "training_epochs": int(len(mine)),
                "training_seconds": float(mine["seconds"].sum()) if trained else 0.0,
                "training_energy_kwh": float(mine["energy_kwh"].sum()) if trained else 0.0,
                "training_emissions_g": float(mine["emissions_g"].sum()) if trained else 0.0,
                "energy_basis": basis if trained else "no training",
            }
        )
    for s in systems.skipped:
        status = s["reason"] if s.get("status") == "failed" else f"skipped: {s['reason']}"
        rows.append({"system": s["system"], "kind": status, "status": status})
    return pd.DataFrame(rows)


_PAIRED_ORDER = [
    "accuracy_verdict",
    "roc_auc_verdict",
    "accuracy_diff",
    "accuracy_diff_low",
    "accuracy_diff_high",
    "accuracy_p_value",
    "roc_auc_diff",
    "roc_auc_diff_low",
    "roc_auc_diff_high",
    "roc_auc_p_value",
]


def _paired_rows(
    systems: Systems,
    pairs: pd.DataFrame,
    results: pd.DataFrame,
    comparisons: list[tuple[str, str]],
    n_resamples: int,
    seed: int,
) -> list[dict]:
    test = pairs["split"].to_numpy() == "test"
    y = pairs["label"].to_numpy()[test]
    groups = _groups(pairs)
    g = None if groups is None else groups[test]
    thresholds = results.set_index("system")["threshold"]
    rows = []
    for name, other in comparisons:
        r = similarity.paired_test(
            y,
            systems.scores[name][test],
            systems.scores[other][test],
            thresholds[name],
            thresholds[other],
            groups=g,
            n_resamples=n_resamples,
            seed=seed,
        )
        rows.append({"system": name, "versus": other, **{k: r[k] for k in _PAIRED_ORDER}})
    return rows


def paired_table(
    systems: Systems, pairs: pd.DataFrame, results: pd.DataFrame, reference: str, n_resamples: int, seed: int = 0
) -> pd.DataFrame:
    """Every system against ``reference`` on the same held-out pairs (paired bootstrap by
    question group); ``*_verdict``: better / worse / no clear difference at 95%."""
    comparisons = [(name, reference) for name in systems.scores if name != reference]
    return pd.DataFrame(
        _paired_rows(systems, pairs, results, comparisons, n_resamples, seed),
        columns=["system", "versus", *_PAIRED_ORDER],
    )


def versus_base_table(
    systems: Systems, pairs: pd.DataFrame, results: pd.DataFrame, n_resamples: int, seed: int = 0
) -> pd.DataFrame:
    """Every trained system against its own base on the same held-out pairs: each Siamese head
    against the frozen vectors it was trained on, the fine-tuned encoder against the zero-shot
    cosine of the same weights. What "the head helps" has to clear."""
    comparisons = [
        (name, base) for name, base in systems.base.items() if name in systems.scores and base in systems.scores
    ]
    frame = pd.DataFrame(
        _paired_rows(systems, pairs, results, comparisons, n_resamples, seed),
        columns=["system", "versus", *_PAIRED_ORDER],
    )
    frame.insert(2, "kind", frame["system"].map(systems.kind))
    return frame.rename(columns={"versus": "base"})


def interval_units_table(systems: Systems, pairs: pd.DataFrame, n_resamples: int, seed: int = 0) -> pd.DataFrame:
    """Held-out accuracy's 95% interval per system when the bootstrap resamples single pairs,
    question groups (what every other table uses) or doctors: what the unit does to the
    width. With 3 test doctors the doctor bootstrap has 10 distinct resamples."""
    labels, split = pairs["label"].to_numpy(), pairs["split"].to_numpy()
    units = {"pair": None, "question group": _groups(pairs)}
    if "dr_id" in pairs.columns and pairs.loc[split == "test", "dr_id"].nunique() >= 2:
        units["doctor"] = pairs["dr_id"].astype(str).to_numpy()
    rows = []
    for name, scores in systems.scores.items():
        for row in similarity.unit_comparison(labels, scores, split, units, n_resamples=n_resamples, seed=seed):
            rows.append({"system": name, **row})
    return pd.DataFrame(rows)


def epochs_table(systems: Systems, power_method: str) -> pd.DataFrame:
    """Every training epoch: seconds first, then loss, validation AUC, energy, CO2, the mean
    power the energy implies (a near-constant number of watts is an estimate's signature) and
    ``energy_basis`` (estimated or measured)."""
    frame = pd.DataFrame(systems.epochs)
    if not len(frame):
        return frame
    frame["mean_power_w"] = [energy.mean_power_w(e, s) for e, s in zip(frame["energy_kwh"], frame["seconds"])]
    frame["energy_basis"] = energy.energy_label(power_method)
    first = [
        "system",
        "epoch",
        "seconds",
        "train_loss",
        "val_auc",
        "best_epoch",
        "energy_kwh",
        "emissions_g",
        "mean_power_w",
        "energy_basis",
    ]
    return frame[[c for c in first if c in frame.columns]]


def record_headlines(record, results: pd.DataFrame) -> None:
    """Held-out accuracy and AUC per system into ``record.results`` (what ``--seeds`` spreads),
    and whether the fine-tuned encoder's interval clears :data:`TARGET_ACCURACY` (a warning
    when it does not)."""
    ok = results.dropna(subset=["accuracy"]).set_index("system")
    record.results["heldout_accuracy"] = ok["accuracy"].to_dict()
    record.results["heldout_roc_auc"] = ok["roc_auc"].to_dict()
    for name in [s for s in ok.index if s.endswith("-finetuned")]:
        low, high = float(ok.loc[name, "accuracy_low"]), float(ok.loc[name, "accuracy_high"])
        met = low > TARGET_ACCURACY
        record.results["target"] = {
            "system": name,
            "accuracy_floor": TARGET_ACCURACY,
            "accuracy": float(ok.loc[name, "accuracy"]),
            "accuracy_low": low,
            "accuracy_high": high,
            "met": met,
        }
        if not met:
            record.warn(
                f"{name}: held-out accuracy {ok.loc[name, 'accuracy']:.3f} "
                f"[{low:.3f}, {high:.3f}] does not clear the {TARGET_ACCURACY} target"
            )


def pair_scores(pairs: pd.DataFrame, systems: Systems) -> pd.DataFrame:
    """The explorer's ``pair_scores.csv``: pair metadata plus one score column per system."""
    frame = pairs[["row", "dr_id", "split", "label", "question_1", "question_2"]].copy()
    for name, scores in systems.scores.items():
        frame[name] = scores
    return frame


def thresholds(results: pd.DataFrame) -> pd.DataFrame:
    """The explorer's ``thresholds.csv``."""
    done = results.dropna(subset=["threshold"])
    return done[["system", "threshold", "accuracy"]].rename(columns={"accuracy": "heldout_accuracy"})
