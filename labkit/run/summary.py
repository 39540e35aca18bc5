"""What happened in a ``labkit run``: one :class:`NotebookResult` per notebook, the summary
table printed for the user and the exit code.

Kept apart from :mod:`labkit.run.runner` so the runner holds only how notebooks are
scheduled, and :mod:`labkit.run.execute` only how one is executed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FAILED_STATUSES = ("failed",)
#: every status a notebook can end in; "cached": its previous outputs stand (labkit.run.cache)
STATUSES = ("ok", "cached", "partial", "failed")


@dataclass
class NotebookResult:
    """What happened to one notebook (one row of the summary table)."""

    notebook: str
    study: str
    status: str  # one of STATUSES
    wall_s: float
    outputs: int = 0
    output_notebook: str = ""
    failed_cell: int | None = None
    error: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    device: str = ""
    warnings: list[str] = field(default_factory=list)
    note: str = ""  # why a run was cached / re-run, shown beside the status


def exit_code(results: list[NotebookResult]) -> int:
    """0: every notebook ok (or cached); 3: some partial (a provider/system failed, the study
    completed), none failed; 1: some failed."""
    if any(r.status in FAILED_STATUSES for r in results):
        return 1
    return 3 if any(r.status == "partial" for r in results) else 0


def summary_table(results: list[NotebookResult]) -> str:
    """The end-of-run table: notebook, status, device, wall time, outputs; then each failure."""
    from tabulate import tabulate

    seeded = any(r.seed is not None for r in results)
    rows = [
        (
            r.notebook,
            *((("" if r.seed is None else r.seed),) if seeded else ()),
            r.status,
            r.device or "—",
            f"{r.wall_s:.1f}",
            r.outputs,
            r.output_notebook or "—",
        )
        for r in results
    ]
    headers = [
        "notebook",
        *(["seed"] if seeded else []),
        "status",
        "device",
        "wall s",
        "outputs",
        "executed notebook",
    ]
    text = tabulate(rows, headers=headers)
    for r in results:
        label = r.notebook + (f" (seed {r.seed})" if r.seed is not None else "")
        if r.status in FAILED_STATUSES:
            where = f" at cell In [{r.failed_cell}] of the executed notebook" if r.failed_cell is not None else ""
            text += f"\n\nFAILED {label}{where}:\n  {r.error.strip()}"
        elif r.status == "partial":
            failed = [w for w in r.warnings if w.startswith("failed:")]
            text += f"\n\nPARTIAL {label}: the study completed, but\n  " + "\n  ".join(failed)
    cached = [r for r in results if r.status == "cached"]
    if cached:
        text += (
            f"\n\n{len(cached)} cached: inputs unchanged and outputs complete, so the "
            "previous outputs stand (labkit run --force re-runs them)"
        )
    return text
