"""The two calls that open and close every study notebook.

``begin`` resolves the profile and overrides (after papermill's injection), seeds everything
and starts the run record; ``end`` writes the record and checks that every figure and table
the notebook promised exists and is readable, so a notebook test fails when an output is
missing or empty rather than when a printed number drifts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from labkit import config, params, records
from labkit import device as device_rule
from labkit.errors import LabkitError
from labkit.paths import study_dir
from labkit.png import browser_path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def begin(
    study: str,
    profiles: Mapping[str, Mapping[str, Any]],
    profile: str | None = None,
    seed: int = 0,
    *,
    device: str | None = None,
    mixed_precision: Any = None,
    **overrides: Any,
) -> tuple[dict[str, Any], records.RunRecord]:
    """Resolve parameters, seed python/numpy/torch, start ``figures/<study>/run_record.json``.

    ``device`` (``None``/``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``) and
    ``mixed_precision`` (``None`` = on where supported) are the notebook's device parameters,
    not profile keys: they are checked first and then apply to every labkit call in this kernel
    (:func:`labkit.device.use`); ``cfg["device"]`` and ``cfg["dtype"]`` say what was chosen, and
    the run record's ``device`` entry names it.
    """
    placement = device_rule.use(device, mixed_precision)
    cfg = config.resolve(profiles, profile, **overrides)
    seed = params.validate(params.SEED, seed)
    cfg["seed"] = seed
    cfg["device"], cfg["dtype"] = placement["device"], placement["dtype"]
    seeds = config.set_seed(seed)
    record = records.start(study, cfg, seeds, device=placement)
    return cfg, record


def check_outputs(
    study: str,
    figures: Iterable[str] = (),
    tables: Iterable[str] = (),
    require_png: bool | None = None,
) -> list[Path]:
    """Raise :class:`LabkitError` unless each named figure / table exists and is non-empty.

    PNGs are required when a Chromium is available (``require_png=None``), else only HTML.
    """

    folder = study_dir(study)
    need_png = (browser_path() is not None) if require_png is None else require_png
    problems, found = [], []
    for name in figures:
        paths = [folder / f"{name}.html"] + ([folder / f"{name}.png"] if need_png else [])
        for path in paths:
            if not path.is_file() or path.stat().st_size == 0:
                problems.append(f"missing or empty figure file {path}")
            elif path.suffix == ".png" and path.read_bytes()[:8] != PNG_MAGIC:
                problems.append(f"{path} is not a PNG")
            else:
                found.append(path)
    for name in tables:
        for suffix in (".csv", ".md"):
            path = folder / f"{name}{suffix}"
            if not path.is_file() or len(path.read_text(encoding="utf-8").splitlines()) < 2:
                problems.append(f"missing or empty table file {path}")
            else:
                found.append(path)
    if problems:
        raise LabkitError(f"study {study!r} did not write all its outputs: " + "; ".join(problems))
    return found


def end(record: records.RunRecord, figures: Iterable[str] = (), tables: Iterable[str] = ()) -> Path:
    """Finish the run record (with the datasets this kernel read), then check that every
    output the notebook wrote (registered on ``record`` by ``save_figure`` / ``save_table``)
    exists and is readable; ``figures`` / ``tables`` name more outputs that must exist.

    A study notebook that wrote nothing is an error: its record would promise results that
    no file holds.
    """
    from labkit.data import USED  # pandas and the parsers: every notebook has them by now

    record.note_data(USED)
    path = record.finish()
    written = {kind: [o["name"] for o in record.outputs if o["kind"] == kind] for kind in ("figure", "table")}
    figures = list(dict.fromkeys([*written["figure"], *figures]))
    tables = list(dict.fromkeys([*written["table"], *tables]))
    if not figures and not tables:
        raise LabkitError(
            f"study {record.study!r} wrote no figure or table (save them with "
            "labkit.figures.save_figure / save_table and the notebook's record)"
        )
    check_outputs(record.study, figures, tables)
    return path
