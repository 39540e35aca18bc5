"""One run record (JSON) per executed notebook: enough to know how every number was made.

``figures/<study>/run_record.json`` holds the parameters (secrets removed), labkit version and
git commit, package versions, seeds, the sha256 of every dataset file read, hardware, energy,
wall time, warnings, and every figure / table written with its caption. Tables and figures are
data; the record is how a reader (or the gallery, or a test) finds and trusts them.
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from labkit import io
from labkit.paths import project_root, study_dir

RECORD_VERSION = 1
RECORD_NAME = "run_record.json"
PACKAGES = ("labkit", "torch", "transformers", "sentence-transformers", "tokenizers", "datasets",
            "codecarbon", "numpy", "pandas", "scipy", "scikit-learn", "plotly", "kaleido",
            "papermill", "rouge-score", "accelerate")
_SECRET_NAME = re.compile(r"(key|token|secret|password|passwd|credential|auth)", re.I)
_SECRET_VALUE = re.compile(r"^(sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|hf_[A-Za-z0-9]{20,})$")
REDACTED = "<redacted>"


def redact(value: Any, name: str = "") -> Any:
    """Remove secrets: values under secret-looking names, key-shaped strings, env secrets.

    >>> redact({"openai_api_key": "sk-abc", "model": "x", "n": 3})
    {'openai_api_key': '<redacted>', 'model': 'x', 'n': 3}
    """
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, name) for v in value]
    if isinstance(value, str):
        if (name and _SECRET_NAME.search(name) and value) or _SECRET_VALUE.match(value):
            return REDACTED
        for env_name, env_value in os.environ.items():
            if _SECRET_NAME.search(env_name) and len(env_value) >= 8 and env_value in value:
                return REDACTED
    return value


def git_commit() -> dict[str, Any]:
    """``{"commit": sha, "dirty": bool}`` of the checkout, or ``$LABKIT_GIT_COMMIT``."""
    if os.environ.get("LABKIT_GIT_COMMIT"):
        return {"commit": os.environ["LABKIT_GIT_COMMIT"], "dirty": None}
    root = project_root(Path(__file__).parent)
    if root is None:
        return {"commit": None, "dirty": None}
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    cwd=root, capture_output=True, text=True, timeout=10).stdout)
        return {"commit": sha, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count(), "cpu_model": None, "ram_gb": None,
                            "gpu": None}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        info["ram_gb"] = round(pages / 2**30, 1)
    except (OSError, ValueError, AttributeError):
        pass
    try:
        import torch
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover
        pass
    return info


class RunRecord:
    """Collects what a notebook did; :meth:`finish` writes it atomically beside the figures."""

    def __init__(self, study: str, params: dict[str, Any], seeds: dict[str, int] | None = None):
        self.study = study
        self.params = redact(dict(params))
        self.seeds = dict(seeds or {})
        self.started = dt.datetime.now(dt.timezone.utc)
        self._t0 = time.perf_counter()
        self.outputs: list[dict[str, Any]] = []
        self.energy: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.results: dict[str, Any] = {}

    def note_output(self, kind: str, name: str, caption: str, paths: dict[str, Path]) -> None:
        folder = study_dir(self.study)
        files = {fmt: os.path.relpath(p, folder) for fmt, p in paths.items()}
        self.outputs = [o for o in self.outputs if o["name"] != name or o["kind"] != kind]
        self.outputs.append({"kind": kind, "name": name, "caption": caption, "files": files})

    def add_energy(self, label: str, summary: dict[str, Any]) -> None:
        """Energy of one part of the run (e.g. ``CarbonSession.total()``)."""
        self.energy[label] = summary

    def warn(self, message: str) -> None:
        """A warning a reader must see (e.g. truncated inputs); also printed."""
        self.warnings.append(message)
        print(f"WARNING: {message}")

    def to_dict(self) -> dict[str, Any]:
        from labkit import __version__
        from labkit.data import USED

        return {
            "record_version": RECORD_VERSION,
            "study": self.study,
            "labkit_version": __version__,
            "git": git_commit(),
            "started_utc": self.started.isoformat(timespec="seconds"),
            "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(time.perf_counter() - self._t0, 3),
            "parameters": self.params,
            "seeds": self.seeds,
            "data": {key: {"origin": r.origin, "location": str(r.root), "sha256": r.sha256,
                           "verified_against_registry": r.verified} for key, r in USED.items()},
            "packages": package_versions(),
            "hardware": hardware(),
            "energy": self.energy,
            "results": redact(self.results),
            "warnings": self.warnings,
            "outputs": self.outputs,
        }

    def finish(self) -> Path:
        return io.write_json(study_dir(self.study) / RECORD_NAME, self.to_dict())


_CURRENT: dict[str, RunRecord] = {}


def start(study: str, params: dict[str, Any], seeds: dict[str, int] | None = None) -> RunRecord:
    """Begin the record of ``study`` (the notebook's first labkit call)."""
    record = RunRecord(study, params, seeds)
    _CURRENT[study] = record
    return record


def current(study: str) -> RunRecord | None:
    return _CURRENT.get(study)


def note_output(kind: str, study: str, name: str, caption: str, paths: dict[str, Path]) -> None:
    """Called by the figure / table writers; a no-op when no record was started."""
    record = _CURRENT.get(study)
    if record is not None:
        record.note_output(kind, name, caption, paths)


def read(study: str, root: Path | None = None) -> dict[str, Any]:
    """Load a study's run record (for tests, the gallery and exploration notebooks)."""
    import json
    from labkit.errors import DataError
    from labkit.paths import figures_dir

    path = (root or figures_dir()) / study / RECORD_NAME
    if not path.is_file():
        raise DataError(f"{path}: no run record; run `labkit run {study}` first")
    return json.loads(path.read_text(encoding="utf-8"))
