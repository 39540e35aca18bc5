"""pytest set-up shared by unit tests and notebook tests (nbval).

Notebook kernels inherit this process's environment, so setting it here makes every notebook
under test run on the ``smoke`` profile, write its outputs to a temporary folder (never over
``figures/`` from ``make figures``), render figures statically, and read data from the mirror
beside the checkout when one is there.
"""
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def pytest_configure(config):
    os.environ.setdefault("LABKIT_PROFILE", "smoke")
    os.environ.setdefault("LABKIT_BATCH", "1")
    os.environ.setdefault("LABKIT_FIGURES_DIR", tempfile.mkdtemp(prefix="labkit-test-figures-"))
    mirror = ROOT.parent / "shared" / "data"
    if "LABKIT_DATA_MIRROR" not in os.environ and mirror.is_dir():
        os.environ["LABKIT_DATA_MIRROR"] = str(mirror)
    chromium = Path("/usr/bin/chromium")
    if "BROWSER_PATH" not in os.environ and chromium.exists():
        os.environ["BROWSER_PATH"] = str(chromium)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collectstart(collector):
    """nbval: never compare outputs whose bytes change run to run (ids, rendered images)."""
    if getattr(collector, "fspath", None) and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("text/html", "application/javascript", "image/png",
                                   "application/vnd.plotly.v1+json",
                                   "application/vnd.jupyter.widget-view+json", "stderr")


def pytest_collection_modifyitems(config, items):
    """Browser tests last: exploration notebooks then find the results the notebooks wrote."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
