"""Issue 23: the width rule of identification, the sweep's per-size budgets, and the Kausik
headline at the refit beta (table, figure, run-record warning, headline order)."""

import numpy as np
import pandas as pd
import pytest

from labkit.errors import ParameterError
from labkit.scaling import PROFILES, kausik, study
from labkit.scaling.bootstrap import resample_indices
from labkit.scaling.diagnostics import MAX_CI_FACTOR, NOT_IDENTIFIED, diagnose, too_wide
from labkit.scaling.sweep import grid_configs


def test_an_interval_wider_than_the_documented_factor_is_not_identified():
    # the first reference run's sweep: alpha in [0.238, 0.952] read "identified"
    wide = np.random.default_rng(0).uniform(0.238, 0.952, 400)
    assert "spans a factor" in too_wide("alpha", wide)
    narrow = np.random.default_rng(0).uniform(0.30, 0.40, 400)
    assert too_wide("alpha", narrow) == ""
    assert too_wide("A", np.geomspace(10, 90, 400)) == ""  # scales may span up to a decade
    assert "spans a factor" in too_wide("A", np.geomspace(10, 200, 400))
    assert MAX_CI_FACTOR["alpha"] == 2.0


def test_diagnose_flags_a_wide_bootstrap_interval():
    from labkit.scaling import fit as F

    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(7e7, 1.6e10, 5), np.geomspace(5e9, 5e11, 5)))
    pts = pd.DataFrame({"N": N, "D": D, "loss": 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28})
    result = F.fit(pts, starts=study.fit_starts(10))
    samples = pd.DataFrame([{**result.params, "alpha": a, "converged": True} for a in np.linspace(0.2, 0.9, 50)])
    diag = diagnose(result, samples)
    assert diag.status("alpha") == NOT_IDENTIFIED and "spans a factor" in diag.reason("alpha")
    assert diag.status("beta") != NOT_IDENTIFIED


def test_resamples_come_from_labkit_stats_and_repeat_by_seed():
    a, b = resample_indices(7, 30, seed=3), resample_indices(7, 30, seed=3)
    assert a.shape == (30, 7) and (a == b).all() and a.min() >= 0 and a.max() <= 6
    assert not (a == resample_indices(7, 30, seed=4)).all()


def test_sizes_carry_their_own_budgets():
    sizes = [
        {"hidden_size": 8, "num_layers": 1, "num_heads": 2, "budgets": [4096, 8192]},
        {"hidden_size": 16, "num_layers": 1, "num_heads": 2},
    ]
    configs = grid_configs(sizes, [2048], {"vocab_size": 512, "corpus": ["tinyshakespeare"]})
    assert [(c.hidden_size, c.train_tokens) for c in configs] == [(8, 4096), (8, 8192), (16, 2048)]
    with pytest.raises(ParameterError, match="sweep size 1: no token budget"):
        grid_configs(sizes, None, {})


def test_the_default_sweep_spans_data_rich_to_data_starved():
    """The design of issue 23: tens to thousands of tokens per parameter at the small end, about
    one at the large end, at most about one epoch of the 3.7M-token training stream."""
    from labkit.lm import TinyLMConfig

    p = PROFILES["default"]
    configs = grid_configs(p["sweep_sizes"], p["sweep_budgets"], p["sweep_base"])
    n = {
        c.hidden_size: 16 * c.hidden_size**2 * c.num_layers + (2 * c.num_layers + 1) * c.hidden_size for c in configs
    }  # non-embedding parameters of labkit.lm's Llama (4h MLP)
    ratio = [c.train_tokens / n[c.hidden_size] for c in configs]
    assert max(ratio) > 1000 and min(ratio) < 3 and len(configs) >= 12
    assert max(c.train_tokens for c in configs) <= 4 * 2**20
    assert all(c.heldout_tokens is None for c in configs)  # every held-out token is scored
    assert isinstance(configs[0], TinyLMConfig)


def _kausik_samples(beta: float, sd: float = 0.02) -> pd.DataFrame:
    return pd.DataFrame({"beta": np.random.default_rng(0).normal(beta, sd, 500)})


def test_kausik_table_leads_with_the_refit_and_warns_when_the_paper_is_outside(monkeypatch):
    from labkit import records

    record = records.start(study.STUDY, {})
    table = study.kausik_table(_kausik_samples(0.367), 0.367, record)
    assert list(table["quantity"][:2]) == ["gamma_mid", "doubling_mid"]
    assert list(table.columns[:3]) == ["quantity", "what", study.REFIT]
    row = table.set_index("quantity").loc["gamma_mid"]
    assert row[study.REFIT] == pytest.approx(1 - 1.5 * 0.367)
    assert row[study.PAPER] == pytest.approx(0.58) and not row["paper_inside_ci"]
    assert row["ci95_low"] < row[study.REFIT] < row["ci95_high"]
    assert any("does not survive" in w and "0.58" in w for w in record.warnings)
    assert record.results["kausik_refit"]["gamma_mid"] == pytest.approx(row[study.REFIT])
    fig = study.kausik_figure(table)
    assert "outside" in fig.layout.title.subtitle.text
    assert {t.name for t in fig.data} >= {f"gamma_mid {study.REFIT}", f"gamma_mid {study.PAPER}"}


def test_no_warning_when_the_refit_interval_holds_the_paper(monkeypatch):
    from labkit import records

    record = records.start(study.STUDY, {})
    table = study.kausik_table(_kausik_samples(0.28), 0.28, record)
    assert table.set_index("quantity").loc["gamma_mid", "paper_inside_ci"]
    assert (
        not record.warnings
        and kausik.paper_outside(kausik.propagate(_kausik_samples(0.28)["beta"], estimate_beta=0.28)) == ""
    )
    assert study.kausik_figure(table).layout.title.subtitle.text is None


def test_headlines_lead_the_run_record(monkeypatch):
    from labkit import records

    record = records.start(study.STUDY, {})
    record.results["fit"] = {"E": 1.8}
    record.results["other"] = 1
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(7e7, 1.6e10, 5), np.geomspace(5e9, 5e11, 5)))
    pts = pd.DataFrame({"N": N, "D": D, "loss": 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28})
    rep = study.replication(pts, starts=5, n_bootstrap=20, with_kaplan=False)
    study.sweep_results(rep.fit, rep.ci, record)
    study.headlines_first(record)
    keys = list(record.results)
    assert keys.index("sweep_fit") < keys.index("fit") < keys.index("other")
    assert record.results["sweep_identified"] == 5
    assert set(record.results["sweep_fit_ci95"]) == {"E", "A", "B", "alpha", "beta"}


def test_the_constrained_form_fits_a_law_without_floor_and_reports_why(monkeypatch):
    """E = 0 form: recovers its own law; the warning names the flagged parameters with numbers."""
    from labkit import records
    from labkit.scaling import fit as F

    record = records.start(study.STUDY, {})
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e3, 3e5, 4), np.geomspace(2.5e5, 4e6, 4)))
    loss = 7.0 / N**0.1 + 250.0 / D**0.37
    pts = pd.DataFrame({"N": N, "D": D, "loss": loss})
    e0 = study.replication(pts, starts=10, n_bootstrap=20, with_kaplan=False, form="chinchilla_e0")
    assert e0.fit.params == pytest.approx({"A": 7.0, "B": 250.0, "alpha": 0.1, "beta": 0.37}, rel=1e-3)
    assert e0.fit.diagnostics.ok and np.allclose(e0.fit.predict(N, D), loss, rtol=1e-6)
    full = study.replication(pts, starts=10, n_bootstrap=20, with_kaplan=False)
    assert full.fit.diagnostics.status("E") == NOT_IDENTIFIED
    runs = pts.assign(tokens_per_param=D / N, epochs=D / 3.7e6)
    text = study.e_not_identified(full.fit, full.ci, e0.fit, runs, record)
    assert "E" in text and "sweep_fit_e0" in text and text in record.warnings
    study.sweep_results(e0.fit, e0.ci, record)
    assert record.results["sweep_e0_identified"] == 4 and "E" not in record.results["sweep_fit_e0"]
    with pytest.raises(ParameterError, match="chinchilla_e0"):
        F.fit(pts, "nonsense")
