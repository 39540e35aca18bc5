"""Drive a real JupyterLab in Debian's headless chromium (Playwright, no browser download).

Used by the browser tests: start ``jupyter lab`` on a free loopback port with a one-off token,
open a notebook, run all its cells, find widgets and plotly figures in the page.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("BROWSER_PATH"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def jupyter_lab(root: Path, env: dict[str, str], timeout: float = 90) -> Iterator[str]:
    """Start JupyterLab serving ``root``; yield its base URL (token in the query string)."""
    port, token = free_port(), secrets.token_hex(16)
    log = open(root / ".jupyter-test.log", "w") if os.access(root, os.W_OK) else subprocess.DEVNULL
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--allow-root",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError as err:
                if proc.poll() is not None:
                    raise RuntimeError("jupyter lab exited early; see .jupyter-test.log") from err
                time.sleep(0.5)
        else:
            raise RuntimeError(f"jupyter lab did not answer on {base} within {timeout} s")
        yield f"{base}|{token}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def open_and_run(page, server: str, notebook: str, timeout_ms: int = 180_000) -> None:
    """Open ``notebook`` (path relative to the server root) and run all cells until idle."""
    base, token = server.split("|")
    page.goto(f"{base}/lab/tree/{notebook}?token={token}&reset", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    try:  # "Select Kernel" appears when the notebook names no kernel this server knows
        page.click(".jp-Dialog .jp-mod-accept", timeout=5_000)
    except Exception:
        pass
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    page.click(".lm-MenuBar-item:has-text('Run')", timeout=10_000)
    page.click(".lm-Menu-item[data-command='runmenu:run-all']", timeout=10_000)
    page.wait_for_timeout(1_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout_ms)
