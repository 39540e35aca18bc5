"""The names the frontier's tables share (methods' kinds, budgets, the no-far-context flag).

Why a module of its own: :mod:`labkit.anchor.frontier` (the sweep), its report
(:mod:`labkit.anchor.frontier_report`) and the recall frontier all use them, and the report must
not import the sweep that re-exports it.
"""

from __future__ import annotations

from collections.abc import Iterable

from labkit.errors import ParameterError

DEFAULT_BUDGETS: tuple[float, ...] = (0.5, 0.25, 0.10, 0.05, 0.02)
FULL, OWN = "full", "own"
#: the anchor-trained models read their own prompts through a full cache: the ceiling of the
#: cache rule alone, without what continued training changed (a guard on the headline)
TRAINED_FULL = "trained, full cache"
#: the flag of a probe whose queries a recent-window cache answers as well as the full cache
NO_FAR_CONTEXT = "this probe does not need the far context"


def budget_label(share: float) -> str:
    """``0.1`` -> ``"10%"`` (the budget column of the tables)."""
    return f"{100 * share:g}%"


def check_budgets(budgets: Iterable[float]) -> list[float]:
    try:
        out = [float(b) for b in budgets]
    except (TypeError, ValueError):
        raise ParameterError(f"budgets must be a list of kept shares in (0, 1], got {budgets!r}") from None
    bad = [b for b in out if not 0 < b <= 1]
    if bad:
        raise ParameterError(f"budgets: kept shares must be in (0, 1], got {bad}")
    return out
