"""labkit.run.seeds: the per-seed aggregate table, figure and run-record entries, on synthetic
seed folders (real run_record.json files written by the test, real writers)."""

from __future__ import annotations

import json
import math
import statistics

import pandas as pd
import pytest

from labkit.errors import DataError, ParameterError
from labkit.records import RECORD_NAME
from labkit.run import gallery, seeds

STUDY = "embeddings_medical"


def _seed_folder(root, seed, results, study=STUDY):
    folder = root / "seeds" / f"seed-{seed}" / study
    folder.mkdir(parents=True)
    (folder / RECORD_NAME).write_text(
        json.dumps(
            {
                "study": study,
                "parameters": {"profile": "smoke", "seed": seed},
                "results": results,
                "outputs": [],
            }
        )
    )
    return folder


def _results(seed):
    return {
        "heldout_accuracy": {"minilm": 0.70 + 0.01 * seed, "finetuned": 0.80 + 0.02 * seed},
        "finetune": {"epochs": 2, "train_loss": 0.5 - 0.1 * seed, "model": "labkit/x"},
        "split": {"train": [1, 2, 3]},
        "pairs_csv_sha256": "ab" * 32,
        "ok": True,
        "vs_lead": [
            {"system": "lead", "p_value": 0.01 * (seed + 1)},
            {"system": "ours", "p_value": 0.5},
        ],
    }


@pytest.fixture
def figs(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_FIGURES_DIR", str(tmp_path))
    monkeypatch.setenv("LABKIT_STRICT_FIGURES", "1")  # a figure that reads wrong fails the test
    return tmp_path


def test_flatten_keeps_numeric_leaves_under_dotted_keys():
    flat = seeds.flatten_numbers(_results(1))
    assert flat == {
        "heldout_accuracy.minilm": pytest.approx(0.71),
        "heldout_accuracy.finetuned": pytest.approx(0.82),
        "finetune.epochs": 2.0,
        "finetune.train_loss": pytest.approx(0.4),
        "vs_lead.lead.p_value": pytest.approx(0.02),
        "vs_lead.ours.p_value": 0.5,
    }
    assert seeds.flatten_numbers({"x": float("nan"), "y": float("inf")}) == {}


def test_aggregate_writes_mean_std_min_max_and_notes_outputs(figs):
    out = figs / STUDY
    dirs = {s: _seed_folder(out, s, _results(s)) for s in (0, 1, 2)}
    written = seeds.aggregate(STUDY, dirs, out)
    names = {p.name for p in written}
    assert {"seeds_summary.csv", "seeds_summary.md", "seeds_spread.html", RECORD_NAME} <= names
    table = pd.read_csv(out / "seeds_summary.csv").set_index("result")
    tuned = [0.80, 0.82, 0.84]
    row = table.loc["heldout_accuracy.finetuned"]
    assert row["mean"] == pytest.approx(statistics.mean(tuned))
    assert row["std"] == pytest.approx(statistics.stdev(tuned))  # ddof = 1
    assert (row["min"], row["max"], row["n_seeds"]) == (pytest.approx(0.80), pytest.approx(0.84), 3)
    assert table.loc["finetune.epochs", "std"] == 0
    assert "split.train.0" not in table.index and "ok" not in table.index
    md = (out / "seeds_summary.md").read_text()
    assert md.startswith("**embeddings_medical: headline numbers across seeds 0, 1, 2")
    record = json.loads((out / RECORD_NAME).read_text())
    by_name = {o["name"]: o for o in record["outputs"]}
    assert by_name["seeds_summary"]["files"] == {
        "csv": "seeds_summary.csv",
        "md": "seeds_summary.md",
    }
    assert by_name["seeds_spread"]["kind"] == "figure"
    assert record["parameters"]["profile"] == "smoke" and record["parameters"]["seed"] == [0, 1, 2]
    # the figure shows only headline-like keys, in result order
    assert record["seed_aggregate"]["figure_keys"] == [
        "heldout_accuracy.minilm",
        "heldout_accuracy.finetuned",
    ]
    # the gallery links the aggregate
    readme = gallery.write(figs).read_text()
    assert f"{STUDY}/seeds_summary.md" in readme and "seeds_spread" in readme


def test_a_missing_or_failed_seed_is_named_and_the_rest_aggregated(figs):
    out = figs / STUDY
    dirs = {
        0: _seed_folder(out, 0, _results(0)),
        1: _seed_folder(out, 1, _results(1)),
        2: out / "seeds" / "seed-2" / STUDY,
    }  # seed 2 failed: no folder at all
    bad = _seed_folder(out, 3, {})
    (bad / RECORD_NAME).write_text("{not json")
    dirs[3] = bad
    seeds.aggregate(STUDY, dirs, out)
    table = pd.read_csv(out / "seeds_summary.csv").set_index("result")
    assert table.loc["heldout_accuracy.minilm", "n_seeds"] == 2
    assert table.loc["heldout_accuracy.minilm", "mean"] == pytest.approx(0.705)
    caption = (out / "seeds_summary.md").read_text().splitlines()[0]
    assert "missing seeds: 2 (no run record" in caption and "3 (unreadable run record" in caption


def test_an_existing_record_keeps_its_outputs_and_gains_the_aggregate(figs):
    out = figs / STUDY
    out.mkdir()
    (out / RECORD_NAME).write_text(
        json.dumps(
            {
                "study": STUDY,
                "results": {"a": 1},
                "outputs": [
                    {
                        "kind": "table",
                        "name": "results",
                        "caption": "c",
                        "files": {"csv": "results.csv"},
                    }
                ],
            }
        )
    )
    dirs = {s: _seed_folder(out, s, _results(s)) for s in (0, 1)}
    seeds.aggregate(STUDY, dirs, out)
    seeds.aggregate(STUDY, dirs, out)  # twice: replaced, not duplicated
    record = json.loads((out / RECORD_NAME).read_text())
    assert [o["name"] for o in record["outputs"]] == ["results", "seeds_summary", "seeds_spread"]
    assert record["results"] == {"a": 1}


def test_one_seed_has_no_std_and_a_seed_folder_may_be_a_figures_root(figs):
    out = figs / STUDY
    folder = _seed_folder(out, 5, _results(5))
    seeds.aggregate(STUDY, {5: folder.parent}, out)  # the figures root holding <study>/
    table = pd.read_csv(out / "seeds_summary.csv").set_index("result")
    assert math.isnan(table.loc["heldout_accuracy.minilm", "std"])
    assert table.loc["heldout_accuracy.minilm", "n_seeds"] == 1


def test_bad_input_is_one_clear_error(figs):
    with pytest.raises(ParameterError, match="seed_dirs is empty"):
        seeds.aggregate(STUDY, {}, figs / STUDY)
    with pytest.raises(ParameterError, match="must be ints"):
        seeds.aggregate(STUDY, {"0": figs}, figs / STUDY)
    with pytest.raises(DataError, match=r"seed 0: no run record.*seed 1: no run record"):
        seeds.aggregate(STUDY, {0: figs / "a", 1: figs / "b"}, figs / STUDY)
    assert not (figs / STUDY / "seeds_summary.csv").exists()


def test_headlines_fall_back_to_the_pattern_and_cap_at_eight():
    keys = [f"speedup.k{i}" for i in range(12)] + ["loss", "alpha"]
    chosen = seeds.headline_keys("no_such_study", keys)
    assert chosen == [f"speedup.k{i}" for i in range(8)]
    assert seeds.headline_keys("scaling_laws", ["fit.alpha", "fit.E", "fit.beta"]) == [
        "fit.alpha",
        "fit.beta",
    ]
