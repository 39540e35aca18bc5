"""Every exploration notebook, opened in a real JupyterLab in headless chromium.

The test starts JupyterLab on a loopback port with a one-off token, opens a copy of the
notebook, runs all cells, moves the notebook's main control (the widget with CSS class
``labkit-main-control``) and asserts that a plotly figure in the page changed. Then it reads
back what plotly draws (each plot's trace data from the DOM) and checks it against what the
explorer should show for the control's new value, computed here from the same results files:
a figure that changes but draws the wrong thing (the U(D) band against the point index instead
of D) fails. A screenshot before and after is saved in the test's output folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from jupyter_driver import CHROMIUM_FLAGS, chromium_path, jupyter_lab, open_and_run

ROOT = Path(__file__).resolve().parents[2]
EXPLORE = sorted((ROOT / "notebooks").glob("explore_*.ipynb"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
]


def ensure_results(notebook: Path) -> None:
    """Run the explored study on the smoke profile unless its results are already there.

    In ``make test`` the study notebooks ran earlier in the same session (browser tests are
    sorted last) and wrote into the same ``$LABKIT_FIGURES_DIR``; run alone, this fills it.
    """
    import importlib

    from labkit.explore import STUDIES, ResultsMissing, results_folder

    name = notebook.stem.removeprefix("explore_")
    module = importlib.import_module(f"labkit.explore.{name}")
    try:
        results_folder(module.STUDY, module.FILES)
    except ResultsMissing:
        subprocess.run(
            [sys.executable, "-m", "labkit.run.cli", "run", STUDIES[name], "--profile", "smoke", "--no-gallery"],
            check=True,
            cwd=ROOT,
        )


def _results(notebook: Path, root: Path) -> Path:
    """The results folder the explorer read (the same rule as the explorer itself)."""
    import importlib

    from labkit.explore import results_folder

    module = importlib.import_module(f"labkit.explore.{notebook.stem.removeprefix('explore_')}")
    return results_folder(module.STUDY, module.FILES, root)


def plot_state(page) -> str:
    return page.evaluate(
        "Array.from(document.querySelectorAll('.js-plotly-plot .main-svg')).map(e => e.innerHTML).join('|')"
    )


# Every plot's traces as plotly holds them after its own decoding (``_fullData``: binary
# typed-array specs are decoded there, not in ``data``), plus each plot's shapes.
_TRACES_JS = """Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => ({
  shapes: ((p.layout || {}).shapes || []).map(s => ({x0: s.x0, x1: s.x1})),
  traces: (p._fullData || []).map(t => ({
    name: t.name === undefined ? null : t.name,
    x: t.x == null ? null : Array.from(t.x),
    y: t.y == null ? null : Array.from(t.y),
    z: t.z == null ? null : Array.from(t.z, r => Array.from(r))}))}))"""


def drawn(page) -> list[dict]:
    """What plotly draws: per plot, its shapes and traces (name, x, y, z as plain lists)."""
    return page.evaluate(_TRACES_JS)


def trace(plots: list[dict], name: str) -> dict:
    """The trace called ``name`` in any plot of the page."""
    for plot in plots:
        for t in plot["traces"]:
            if t["name"] == name:
                return t
    raise AssertionError(f"no trace {name!r} drawn; traces: {[t['name'] for p in plots for t in p['traces']]}")


def plot_with(plots: list[dict], name: str) -> dict:
    return next(p for p in plots if any(t["name"] == name for t in p["traces"]))


def readout(page) -> str:
    """The main control's shown value (a slider's readout or a dropdown's selected label)."""
    control = page.locator(".labkit-main-control").first
    if control.locator(".widget-readout").count():
        text = control.locator(".widget-readout").first.inner_text()
    else:
        text = control.locator("select").first.evaluate("s => s.options[s.selectedIndex].text")
    return _plain_text(text)


def _plain_text(text: str) -> str:
    """ipywidgets shows option labels with non-breaking spaces."""
    return text.replace("\xa0", " ").strip()


def check_scaling(page, plots: list[dict], folder: Path) -> None:
    """The U(D) band is drawn against D (1e6..1e13 tokens), at the beta the marker shows."""
    from labkit.explore import scaling

    beta = trace(plots, "chosen beta")["x"][0]
    assert float(readout(page)) == pytest.approx(beta, abs=0.006), "marker is not at the slider's beta"
    want = scaling.band(beta)
    for name, key in (("U upper: D^(1-beta)", "high"), ("U lower: D^(1-2beta)", "low")):
        got = trace(plots, name)
        np.testing.assert_allclose(got["x"], scaling.TOKENS, rtol=1e-9, err_msg=f"{name}: x is not D")
        np.testing.assert_allclose(got["y"], want[key], rtol=1e-9, err_msg=f"{name}: y at beta {beta}")
    assert min(trace(plots, "U upper: D^(1-beta)")["x"]) == pytest.approx(1e6)


def check_embeddings(page, plots: list[dict], folder: Path) -> None:
    """Confusion matrix and histograms are those of the held-out pairs at the new threshold."""
    from labkit.explore import embeddings

    scores = pd.read_csv(folder / "pair_scores.csv")
    held = scores[scores["split"] == embeddings.HELDOUT]
    system = [c for c in scores.columns if c not in embeddings.META_COLUMNS][0]  # the default
    held = held.dropna(subset=[system])
    threshold = float(readout(page))
    hist = plot_with(plots, "label 0")
    assert hist["shapes"] and hist["shapes"][0]["x0"] == pytest.approx(threshold), (
        "the threshold line is not at the slider's value"
    )
    want = embeddings.confusion(held["label"].to_numpy(), held[system].to_numpy(), threshold)
    matrix = next(t for p in plots for t in p["traces"] if t["z"] is not None)
    assert np.array_equal(np.asarray(matrix["z"]), want), (matrix["z"], want.tolist())
    for label in (0, 1):
        got = sorted(trace(plots, f"label {label}")["x"])
        np.testing.assert_allclose(got, np.sort(held.loc[held["label"] == label, system]), rtol=1e-6)


def check_anchor(page, plots: list[dict], folder: Path) -> None:
    """KV bars and the marker are those of the prompt the slider shows."""
    from labkit.explore import anchor

    examples = anchor.load_examples(folder)["examples"]
    shown = readout(page)
    example = next(e for e in examples if shown == f"{e['demonstrations']} demos, {e['context_tokens']} tokens")
    bars = next(t for p in plots for t in p["traces"] if t["x"] == ["full cache", "anchor cache"])
    assert bars["y"] == [example["kv_bytes_full"], example["kv_bytes_anchor"]]
    assert trace(plots, "shown")["x"] == [example["context_tokens"]]
    reduction = 100 * (1 - example["kv_bytes_anchor"] / example["kv_bytes_full"])
    assert trace(plots, "shown")["y"][0] == pytest.approx(reduction)


def check_summaries(page, plots: list[dict], folder: Path) -> None:
    """ROUGE bars are the chosen systems' scores on the meeting the dropdown shows."""
    from labkit.explore import summaries

    frame = summaries.load_summaries(folder / "summaries.jsonl")
    item = readout(page)
    # the explorer's own widgets only (JupyterLab's toolbar has selects of its own)
    instruction = page.evaluate(
        "Array.from(document.querySelectorAll('.widget-dropdown select'))"
        ".filter(s => !s.closest('.labkit-main-control') && s.selectedIndex >= 0)"
        ".map(s => s.options[s.selectedIndex].text)[0]"
    )
    chosen = page.evaluate(
        "Array.from(document.querySelector('.widget-select-multiple select').selectedOptions).map(o => o.text)"
    )
    instruction, chosen = _plain_text(instruction), [_plain_text(c) for c in chosen]
    here = frame[(frame["item"] == item) & (frame["instruction"] == instruction) & frame["system"].isin(chosen)]
    assert len(here), f"no summaries for {item!r} / {instruction!r}"
    for metric in summaries.METRICS:
        got = trace(plots, metric.replace("rouge", "ROUGE-"))
        assert got["x"] == here["system"].tolist()
        np.testing.assert_allclose(got["y"], here[metric].to_numpy(float), rtol=1e-9)


CHECKS = {
    "explore_scaling": check_scaling,
    "explore_embeddings": check_embeddings,
    "explore_anchor": check_anchor,
    "explore_summaries": check_summaries,
}


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
            check = CHECKS.get(notebook.stem)
            assert check is not None, f"no read-back check for {notebook.stem}: add one to CHECKS"
            check(page, drawn(page), _results(notebook, Path(env["LABKIT_FIGURES_DIR"])))
        finally:
            browser.close()
