"""Sizes of study 4 per profile (sizes only; the code path is the same in every profile).

``fit_starts`` 0 means the published 4,500-point initialisation grid; a number n means
Hoffmann's constants plus n random grid points (the smoke profile). The sweep trains one tiny
decoder per (size, budget) with :mod:`labkit.lm`; a law with 5 parameters needs at least 6 runs.
"""
from __future__ import annotations

_SIZES_SMALL = [{"hidden_size": 32, "num_layers": 1, "num_heads": 2},
                {"hidden_size": 64, "num_layers": 2, "num_heads": 2}]
_SIZES = [{"hidden_size": 32, "num_layers": 1, "num_heads": 2},
          {"hidden_size": 48, "num_layers": 2, "num_heads": 2},
          {"hidden_size": 64, "num_layers": 2, "num_heads": 2},
          {"hidden_size": 96, "num_layers": 3, "num_heads": 4},
          {"hidden_size": 128, "num_layers": 4, "num_heads": 4}]

PROFILES: dict[str, dict] = {
    "smoke": {
        "drop_highest": 5, "fit_starts": 40, "points_csv": None, "country": "USA", "bootstrap": 60, "n_jobs": 2,
        "sweep_sizes": _SIZES_SMALL, "sweep_budgets": [30_000, 60_000, 120_000],
        "sweep_base": {"vocab_size": 512, "context_length": 128, "batch_size": 16,
                       "learning_rate": 3e-3, "corpus": ["tinyshakespeare"]},
        "sweep_bootstrap": 60, "ngram_orders": [1, 2, 4, 8], "ngram_points": 10,
    },
    "default": {
        "drop_highest": 5, "fit_starts": 0, "points_csv": None, "country": "USA", "bootstrap": 1000, "n_jobs": 2,
        "sweep_sizes": _SIZES, "sweep_budgets": [62_500, 125_000, 250_000, 500_000, 1_000_000],
        "sweep_base": {"vocab_size": 1024, "context_length": 128, "batch_size": 16,
                       "learning_rate": 3e-3, "corpus": ["tinyshakespeare", "qmsum"]},
        "sweep_bootstrap": 1000, "ngram_orders": [1, 2, 4, 8, 16], "ngram_points": 14,
    },
    "paper": {
        "drop_highest": 5, "fit_starts": 0, "points_csv": None, "country": "USA", "bootstrap": 4000, "n_jobs": 8,
        "sweep_sizes": _SIZES + [{"hidden_size": 192, "num_layers": 6, "num_heads": 6},
                                 {"hidden_size": 256, "num_layers": 8, "num_heads": 8}],
        "sweep_budgets": [250_000, 500_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000],
        "sweep_base": {"vocab_size": 4096, "context_length": 256, "batch_size": 16,
                       "learning_rate": 3e-3, "corpus": ["tinyshakespeare", "qmsum"]},
        "sweep_bootstrap": 4000, "ngram_orders": [1, 2, 4, 8, 16], "ngram_points": 16,
    },
}
