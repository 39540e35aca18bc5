"""Every exploration notebook, opened in a real JupyterLab in headless chromium.

The test starts JupyterLab on a loopback port with a one-off token, opens a copy of the
notebook, runs all cells, moves the notebook's main control (the widget with CSS class
``labkit-main-control``) and asserts that a plotly figure in the page changed. A screenshot
before and after is saved in the test's output folder.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_driver import CHROMIUM_FLAGS, chromium_path, jupyter_lab, open_and_run

ROOT = Path(__file__).resolve().parents[2]
EXPLORE = sorted((ROOT / "notebooks").glob("explore_*.ipynb"))

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(chromium_path() is None,
                                 reason="Debian's chromium is not installed (apt-get install chromium)")]


def ensure_results(notebook: Path) -> None:
    """Run the explored study on the smoke profile unless its results are already there.

    In ``make test`` the study notebooks ran earlier in the same session (browser tests are
    sorted last) and wrote into the same ``$LABKIT_FIGURES_DIR``; run alone, this fills it.
    """
    from labkit.explore import STUDIES, ResultsMissing, results_folder
    import importlib

    name = notebook.stem.removeprefix("explore_")
    module = importlib.import_module(f"labkit.explore.{name}")
    try:
        results_folder(module.STUDY, module.FILES)
    except ResultsMissing:
        subprocess.run([sys.executable, "-m", "labkit.cli", "run", STUDIES[name], "--profile",
                        "smoke", "--no-gallery"], check=True, cwd=ROOT)


def plot_state(page) -> str:
    return page.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot .main-svg'))"
                         ".map(e => e.innerHTML).join('|')")


def move_main_control(page) -> None:
    control = page.locator(".labkit-main-control").first
    handle = control.locator(".noUi-handle")
    if handle.count():
        handle.first.focus()
        for _ in range(6):
            page.keyboard.press("ArrowRight")
        return
    select = control.locator("select")
    if select.count():
        options = select.first.locator("option").all_inner_texts()
        select.first.select_option(label=options[-1] if len(options) > 1 else options[0])
        return
    raise AssertionError("the main control is neither a slider nor a dropdown")


@pytest.mark.parametrize("notebook", EXPLORE, ids=[p.stem for p in EXPLORE])
def test_moving_the_main_control_changes_the_figure(notebook, tmp_path):
    from playwright.sync_api import sync_playwright

    ensure_results(notebook)
    served = tmp_path / "lab"
    served.mkdir()
    shutil.copy(notebook, served / notebook.name)
    env = {"LABKIT_FIGURES_DIR": os.environ.get("LABKIT_FIGURES_DIR", str(ROOT / "figures"))}
    with jupyter_lab(served, env) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            open_and_run(page, server, notebook.name)
            page.wait_for_selector(".labkit-main-control", timeout=60_000)
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
            page.wait_for_timeout(1_000)
            page.locator(".labkit-main-control").first.scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / f"{notebook.stem}_before.png"), full_page=True)
            before = plot_state(page)
            move_main_control(page)
            for _ in range(40):
                page.wait_for_timeout(500)
                if plot_state(page) != before:
                    break
            page.screenshot(path=str(tmp_path / f"{notebook.stem}_after.png"), full_page=True)
            assert plot_state(page) != before, f"moving the main control of {notebook.name} left the figure unchanged"
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t]
            assert not tracebacks, tracebacks[0][:500]
        finally:
            browser.close()
