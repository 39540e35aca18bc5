"""Study 4: fits, bootstrap, Kausik's bounds, compute-optimal allocation, sweep helpers."""

import numpy as np
import pandas as pd
import pytest

from labkit.errors import DataError, ParameterError
from labkit.scaling import fit as F
from labkit.scaling import kausik
from labkit.scaling.bootstrap import bootstrap, intervals
from labkit.scaling.sweep import grid_configs, token_budget_grid, unique_ngrams

TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def synthetic(n_sizes=8, n_budgets=8, noise=0.0, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    N, D = np.meshgrid(np.geomspace(7e7, 1.6e10, n_sizes), np.geomspace(5e9, 5e11, n_budgets))
    N, D = N.ravel(), D.ravel()
    loss = TRUE["E"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]
    return pd.DataFrame({"N": N, "D": D, "loss": loss * np.exp(noise * rng.standard_normal(len(N)))})


# ---------------------------------------------------------------- Kausik (exact, as published)


def test_kausik_numbers_at_beta_028_match_the_paper_exactly():
    lo, hi = kausik.gamma_range(0.28)
    assert (round(lo, 2), round(kausik.gamma_mid(0.28), 2), round(hi, 2)) == (0.44, 0.58, 0.72)
    assert round(kausik.doubling_factor(hi), 1) == 2.6 and round(kausik.doubling_factor(lo), 1) == 4.8
    assert kausik.doubling_factor(0.58) == pytest.approx(3.30, abs=0.005)


def test_unique_sequence_bounds_are_ordered_and_vectorised():
    D = np.geomspace(1e3, 1e12, 7)
    low, high = kausik.unique_sequence_bounds(D, 0.28)
    assert np.all(low < high) and np.all(np.diff(low) > 0) and np.all(high <= D)
    assert kausik.unique_sequence_bounds(1e6, 0.25) == pytest.approx((1e3, 1e6**0.75))


@pytest.mark.parametrize("beta", [0, 0.5, -0.1, float("nan")])
def test_kausik_rejects_betas_where_the_bounds_are_undefined(beta):
    with pytest.raises(ParameterError, match="beta"):
        kausik.gamma_range(beta)


def test_propagate_turns_a_beta_sample_into_intervals():
    table = kausik.propagate(np.random.default_rng(0).normal(0.28, 0.01, 2000)).set_index("quantity")
    assert table.loc["gamma_mid", "low"] < 0.58 < table.loc["gamma_mid", "high"]
    assert table.loc["doubling_high", "estimate"] == pytest.approx(4.83, abs=0.05)


# ---------------------------------------------------------------- the fit


def test_objective_matches_a_direct_numpy_computation_and_its_gradient():
    pts = synthetic(4, 4, noise=0.01)
    logN, logD, logL = (np.log(pts[c].to_numpy()) for c in ("N", "D", "loss"))
    theta = np.array([6.0, 6.1, 0.5, 0.3, 0.3])
    value, grad = F.chinchilla_objective(theta, logN, logD, logL)
    pred = np.log(np.exp(theta[0] - theta[3] * logN) + np.exp(theta[1] - theta[4] * logD) + np.exp(theta[2]))
    r = pred - logL
    huber = np.where(np.abs(r) <= 1e-3, 0.5 * r**2, 1e-3 * (np.abs(r) - 0.5e-3))
    assert value == pytest.approx(huber.sum(), rel=1e-12)
    eps = 1e-6
    numeric = [(F.chinchilla_objective(theta + eps * e, logN, logD, logL)[0] - value) / eps for e in np.eye(5)]
    assert grad == pytest.approx(numeric, rel=1e-3, abs=1e-6)


def test_fit_recovers_known_parameters_from_noiseless_points():
    result = F.fit(
        synthetic(), starts=F.grid_starts({k: v[::2] for k, v in F.CHINCHILLA_GRID.items()}, F.CHINCHILLA_PARAMS)
    )
    for name, value in TRUE.items():
        assert result.params[name] == pytest.approx(value, rel=0.02), name
    assert result.converged and result.goodness()["rmse_log"] < 1e-3


def test_kaplan_form_fits_its_own_synthetic_law():
    N, D = np.meshgrid(np.geomspace(1e6, 1e9, 6), np.geomspace(1e7, 1e10, 6))
    N, D = N.ravel(), D.ravel()
    loss = ((6.4e13 / N) ** (0.076 / 0.103) + 1.8e13 / D) ** 0.103
    result = F.fit(pd.DataFrame({"N": N, "D": D, "loss": loss}), "kaplan")
    assert result.params["alpha_D"] == pytest.approx(0.103, rel=0.05)
    assert result.params["alpha_N"] == pytest.approx(0.076, rel=0.05)


def test_bootstrap_refits_scatter_around_the_truth_and_intervals_cover_it():
    pts = synthetic(6, 6, noise=0.01, seed=1)
    best = F.fit(pts, starts=np.array([[6.0, 6.0, 0.5, 0.34, 0.28]]))
    samples = bootstrap(pts, best, 40, seed=0)
    assert len(samples) == 40 and samples["converged"].all()
    assert samples["alpha"].std() > 1e-4  # refits move: intervals do not collapse onto the start
    ci = intervals(samples, best.params).set_index("parameter")
    assert ci.loc["alpha", "low"] <= best.params["alpha"] <= ci.loc["alpha", "high"]
    assert set(samples.columns) >= {"E", "A", "B", "alpha", "beta", "log_A", "objective"}


def test_compute_optimal_allocation_uses_all_the_compute():
    table = F.compute_optimal(TRUE, [1e21, F.CHINCHILLA_COMPUTE])
    assert np.allclose(6 * table["N_opt"] * table["D_opt"], table["C"], rtol=1e-9)
    # the optimum beats a 10x larger or smaller model at the same compute
    for _, row in table.iterrows():
        for k in (0.1, 10):
            n, d = row.N_opt * k, row.D_opt / k
            assert TRUE["E"] + TRUE["A"] / n**0.34 + TRUE["B"] / d**0.28 > row.loss


# ---------------------------------------------------------------- bad input


def test_bad_points_name_the_row_and_field(tmp_path):
    csv = tmp_path / "runs.csv"
    csv.write_text("N,D,loss\n1e8,2e9,3.1\n2e8,-5,3.0\n")
    with pytest.raises(DataError, match=r"runs.csv: line 3, field 'D' must be a positive"):
        F.load_points(csv)
    csv.write_text("N,D,loss\n1e8,2e9,nan\n")
    with pytest.raises(
        DataError,
        match=r"line 2, field 'loss' must be a positive finite number, "
        r"got 'nan'",
    ):
        F.load_points(csv)
    # file lines, not data-frame rows: a blank line comes before the bad row; the value is
    # shown as written (never np.float64(inf))
    csv.write_text("N,D,loss\n1e8,2e9,3.1\n\n2e8,4e9,inf\n")
    with pytest.raises(
        DataError,
        match=r"line 4, field 'loss' must be a positive finite number, "
        r"got 'inf'$",
    ):
        F.load_points(csv)
    csv.write_text("N,D\n1,2\n")
    with pytest.raises(DataError, match="missing column.*loss"):
        F.load_points(csv)


def test_duplicates_and_too_few_points_are_refused():
    pts = synthetic(3, 3)
    with pytest.raises(DataError, match="duplicate rows"):
        F.load_points(pd.concat([pts, pts.iloc[[0]]]))
    with pytest.raises(DataError, match="too few to fit 5 parameters"):
        F.fit(pts.iloc[:5])


def test_a_fit_that_cannot_converge_says_so_with_the_best_point():
    with pytest.raises(F.FitDidNotConverge, match="Best point found") as err:
        F.fit(synthetic(4, 4, noise=0.05), starts=np.array([[20.0, 20.0, 1.0, 2.0, 2.0]]), maxiter=2)
    assert set(err.value.best) == set(TRUE)


# ---------------------------------------------------------------- sweep helpers


def test_unique_ngrams_counts_distinct_prefix_ngrams():
    ids = np.array([1, 2, 1, 2, 3, 1, 2, 1])
    table = unique_ngrams(ids, [1, 2], [4, 8]).set_index(["n", "D"])["unique"]
    assert table[(1, 4)] == 2 and table[(1, 8)] == 3
    assert table[(2, 4)] == 2  # (1,2), (2,1), (1,2)
    assert table[(2, 8)] == 4  # + (2,3), (3,1)
    long = unique_ngrams(np.arange(100) % 7, [16], [100])["unique"].iloc[0]
    assert long == 7  # hashed keys for n > 4: a period-7 stream has 7 distinct 16-grams


def test_sweep_grid_and_budgets_are_checked():
    configs = grid_configs(
        [{"hidden_size": 32, "num_layers": 1, "num_heads": 2}],
        [1000, 2000],
        {"vocab_size": 512, "corpus": ["tinyshakespeare"]},
    )
    assert [c.train_tokens for c in configs] == [1000, 2000]
    with pytest.raises(ParameterError, match="unknown field"):
        grid_configs([{"width": 32}], [1000], {})
    grid = token_budget_grid(10_000, 5)
    assert grid[0] == 1000 and grid[-1] == 10_000 and np.all(np.diff(grid) > 0)
