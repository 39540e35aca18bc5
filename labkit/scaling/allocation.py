"""Compute-optimal allocation under a fitted Chinchilla-form law (Hoffmann et al. 2022, eq. 4).

Kept apart from :mod:`labkit.scaling.fit` (which re-exports it) so that module stays about
fitting; the formula needs only the five human parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from labkit.errors import ParameterError


def compute_optimal(params: dict[str, float], compute: Any) -> pd.DataFrame:
    """Loss-minimising N and D at fixed compute C = 6 N D under E + A/N^alpha + B/D^beta.

    N_opt = G (C/6)^(beta/(alpha+beta)), D_opt = G^-1 (C/6)^(alpha/(alpha+beta)),
    G = (alpha A / (beta B))^(1/(alpha+beta)) (Hoffmann et al. 2022, eq. 4).

    Returns:
        Columns ``C, N_opt, D_opt, tokens_per_param, loss``.
    """
    A, B, E = params["A"], params["B"], params["E"]
    alpha, beta = params["alpha"], params["beta"]
    if min(A, B, alpha, beta) <= 0:
        raise ParameterError(f"compute_optimal needs positive A, B, alpha, beta; got {params}")
    C = np.atleast_1d(np.asarray(compute, dtype=float))
    if np.any(~np.isfinite(C) | (C <= 0)):
        raise ParameterError(f"compute={compute!r} must be positive FLOP counts")
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    N = G * (C / 6.0) ** (beta / (alpha + beta))
    D = (C / 6.0) ** (alpha / (alpha + beta)) / G
    return pd.DataFrame(
        {"C": C, "N_opt": N, "D_opt": D, "tokens_per_param": D / N, "loss": E + A / N**alpha + B / D**beta}
    )
