"""The end of a ``labkit run``: its exit code and the summary table printed for the user.

Kept apart from :mod:`labkit.runner` (which re-exports both) so the runner holds only how
notebooks are scheduled; these read :class:`labkit.runner.NotebookResult` rows.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labkit.runner import NotebookResult

FAILED_STATUSES = ("failed",)


def exit_code(results: list[NotebookResult]) -> int:
    """0: every notebook ok; 3: some partial (a provider/system failed, the study completed),
    none failed; 1: some failed."""
    if any(r.status in FAILED_STATUSES for r in results):
        return 1
    return 3 if any(r.status == "partial" for r in results) else 0


def summary_table(results: list[NotebookResult]) -> str:
    """The end-of-run table: notebook, status, device, wall time, outputs; then each failure."""
    from tabulate import tabulate

    seeded = any(r.seed is not None for r in results)
    rows = [(r.notebook, *((("" if r.seed is None else r.seed),) if seeded else ()), r.status,
             r.device or "—", f"{r.wall_s:.1f}", r.outputs, r.output_notebook) for r in results]
    headers = ["notebook", *(["seed"] if seeded else []), "status", "device", "wall s",
               "outputs", "executed notebook"]
    text = tabulate(rows, headers=headers)
    for r in results:
        label = r.notebook + (f" (seed {r.seed})" if r.seed is not None else "")
        if r.status in FAILED_STATUSES:
            where = (f"cell In [{r.failed_cell}] of the executed notebook" if r.failed_cell is not None
                     else "unknown cell")
            text += f"\n\nFAILED {label} at {where}:\n  {r.error.strip()}"
        elif r.status == "partial":
            failed = [w for w in r.warnings if w.startswith("failed:")]
            text += f"\n\nPARTIAL {label}: the study completed, but\n  " + "\n  ".join(failed)
    return text
