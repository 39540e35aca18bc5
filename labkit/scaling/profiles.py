"""Sizes of study 4 per profile (sizes only; the code path is the same in every profile).

``fit_starts`` 0 means the published 4,500-point initialisation grid; a number n means
Hoffmann's constants plus n random grid points (the smoke profile); ``sweep_fit_starts`` is
the same for the fits of our own sweep. The sweep trains one tiny
decoder per (size, budget) with :mod:`labkit.lm`; a law with 5 parameters needs at least 6 runs.
"""

from __future__ import annotations

from pathlib import Path

from labkit import params
from labkit.params import Param

_SIZES_SMALL = [
    {"hidden_size": 32, "num_layers": 1, "num_heads": 2},
    {"hidden_size": 64, "num_layers": 2, "num_heads": 2},
]
_M = 1 << 20  # budgets are multiples of the 2,048 tokens of one step (16 x 128)
#: the default sweep (issue 23): small models get the long budgets, large ones the short, so
#: tokens per parameter run from about 2 (N = 295k) to 4,000 (N = 1k) and every term of the law
#: matters somewhere; the longest budget is 1.1 epochs of the 3.7M-token training stream
#: (vocab 1,024, Tiny Shakespeare + QMSum train). 15 runs, 21.8M tokens of budgets; trained as
#: one WSD chain per size (``schedule: wsd``), they cost 14.4M tokens of training (issue 23).
_SIZES = [
    {"hidden_size": 8, "num_layers": 1, "num_heads": 2, "budgets": [_M // 2, 2 * _M, 4 * _M]},
    {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "budgets": [_M // 2, _M, 2 * _M, 4 * _M]},
    {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "budgets": [_M // 2, _M, 2 * _M]},
    {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "budgets": [_M // 4, _M // 2, _M]},
    {"hidden_size": 96, "num_layers": 2, "num_heads": 4, "budgets": [_M // 2, _M]},
]
_SIZES_PAPER = _SIZES + [
    {"hidden_size": 128, "num_layers": 4, "num_heads": 4, "budgets": [_M // 2, _M, 2 * _M]},
    {"hidden_size": 192, "num_layers": 6, "num_heads": 6, "budgets": [_M, 2 * _M, 4 * _M]},
]

PROFILES: dict[str, dict] = {
    "smoke": {
        "drop_highest": 5,
        "fit_starts": 40,
        "points_csv": None,
        "country": "USA",
        "bootstrap": 60,
        "n_jobs": 2,
        "sweep_sizes": _SIZES_SMALL,
        "sweep_budgets": [30_000, 60_000, 120_000],
        "sweep_base": {
            "vocab_size": 512,
            "context_length": 128,
            "batch_size": 16,
            "learning_rate": 3e-3,
            "corpus": ["tinyshakespeare"],
            "schedule": "wsd",
        },
        "sweep_bootstrap": 60,
        "sweep_fit_starts": 40,
        "sweep_design_sims": 20,
        "ngram_orders": [1, 2, 4, 8],
        "ngram_points": 10,
    },
    "default": {
        "drop_highest": 5,
        # Hoffmann's constants + 200 grid starts: on Chinchilla's 240 points the same optimum as
        # the published 4,500-start grid (Huber objective 0.0010182740178006 both, parameters
        # equal to 8 digits) in 3.7 s instead of 75 s on one core (issue 25); the paper
        # profile keeps the whole grid
        "fit_starts": 200,
        "points_csv": None,
        "country": "USA",
        "bootstrap": 1000,
        "n_jobs": 2,
        "sweep_sizes": _SIZES,
        "sweep_budgets": None,
        "sweep_base": {
            "vocab_size": 1024,
            "context_length": 128,
            "batch_size": 16,
            "learning_rate": 3e-3,
            "corpus": ["tinyshakespeare", "qmsum"],
            "heldout_tokens": None,
            "schedule": "wsd",
        },
        # 15 runs: the fit from Hoffmann's constants + 200 grid starts lands on the optimum the
        # whole 4,500-start grid finds (same objective to 1e-15) in 4 s instead of 205 s, and
        # 500 resamples of 15 runs take 2 minutes a form instead of 4.5 (issue 25)
        "sweep_bootstrap": 500,
        "sweep_fit_starts": 200,
        # simulated fits per (candidate design, plausible law) of labkit.scaling.design: 12
        # cells x 100 fits take about 35 s on 2 cores
        "sweep_design_sims": 100,
        "ngram_orders": [1, 2, 4, 8, 16],
        "ngram_points": 14,
    },
    "paper": {
        "drop_highest": 5,
        "fit_starts": 0,
        "points_csv": None,
        "country": "USA",
        "bootstrap": 4000,
        "n_jobs": 8,
        "sweep_sizes": _SIZES_PAPER,
        "sweep_budgets": None,
        "sweep_base": {
            "vocab_size": 1024,
            "context_length": 128,
            "batch_size": 16,
            "learning_rate": 3e-3,
            "corpus": ["tinyshakespeare", "qmsum"],
            "heldout_tokens": None,
            "schedule": "wsd",
        },
        "sweep_bootstrap": 4000,
        "sweep_fit_starts": 0,
        "sweep_design_sims": 400,
        "ngram_orders": [1, 2, 4, 8, 16],
        "ngram_points": 16,
    },
}


def _heads_divide(size: dict) -> str | None:
    hidden, heads = size.get("hidden_size"), size.get("num_heads")
    if isinstance(hidden, int) and isinstance(heads, int) and heads and hidden % heads:
        return f"must have hidden_size divisible by num_heads ({hidden} % {heads} != 0)"
    return None


_POS = {"min": 1}
#: the fields of :class:`labkit.lm.train.TinyLMConfig` a user may set in ``sweep_base``
#: (sizes and budgets come from ``sweep_sizes`` / ``sweep_budgets``); a test keeps them in step
TINY_LM_FIELDS = {
    "vocab_size": Param("vocab_size", int, **_POS),
    "hidden_size": Param("hidden_size", int, **_POS),
    "num_layers": Param("num_layers", int, **_POS),
    "num_heads": Param("num_heads", int, **_POS),
    "intermediate_size": Param("intermediate_size", int, none_means="4 x hidden_size", **_POS),
    "context_length": Param("context_length", int, min=2),
    "train_tokens": Param("train_tokens", int, **_POS),
    "batch_size": Param("batch_size", int, **_POS),
    "learning_rate": Param("learning_rate", float, min=0, exclusive_min=True),
    "warmup_ratio": Param("warmup_ratio", float, min=0, max=1),
    "corpus": Param("corpus", list[str], min_items=1),
    "heldout_fraction": Param("heldout_fraction", float, min=0, max=0.5, exclusive_min=True),
    "seed": Param("seed", int, min=0),
    "heldout_tokens": Param("heldout_tokens", int, none_means="every held-out token", **_POS),
    "schedule": Param("schedule", str, choices=["cosine", "wsd"]),
    "cooldown_fraction": Param("cooldown_fraction", float, min=0, max=1, exclusive_min=True),
    "warmup_steps": Param("warmup_steps", int, none_means="warmup_ratio x the shortest budget's steps", **_POS),
}

SCHEMA = params.declare(
    "scaling_laws",
    PROFILES,
    [
        Param(
            "points_csv",
            Path,
            parse="labkit.scaling.points:load_points",  # read and validated before any kernel starts
            none_means="Chinchilla's 245 points (Epoch AI's extraction)",
            help="your own runs: a CSV with columns N, D, loss",
        ),
        Param(
            "drop_highest",
            int,
            min=0,
            none_means="profile",
            help="drop this many highest-loss points before fitting (Epoch: 5)",
        ),
        Param(
            "fit_starts",
            int,
            min=0,
            none_means="profile",
            help="0: the published 4,500-start grid; n: Hoffmann's constants + n grid points",
        ),
        Param("bootstrap", int, min=1, none_means="profile", help="bootstrap resamples of the fit"),
        Param("n_jobs", int, min=1, none_means="profile", help="processes for the fit and bootstrap"),
        Param(
            "sweep_sizes",
            list[dict],
            min_items=1,
            none_means="profile",
            fields={
                **{k: TINY_LM_FIELDS[k] for k in ("hidden_size", "num_layers", "num_heads", "intermediate_size")},
                "budgets": Param("budgets", list[int], min=1, min_items=1, none_means="sweep_budgets"),
            },
            check=_heads_divide,
            help="model sizes of our own sweep: {hidden_size, num_layers, "
            "num_heads} and optionally that size's own token budgets {budgets: [D, ...]}",
        ),
        Param(
            "sweep_budgets",
            list[int],
            min=1,
            min_items=1,
            none_means="each size's own budgets",
            help="token budgets D of the sweep (for sizes without their own budgets)",
        ),
        Param(
            "sweep_base",
            dict,
            fields=TINY_LM_FIELDS,
            none_means="profile",
            help="other TinyLMConfig fields of the sweep (vocab_size, context_length, corpus, ...)",
        ),
        params.COUNTRY,
    ],
)
