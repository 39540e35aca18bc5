"""PNG export of plotly figures through kaleido and one Chromium per process.

Why a module of its own: the browser is a process-wide resource (started once, on the first
PNG, with mathjax off because there is no CDN offline), found on ``$BROWSER_PATH`` or PATH;
without one, figures are written as HTML only and the caller is told once.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import plotly.graph_objects as go

_PNG_STATE = {"checked": False, "ok": False}


def browser_path() -> str | None:
    """The Chromium kaleido will drive: ``$BROWSER_PATH`` or a chromium on PATH."""
    for candidate in (
        os.environ.get("BROWSER_PATH"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def png_server() -> bool:
    """Start one kaleido browser for this process (mathjax off: no CDN offline)."""
    if not _PNG_STATE["checked"]:
        _PNG_STATE["checked"] = True
        path = browser_path()
        if path is None:
            warnings.warn(
                "no Chromium found (install Debian's `chromium` or set BROWSER_PATH): "
                "figures are written as HTML only, without PNG",
                stacklevel=3,
            )
            return False
        os.environ["BROWSER_PATH"] = path
        import kaleido

        kaleido.start_sync_server(mathjax=False, n=1, timeout=120, silence_warnings=True)
        _PNG_STATE["ok"] = True
    return _PNG_STATE["ok"]


def render_png(fig: go.Figure, width: int = 900, height: int = 520, scale: float = 2.0) -> bytes | None:
    """PNG bytes of ``fig``, or None when no browser is available."""
    if not png_server():
        return None
    import kaleido

    return kaleido.calc_fig_sync(fig, opts={"format": "png", "width": width, "height": height, "scale": scale})
