"""Fit diagnostics: a parameter the data do not identify is flagged, a well-posed fit is not."""

import numpy as np
import pandas as pd

from labkit.scaling import fit as F
from labkit.scaling import study
from labkit.scaling.bootstrap import bootstrap
from labkit.scaling.diagnostics import IDENTIFIED, NOT_IDENTIFIED, Diagnostics, diagnose, on_bound

TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
#: a third of the published grid in each direction: enough to find the optimum, fast in tests
STARTS = F.grid_starts({k: v[::2] for k, v in F.CHINCHILLA_GRID.items()}, F.CHINCHILLA_PARAMS)


def law(E: float, n: int = 6, noise: float = 0.0, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(7e7, 1.6e10, n), np.geomspace(5e9, 5e11, n)))
    loss = E + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]
    return pd.DataFrame({"N": N, "D": D, "loss": loss * np.exp(noise * rng.standard_normal(len(N)))})


def test_a_well_posed_fit_identifies_every_parameter():
    pts = law(1.69, noise=0.005)
    result = F.fit(pts, starts=STARTS)
    diag = diagnose(result, bootstrap(pts, result, 40, seed=0))
    assert diag.ok, diag.summary()
    assert {d["status"] for d in diag.to_dict().values()} == {IDENTIFIED}


def test_a_fit_whose_true_E_is_zero_flags_E_on_its_bound():
    result = F.fit(law(0.0), starts=STARTS)
    assert isinstance(result.diagnostics, Diagnostics)
    assert result.params["E"] < 1e-3  # the optimum runs to the bound ...
    assert result.diagnostics.status("E") == NOT_IDENTIFIED  # ... and says so
    assert "lower bound 0" in result.diagnostics.reason("E")
    assert result.diagnostics.status("alpha") == IDENTIFIED


def test_noisy_E_zero_is_caught_by_the_bootstrap_interval_reaching_the_bound():
    pts = law(0.0, noise=0.01)
    result = F.fit(pts, starts=STARTS)
    diag = diagnose(result, bootstrap(pts, result, 60, seed=0))
    assert diag.status("E") == NOT_IDENTIFIED
    assert "bootstrap refits put it on a bound" in diag.reason("E")
    assert diag.status("alpha") == IDENTIFIED and diag.status("beta") == IDENTIFIED


def test_exponent_at_zero_confounds_its_scale_with_E():
    rows = pd.DataFrame([{**TRUE, "alpha": 0.0}, TRUE])
    N, D = np.geomspace(1e8, 1e10, 5), np.geomspace(1e9, 1e11, 5)
    hits = on_bound("chinchilla", rows, N, D)
    assert hits.loc[0, ["alpha", "A", "E"]].all() and not hits.loc[0, "beta"]
    assert not hits.loc[1].any()


def test_mostly_failed_starts_flag_every_parameter():
    result = F.fit(law(1.69, 4, noise=0.05), starts=STARTS[:20], maxiter=2, raise_on_failure=False)
    assert result.n_converged / result.n_starts < 0.5
    assert set(result.diagnostics.flagged) == set(TRUE)
    assert "did not converge" in result.diagnostics.reason("beta")


def test_kaplan_fits_carry_diagnostics_too():
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e6, 1e9, 6), np.geomspace(1e7, 1e10, 6)))
    loss = ((6.4e13 / N) ** (0.076 / 0.103) + 1.8e13 / D) ** 0.103
    result = F.fit(pd.DataFrame({"N": N, "D": D, "loss": loss}), "kaplan")
    assert result.diagnostics.ok, result.diagnostics.summary()
    one_term = on_bound("kaplan", pd.DataFrame([{"Nc": 1e-30, "Dc": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}]), N, D)
    assert one_term.loc[0, ["Nc", "alpha_N"]].all() and not one_term.loc[0, "Dc"]


def test_flags_reach_the_tables_the_figure_and_the_run_record(tmp_path, monkeypatch):
    from labkit import records

    monkeypatch.setenv("LABKIT_FIGURES_DIR", str(tmp_path))
    record = records.start(study.STUDY, {})
    pts = law(0.0)
    rep = study.replication(pts, starts=5, n_bootstrap=20, with_kaplan=False)
    assert rep.fit.diagnostics.status("E") == NOT_IDENTIFIED
    table = study.parameter_table(rep).set_index("parameter")
    assert table.loc["E", "identification"] == NOT_IDENTIFIED and table.loc["E", "why"]
    assert table.loc["alpha", "identification"] == IDENTIFIED
    exponents = study.exponent_table(rep.fit, rep.ci, rep.fit, record).set_index("source")
    assert "E" in exponents.loc["our tiny-model sweep", "not_identified"]
    fig = study.sweep_figure(rep.fit, pts)
    assert "not identified" in fig.layout.title.subtitle.text and "E" in fig.layout.title.subtitle.text
    assert record.results["fit_diagnostics"]["tiny-model sweep"]["E"]["status"] == NOT_IDENTIFIED
    assert any("E not identified" in w for w in record.warnings)
    good = F.fit(law(1.69), starts=STARTS)
    assert study.sweep_figure(good, law(1.69)).layout.title.subtitle.text is None
