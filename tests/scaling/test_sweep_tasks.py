"""The scaling sweep as independent tasks: a unit is deterministic, goes through the shared model
cache (a re-run trains nothing), folds its energy into the caller's carbon session, and runs the
same on a 2-worker Dask LocalCluster. Tiny configs on the real tinyshakespeare text."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from labkit.errors import ParameterError
from labkit.scaling import sweep

MIRROR = os.environ.get("LABKIT_DATA_MIRROR") or str(Path(__file__).resolve().parents[3] / "shared" / "data")
BASE = {
    "vocab_size": 300,
    "context_length": 64,
    "batch_size": 8,
    "learning_rate": 5e-3,
    "corpus": ["tinyshakespeare"],
    "heldout_fraction": 0.01,
}  # 1%: a quick held-out score
SIZES = [{"hidden_size": 16, "num_layers": 1, "num_heads": 2}, {"hidden_size": 32, "num_layers": 1, "num_heads": 2}]
BUDGETS = [2_048, 4_096]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private model/tokenizer cache per test (so "trained" and "hit" are this test's)."""
    if not any((Path(p) / "tinyshakespeare").exists() for p in MIRROR.split(":") if p):
        pytest.skip("real data mirror not found ($LABKIT_DATA_MIRROR or ../shared/data)")
    monkeypatch.setenv("LABKIT_DATA_MIRROR", MIRROR)
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LABKIT_DASK_SCHEDULER", raising=False)
    return tmp_path / "cache"


def _unit(hidden=16, tokens=2_048, seed=0):
    (config,) = sweep.grid_configs([{**SIZES[0], "hidden_size": hidden}], [tokens], {**BASE, "seed": seed})
    return sweep.SweepUnit((config,), "USA")


def test_a_unit_is_deterministic_and_its_rerun_is_a_cache_hit(cache, monkeypatch, tmp_path):
    (first,) = sweep.train_unit(_unit())
    assert first["cached"] is False and first["energy"] and first["energy"][0]["energy_kwh"] >= 0
    (again,) = sweep.train_unit(_unit())
    assert again["cached"] is True and again["energy"] == []
    assert again["loss"] == first["loss"] and again["name"] == first["name"]
    # the same unit trained from scratch in another cache: the very same numbers
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "other-cache"))
    (fresh,) = sweep.train_unit(_unit())
    assert fresh["cached"] is False
    assert fresh["loss"] == first["loss"] and fresh["train_loss"] == first["train_loss"]
    # and another seed is another model with another loss
    (other,) = sweep.train_unit(_unit(seed=1))
    assert other["name"] != first["name"] and other["loss"] != first["loss"]


def _forbid_training(monkeypatch):
    import labkit.lm.train as train

    def no_training(*args, **kwargs):
        raise AssertionError("the second sweep trained a model instead of hitting the cache")

    monkeypatch.setattr(train, "_train", no_training)


def test_a_second_sweep_hits_the_cache_for_every_unit(cache, monkeypatch):
    from labkit.carbon import CarbonSession

    with CarbonSession("USA") as carbon:
        runs = sweep.run_sweep(SIZES, BUDGETS, BASE, carbon=carbon)
    assert runs.attrs["trained"] == 4 and len(runs) == 4
    assert list(runs.columns) == [
        "hidden_size",
        "num_layers",
        "N",
        "N_total",
        "D",
        "tokens_per_param",
        "loss",
        "heldout_tokens",
        "train_loss",
        "steps",
        "epochs",
        "wall_s",
        "energy_kwh",
        "branched_from_step",
        "name",
    ]
    assert list(runs["D"]) == [2_048, 4_096, 2_048, 4_096] and runs["name"].is_unique
    # each unit's energy, measured where it trained, lands in the caller's session
    assert len(carbon.measurements) == 4
    assert carbon.total()["energy_kwh"] == pytest.approx(runs["energy_kwh"].sum())

    _forbid_training(monkeypatch)
    with CarbonSession("USA") as carbon2:
        again = sweep.run_sweep(SIZES, BUDGETS, BASE, carbon=carbon2)
    assert again.attrs["trained"] == 0 and carbon2.measurements == []
    pd.testing.assert_frame_equal(again, runs)


def test_a_wsd_sweep_trains_each_size_as_one_chain_and_reruns_from_the_cache(cache, monkeypatch):
    from labkit.carbon import CarbonSession

    base = {**BASE, "schedule": "wsd"}
    budgets = [4_096, 8_192]  # 8 and 16 steps of 512 tokens
    with CarbonSession("USA") as carbon:
        runs = sweep.run_sweep(SIZES, budgets, base, carbon=carbon)
    assert runs.attrs["trained"] == 4 and list(runs["D"]) == budgets * 2
    # the shorter budget of each size branched off its longer run at its own cool-down
    assert list(runs["branched_from_step"]) == [6, 0, 6, 0]
    assert len(carbon.measurements) == 4  # one measured segment per model
    assert carbon.total()["energy_kwh"] == pytest.approx(runs["energy_kwh"].sum())
    _forbid_training(monkeypatch)
    with CarbonSession("USA") as carbon2:
        again = sweep.run_sweep(SIZES, budgets, base, carbon=carbon2)
    assert again.attrs["trained"] == 0 and carbon2.measurements == []
    pd.testing.assert_frame_equal(again, runs)


def test_bad_grid_is_refused_before_any_unit_runs(cache, monkeypatch):
    _forbid_training(monkeypatch)
    with pytest.raises(ParameterError, match="hidden_size .*divisible by num_heads"):
        sweep.run_sweep([{"hidden_size": 30, "num_layers": 1, "num_heads": 4}], BUDGETS, BASE)
    assert not list(cache.glob("models/tiny-lm-*"))


@pytest.mark.slow
def test_units_on_a_two_worker_cluster_fill_the_same_cache(cache, monkeypatch):
    """The workers (started after the env is set, so they share this cache) train every unit;
    the in-process re-run then trains none and returns the same rows."""
    from labkit.cluster import connect

    with connect(jobs=2) as client:
        remote = sweep.run_sweep(SIZES, BUDGETS[:1], BASE, client=client)
    assert remote.attrs["trained"] == 2
    _forbid_training(monkeypatch)
    local = sweep.run_sweep(SIZES, BUDGETS[:1], BASE)
    assert local.attrs["trained"] == 0
    pd.testing.assert_frame_equal(local, remote)


@pytest.mark.parametrize("literal_eos", [False, True])
def test_corpus_token_counts_match_encoding_each_corpus_alone(cache, monkeypatch, literal_eos):
    """Each corpus's share is read off the cached stream at its last document's </s>; a text
    that itself holds "</s>" would shift that count, so the corpus is then encoded alone."""
    from labkit.lm import corpus, encode_documents

    docs = corpus._documents("tinyshakespeare")[:40]
    first, second = docs[:25], docs[25:]
    if literal_eos:
        first = [first[0] + " </s> "] + first[1:]
    monkeypatch.setitem(corpus.CORPORA, "first_part", lambda: first)
    monkeypatch.setitem(corpus.CORPORA, "second_part", lambda: second)
    base = {**BASE, "corpus": ["first_part", "second_part"], "heldout_fraction": 0.1}
    counts = sweep.corpus_token_counts(base)
    _, tokenizer, train_docs, _, _ = sweep._stream(base)
    stream = encode_documents(tokenizer, train_docs)
    assert ((stream == tokenizer.eos_token_id).sum() == len(train_docs)) != literal_eos  # which path ran
    for key in ("first_part", "second_part"):
        own, _ = corpus.corpus_documents([key], 0.1)
        assert counts[f"{key}_train_tokens"] == len(encode_documents(tokenizer, own))
    assert counts["first_part_train_tokens"] + counts["second_part_train_tokens"] == counts["train_stream_tokens"]
