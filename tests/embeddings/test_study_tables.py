"""Study 1's tables from known scores: each trained system against its own base, the
resampling-unit comparison, seconds before energy, and energy named estimated or measured."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labkit import carbon, figcheck
from labkit.embeddings import figures, study, tables

ESTIMATE = "CPU estimated from CPU load x TDP (no RAPL access); RAM estimated from installed memory"
MEASURED = "CPU measured (RAPL counters); RAM estimated from installed memory"


def mqp_like(doctors: int = 6, questions: int = 40, seed: int = 0) -> pd.DataFrame:
    """MQP's shape: every question_1 in two pairs (one similar, one different), by doctor."""
    rows = []
    for d in range(1, doctors + 1):
        for q in range(questions):
            rows += [(d, f"d{d} q{q}", f"d{d} q{q} rewrite", 1), (d, f"d{d} q{q}", f"d{d} q{q} other", 0)]
    pairs = pd.DataFrame(rows, columns=["dr_id", "question_1", "question_2", "label"])
    pairs = pairs.rename_axis("row").reset_index()
    pairs["split"] = np.select([pairs["dr_id"] <= 2, pairs["dr_id"] == 3], ["test", "val"], "train")
    return pairs


def systems_for(pairs: pd.DataFrame, seed: int = 0) -> study.Systems:
    """A weak base, a head that clearly beats it, a head that changes nothing, a fine-tune."""
    rng = np.random.default_rng(seed)
    y = pairs["label"].to_numpy()
    weak = 0.15 * y + rng.random(len(y))
    out = study.Systems()
    for name, kind, scores in (
        ("base", "zero-shot cosine", weak),
        ("base+siamese", "Siamese head", 0.9 * y + rng.random(len(y))),
        ("copy", "zero-shot cosine", weak + 0.01 * rng.random(len(y))),
        ("copy+siamese", "Siamese head", weak + 0.01 * rng.random(len(y))),
    ):
        out.scores[name], out.kind[name] = scores, kind
    out.base = {"base+siamese": "base", "copy+siamese": "copy"}
    for name in ("base+siamese", "copy+siamese"):
        for epoch in (1, 2):
            out.epochs.append(
                {
                    "system": name,
                    "epoch": epoch,
                    "train_loss": 0.1,
                    "val_auc": 0.7,
                    "seconds": 0.5,
                    "energy_kwh": 0.5 * 27 / 3.6e6,
                    "emissions_g": 1e-3,
                    "best_epoch": 1,
                }
            )
    return out


def test_each_trained_system_is_tested_against_its_own_base():
    pairs = mqp_like()
    systems = systems_for(pairs)
    results = tables.results_table(systems, pairs, n_resamples=200, power_method=ESTIMATE)
    table = tables.versus_base_table(systems, pairs, results, n_resamples=200).set_index("system")
    assert list(table.index) == ["base+siamese", "copy+siamese"]
    assert list(table["base"]) == ["base", "copy"] and set(table["kind"]) == {"Siamese head"}
    assert table.loc["base+siamese", "accuracy_verdict"] == "better"
    assert table.loc["base+siamese", "accuracy_diff_low"] > 0
    assert table.loc["copy+siamese", "accuracy_verdict"] == "no clear difference"
    # the difference is the one the results table shows, on the same pairs and thresholds
    acc = results.set_index("system")["accuracy"]
    assert table.loc["base+siamese", "accuracy_diff"] == pytest.approx(acc["base+siamese"] - acc["base"])
    # verdicts sit right after the names, where the study page cites them
    assert list(table.reset_index().columns[:5]) == ["system", "base", "kind", "accuracy_verdict", "roc_auc_verdict"]


def test_results_resample_question_groups_and_put_seconds_before_energy():
    pairs = mqp_like()
    systems = systems_for(pairs)
    results = tables.results_table(systems, pairs, n_resamples=100, power_method=ESTIMATE)
    row = results.set_index("system").loc["base+siamese"]
    assert row["heldout_pairs"] == 160 and row["heldout_groups"] == 80
    assert row["training_seconds"] == pytest.approx(1.0)
    assert row["energy_basis"] == "estimated (CPU load x TDP)"
    assert results.set_index("system").loc["base", "energy_basis"] == "no training"
    columns = list(results.columns)
    assert columns.index("training_seconds") < columns.index("training_energy_kwh")
    split = study.split_table(pairs).set_index("split")
    assert split.loc["test", "question_groups"] == 80 and split.loc["test", "doctors"] == [1, 2]


def test_interval_units_table_compares_pair_question_and_doctor_resampling():
    pairs = mqp_like()
    units = tables.interval_units_table(systems_for(pairs), pairs, n_resamples=100)
    base = units[units["system"] == "base"].set_index("unit")
    assert list(base.index) == ["pair", "question group", "doctor"]
    assert list(base["units"]) == [160, 80, 2]
    assert base["accuracy"].nunique() == 1  # one estimate, three intervals
    assert (base["width"] > 0).all()


def test_epochs_table_says_what_the_energy_is():
    systems = systems_for(mqp_like())
    table = tables.epochs_table(systems, ESTIMATE)
    assert list(table.columns[:3]) == ["system", "epoch", "seconds"]
    assert table["mean_power_w"].to_numpy() == pytest.approx(27.0)
    assert set(table["energy_basis"]) == {"estimated (CPU load x TDP)"}
    assert set(tables.epochs_table(systems, MEASURED)["energy_basis"]) == {"measured (RAPL)"}


def test_energy_labels_and_captions():
    assert carbon.energy_basis(ESTIMATE) == "estimated"
    assert carbon.energy_basis(MEASURED) == "measured"
    assert (
        carbon.energy_basis(
            "CPU estimated from CPU load x TDP (no RAPL access); GPU measured "
            "(NVML); RAM estimated from installed memory"
        )
        == "partly measured"
    )
    assert carbon.energy_caption(ESTIMATE).startswith("Energy is estimated, not measured")
    assert "read seconds first" in carbon.energy_caption(ESTIMATE)
    assert carbon.energy_caption(MEASURED).startswith("Energy measured")
    m = carbon.Measurement("t", 10.0, 10 * 27 / 3.6e6, 0.0, 0.0, 0.0, 0.0, ESTIMATE, "USA")
    assert m.basis == "estimated" and m.mean_power_w == pytest.approx(27.0)
    assert carbon.Measurement(**m.as_dict()) == m  # still rebuilt from its dict (scaling sweep)


def test_epoch_figure_shows_seconds_above_energy_named_estimated():
    systems = systems_for(mqp_like())
    fig = figcheck.readable(figures.epoch_figure(tables.epochs_table(systems, ESTIMATE), ESTIMATE))
    assert fig.layout.yaxis.title.text.startswith("seconds")
    assert fig.layout.yaxis2.title.text.startswith("estimated mWh")
    assert "estimated" in fig.layout.title.text.lower()
    assert figcheck.check_figure(fig) == []
    measured = figures.epoch_figure(tables.epochs_table(systems, MEASURED), MEASURED)
    assert measured.layout.yaxis2.title.text.startswith("measured mWh")
