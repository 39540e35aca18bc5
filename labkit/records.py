"""One run record (JSON) per executed notebook: enough to know how every number was made.

``figures/<study>/run_record.json`` holds the parameters (secrets removed), labkit version and
git commit, package versions, seeds, the sha256 of every dataset file read, hardware, the device
and dtype the numbers were measured on, energy, wall time, warnings, and every figure / table
written with its caption. Tables and figures are data; the record is how a reader (or the
gallery, or a test) finds and trusts them. Records are portable: no absolute machine path in
them (datasets are named by where they came from and their files relative to that root;
paths in parameters become ``<home>/…``, ``<tmp>/…`` or ``<project>/…``).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from labkit import __version__, io
from labkit.device import describe
from labkit.errors import DataError, ParameterError
from labkit.paths import cache_dir, figures_dir, project_root, study_dir

RECORD_VERSION = 1
RECORD_NAME = "run_record.json"
PACKAGES = (
    "labkit",
    "torch",
    "transformers",
    "sentence-transformers",
    "tokenizers",
    "datasets",
    "codecarbon",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "plotly",
    "kaleido",
    "papermill",
    "rouge-score",
    "accelerate",
)
# whole name parts, so "api_key"/"hf_token" are secrets but "tokenizer"/"monkey" are not
_SECRET_NAME = re.compile(
    r"(?:^|[_\-.])(?:api_?key|key|token|secret|password|passwd|credentials?|"
    r"auth)(?:$|[_\-.])",
    re.I,
)
_SECRET_VALUE = re.compile(r"^(sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|hf_[A-Za-z0-9]{20,})$")
REDACTED = "<redacted>"
#: how :class:`labkit.data.Resolved` origins read in a record (where the files came from)
DATA_SOURCES = {
    "mirror": "mirror",
    "cache": "cache",
    "download": "download",
    "hf": "download",
    "path": "user path",
}


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


def path_placeholders() -> list[tuple[str, str]]:
    """(absolute folder, placeholder), most specific first: data mirrors, the cache, the
    checkout, the temp dir, home."""

    roots = [
        (str(Path(m).resolve()), "<mirror>")
        for m in os.environ.get("LABKIT_DATA_MIRROR", "").split(os.pathsep)
        if m.strip()
    ]
    roots.append((str(cache_dir().resolve()), "<cache>"))
    project = project_root(Path(__file__).parent)
    if project is not None:
        roots.append((str(project), "<project>"))
    roots.append((str(Path(tempfile.gettempdir()).resolve()), "<tmp>"))
    roots.append((tempfile.gettempdir(), "<tmp>"))
    roots.append((str(Path.home()), "<home>"))
    # a root that is "/" (or empty) would rewrite every absolute path: skip it
    return [(r.rstrip("/"), name) for r, name in roots if len(r.rstrip("/")) > 1]


def portable(value: Any, roots: list[tuple[str, str]] | None = None) -> Any:
    """Rewrite absolute paths under the data mirrors, the cache, the checkout, the temp dir or
    ``$HOME`` as placeholders (:func:`path_placeholders`, computed once per call).

    Applied to every string in dicts and lists (also paths inside a string, such as
    ``"st:/home/me/model"``), so a run record says the same thing on every machine and leaks
    no user name. Other values pass unchanged.

    >>> from labkit.paths import project_root
    >>> portable({"pairs": str(project_root() / "data" / "mine.csv"), "n": 3})
    {'pairs': '<project>/data/mine.csv', 'n': 3}
    >>> portable([os.path.join(tempfile.gettempdir(), "run", "x.csv"), "cpu"])
    ['<tmp>/run/x.csv', 'cpu']
    >>> portable(str(Path.home() / "models" / "m")) == "<home>/models/m"
    True
    """
    roots = path_placeholders() if roots is None else roots
    if isinstance(value, dict):
        return {k: portable(v, roots) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v, roots) for v in value]
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str) and "/" in value:
        for root, name in roots:
            # the root itself, or root/…, not a longer name that starts with it (/rootfs)
            value = re.sub(re.escape(root) + r"(?=/|$|[\s\"',;:)\]])", name, value)
    return value


def data_entry(resolved) -> dict[str, Any]:
    """A dataset in the record: where it came from, its files (relative names) and hashes."""
    files = sorted(resolved.sha256)
    return {
        "origin": resolved.origin,
        "source": DATA_SOURCES.get(resolved.origin, resolved.origin),
        "files": portable(files),
        "sha256": resolved.sha256,
        "verified_against_registry": resolved.verified,
    }


def device_line(record: dict[str, Any]) -> str:
    """One line naming where a record's numbers were measured, for the runner's summary.

    >>> device_line({"device": {"device": "cpu", "name": "CPU", "dtype": "float32",
    ...                         "mixed_precision": False}})
    'cpu (CPU, float32)'
    >>> device_line({"device": {"device": "cuda", "name": "NVIDIA H100", "dtype": "bfloat16",
    ...                         "mixed_precision": True}})
    'cuda (NVIDIA H100, bfloat16, mixed precision)'
    >>> device_line({})
    'not recorded'
    """
    device = record.get("device") or {}
    if not device:
        return "not recorded"
    extra = ", mixed precision" if device.get("mixed_precision") else ""
    return f"{device.get('device')} ({device.get('name')}, {device.get('dtype')}{extra})"


def current_device() -> dict[str, Any] | None:
    """The device rule's answer now (for records not started by ``notebook.begin``)."""

    try:
        return describe()
    except ParameterError:  # a bad $LABKIT_DEVICE: begin() reports it; a record must not fail
        return None


def git_commit() -> dict[str, Any]:
    """``{"commit": sha, "dirty": bool}`` of the checkout, or ``$LABKIT_GIT_COMMIT``.

    ``figures/`` is left out of "dirty": every run rewrites the tracked gallery README there, so
    counting it would mark every study after the first as run from a modified tree."""
    if os.environ.get("LABKIT_GIT_COMMIT"):
        return {"commit": os.environ["LABKIT_GIT_COMMIT"], "dirty": None}
    root = project_root(Path(__file__).parent)
    if root is None:
        return {"commit": None, "dirty": None}
    try:
        sha = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!figures"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
        )
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
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_model": None,
        "ram_gb": None,
        "gpu": None,
    }
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

    def __init__(
        self,
        study: str,
        params: dict[str, Any],
        seeds: dict[str, int] | None = None,
        device: dict[str, Any] | None = None,
    ):
        self.study = study
        self.params = portable(redact(dict(params)))
        self.device = dict(device) if device else current_device()
        self.seeds = dict(seeds or {})
        self.started = dt.datetime.now(dt.timezone.utc)
        self._t0 = time.perf_counter()
        self.outputs: list[dict[str, Any]] = []
        self.energy: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.results: dict[str, Any] = {}
        self.data: dict[str, Any] = {}

    def note_data(self, used: dict[str, Any]) -> None:
        """The datasets the run read (key -> :class:`labkit.data.Resolved`), with their hashes:
        handed in by :func:`labkit.notebook.end`, so this module needs no data registry."""
        self.data = {key: data_entry(resolved) for key, resolved in used.items()}

    def note_output(self, kind: str, name: str, caption: str, paths: dict[str, Path]) -> None:
        folder = study_dir(self.study)
        files = {fmt: os.path.relpath(p, folder) for fmt, p in paths.items()}
        self.outputs = [o for o in self.outputs if o["name"] != name or o["kind"] != kind]
        self.outputs.append({"kind": kind, "name": name, "caption": caption, "files": files})

    def add_energy(self, label: str, summary: dict[str, Any]) -> None:
        """Energy of one part of the run (e.g. ``CarbonSession.total()``)."""
        self.energy[label] = summary

    def warn(self, message: str) -> None:
        """A warning a reader must see (e.g. truncated inputs); also printed. The same message
        twice (one system under several instructions) is kept once."""
        message = portable(message)  # printed into the notebook's outputs too: no machine paths
        if message in self.warnings:
            return
        self.warnings.append(message)
        print(f"WARNING: {message}")

    def to_dict(self) -> dict[str, Any]:

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
            "data": self.data,
            "packages": package_versions(),
            "device": self.device,
            "hardware": hardware(),
            "energy": self.energy,
            "results": portable(redact(self.results)),
            "warnings": portable(self.warnings),
            "outputs": self.outputs,
        }

    def finish(self) -> Path:
        return io.write_json(study_dir(self.study) / RECORD_NAME, self.to_dict())


def start(
    study: str,
    params: dict[str, Any],
    seeds: dict[str, int] | None = None,
    device: dict[str, Any] | None = None,
) -> RunRecord:
    """Begin the record of ``study`` (the notebook's first labkit call); ``device`` is
    :func:`labkit.device.describe` of the notebook's choice (default: the device rule now)."""
    return RunRecord(study, params, seeds, device)


def read(study: str, root: Path | None = None) -> dict[str, Any]:
    """Load a study's run record (for tests, the gallery and exploration notebooks)."""
    import json

    path = (root or figures_dir()) / study / RECORD_NAME
    if not path.is_file():
        raise DataError(f"{path}: no run record; run `labkit run {study}` first")
    return json.loads(path.read_text(encoding="utf-8"))
