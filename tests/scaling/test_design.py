"""labkit.scaling.design: the parameter count of a tiny decoder, the candidate designs, their
cost, and whether a simulated design identifies a law that the data carry (and fails to
identify one they cannot)."""

import numpy as np
import pandas as pd
import pytest

from labkit.errors import ParameterError
from labkit.scaling import PROFILES, design
from labkit.scaling import fit as F

M = 1 << 20


class _Tokenizer:  # what labkit.lm.train.llama_config reads of a tokenizer
    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __len__(self) -> int:
        return 300


@pytest.mark.parametrize("shape", [(8, 1, 2, None), (96, 2, 4, None), (32, 3, 4, 48)])
def test_parameter_count_matches_a_real_model(shape):
    from transformers import LlamaForCausalLM

    from labkit.lm import TinyLMConfig
    from labkit.lm.evaluate import count_parameters
    from labkit.lm.train import llama_config

    hidden, layers, heads, ffn = shape
    config = TinyLMConfig(hidden_size=hidden, num_layers=layers, num_heads=heads, intermediate_size=ffn, vocab_size=300)
    model = LlamaForCausalLM(llama_config(config, _Tokenizer()))  # random weights: counted, not used
    non_embedding, total = count_parameters(model)
    assert design.non_embedding_params(hidden, layers, ffn) == non_embedding
    pts = design.design_points(
        [{"hidden_size": hidden, "num_layers": layers, "intermediate_size": ffn, "budgets": [M]}], 300
    )
    assert pts["N_total"].iloc[0] == total


def test_candidates_and_their_tokens():
    sizes = PROFILES["default"]["sweep_sizes"]
    # the default sweep as the record describes it: 14.4M training tokens for 21.8M of budgets
    assert sum(design.training_tokens(sizes)) == pytest.approx(13.75 * M)
    cands = design.candidate_designs(sizes)
    assert list(cands) == ["this sweep", "budgets to 4x", "+ 2 larger sizes", "+ larger, budgets to 4x"]
    assert max(cands["budgets to 4x"][0]["budgets"]) == 16 * M
    assert len(cands["+ 2 larger sizes"]) == len(sizes) + 2
    # a sweep that already has the larger sizes gets no "+ larger" candidates
    assert list(design.candidate_designs(PROFILES["paper"]["sweep_sizes"])) == ["this sweep", "budgets to 4x"]
    shared = design.with_budgets([{"hidden_size": 8, "num_layers": 1}], [M, 2 * M])
    assert shared[0]["budgets"] == [M, 2 * M]
    with pytest.raises(ParameterError, match="design size 0: no budgets"):
        design.design_points(design.with_budgets([{"hidden_size": 8, "num_layers": 1}], None), 300)


def test_seconds_per_token_recovers_a_line_and_vocab_from_counts():
    runs = pd.DataFrame({"N": [1e3, 1e4, 1e5], "N_total": [9e3, 4e4, 2e5], "hidden_size": [8, 30, 100]})
    runs["D"] = 1e6
    runs["wall_s"] = runs["D"] * (2e-5 + 3e-10 * runs["N_total"])
    runs["branched_from_step"] = 0
    a, b = design.seconds_per_token(runs)
    assert a == pytest.approx(2e-5) and b == pytest.approx(3e-10)
    assert design.vocab_of(runs) == 1000


def _law_and_samples(theta, N, D):
    points = pd.DataFrame({"N": N, "D": D, "loss": np.exp(F.chinchilla_log_pred(theta, np.log(N), np.log(D)))})
    law = F.fit(points, starts=np.atleast_2d(theta))
    rng = np.random.default_rng(0)
    samples = pd.DataFrame(
        [{**law.params, "E": law.params["E"] * f, "converged": True} for f in rng.uniform(0.9, 1.1, 50)]
    )
    return law, samples


def test_a_design_that_carries_the_law_identifies_it_and_a_flat_one_does_not():
    # Hoffmann's law on a wide grid (the data carry all five terms) with little noise
    theta = np.array([np.log(406.4), np.log(410.7), np.log(1.69), 0.34, 0.28])
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, 5), np.geomspace(1e9, 1e12, 5)))
    law, samples = _law_and_samples(theta, N, D)
    law.residuals = np.full(len(N), 0.002)  # the noise the simulation draws: rmse_log 0.002
    wide = [
        {"hidden_size": h, "num_layers": 4, "budgets": [int(x) for x in np.geomspace(1e9, 1e12, 5)]}
        for h in (512, 1024, 2048, 4096, 8192)
    ]
    runs = pd.DataFrame({"N": [1.0], "N_total": [2.0], "D": [1.0], "wall_s": [1.0], "hidden_size": [1]})
    table = design.design_table(law, samples, runs, wide, vocab_size=1000, corpus_tokens=10**13, n_sims=30)
    fit_row = table[(table["design"] == "this sweep") & table["law"].str.startswith("fit")].iloc[0]
    assert fit_row["identified"] == "5/5", fit_row.to_dict()
    assert fit_row["E_factor"] < 1.2
    # one size only: the size term A/N^alpha is a constant, so alpha has no data
    flat = [{"hidden_size": 512, "num_layers": 4, "budgets": [int(x) for x in np.geomspace(1e9, 1e12, 8)]}]
    table = design.design_table(law, samples, runs, flat, vocab_size=1000, corpus_tokens=10**13, n_sims=30)
    row = table[(table["design"] == "this sweep") & table["law"].str.startswith("fit")].iloc[0]
    assert row["identified"] != "5/5" and "alpha" in row["not_identified"], row.to_dict()
    verdict = design.design_verdict(table, identified_by_bootstrap=1, measured_min=2.0)
    assert "bootstrap identified 1 of 5" in verdict and "measured 2.0" in verdict
    assert len(design.design_results(table)) == len(table["design"].unique())


def test_design_table_refuses_what_it_cannot_simulate():
    theta = np.array([np.log(406.4), np.log(410.7), np.log(1.69), 0.34, 0.28])
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, 3), np.geomspace(1e9, 1e12, 3)))
    law, samples = _law_and_samples(theta, N, D)
    with pytest.raises(ParameterError, match="at least 20"):
        design.design_table(law, samples, pd.DataFrame(), [], vocab_size=1, corpus_tokens=1, n_sims=5)


def test_an_unbounded_range_is_null_in_the_record():
    table = pd.DataFrame(
        {
            "design": ["a", "a", "b"],
            "law": ["fit (E = 1)", "E low", "fit (E = 1)"],
            "identified": ["4/5", "3/5", "5/5"],
            "E_factor": [1.5, float("inf"), 1.2],
            "est_cpu_min": [1.0, 1.0, 30.0],
            "largest_N": [10, 10, 100],
            "max_epochs": [1.0, 1.0, 2.0],
        }
    )
    results = design.design_results(table)
    assert results["a"] == {"identified_min": 3, "E_factor_max": None, "est_cpu_min": 1.0}
    assert "'b'" in design.design_verdict(table) and "about 30 CPU min" in design.design_verdict(table)
