"""pytest set-up shared by unit tests, notebook tests (nbval) and headline-number tests.

Notebook kernels inherit this process's environment, so setting it here makes every notebook
under test run on the ``smoke`` profile, write its outputs to a temporary folder (never over
``figures/`` from ``make figures``), render figures statically, fail on any figure the figure
check rejects (``LABKIT_STRICT_FIGURES=1``), and read data from the mirror beside the checkout
when one is there.
"""

import os
import tempfile
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
HEADLINES = ROOT / "tests" / "notebooks"
# The jupytext .py halves of notebooks are scripts that run a whole study when imported:
# never let collection (e.g. --doctest-modules) import them; nbval runs the .ipynb halves.
collect_ignore_glob = ["notebooks/*.py"]


def _check_xdist_groups(config) -> None:
    """Refuse `--dist loadgroup` where it would silently not group (a notebook on two kernels).

    pytest 9.2's structured node ids drop the "@group" suffix pytest-xdist (up to 3.8) writes
    to group tests (pytest-xdist#1386): the cells of one notebook then run on both workers and
    fail with NameErrors far from the cause.
    """
    if config.getoption("dist", "no") != "loadgroup":
        return

    def release(name: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version(name).split(".")[:2] if part.isdigit())

    if release("pytest") >= (9, 2) and release("pytest-xdist") <= (3, 8):
        raise pytest.UsageError(
            f"pytest {version('pytest')} with pytest-xdist {version('pytest-xdist')} ignores xdist_group "
            "(pytest-xdist#1386), so --dist loadgroup would split notebooks over workers: install "
            "'pytest<9.2' (make setup does) or run serially with TEST_JOBS=0 make test"
        )


def pytest_configure(config):
    _check_xdist_groups(config)
    os.environ.setdefault("LABKIT_PROFILE", "smoke")
    os.environ.setdefault("LABKIT_BATCH", "1")
    # A figure that fails the figure check (labkit.figcheck) raises instead of warning, so the
    # nbval runs of every study notebook fail `make test` on a figure that does not read right.
    os.environ.setdefault("LABKIT_STRICT_FIGURES", "1")
    os.environ.setdefault("LABKIT_FIGURES_DIR", tempfile.mkdtemp(prefix="labkit-test-figures-"))
    mirror = ROOT.parent / "shared" / "data"
    if "LABKIT_DATA_MIRROR" not in os.environ and mirror.is_dir():
        os.environ["LABKIT_DATA_MIRROR"] = str(mirror)
    chromium = Path("/usr/bin/chromium")
    if "BROWSER_PATH" not in os.environ and chromium.exists():
        os.environ["BROWSER_PATH"] = str(chromium)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs 2 workers on 2 cores:
        # one thread each (torch, OpenMP, labkit's pools and the notebook kernels they start),
        # never 4 busy threads on 2 cores
        for name in ("LABKIT_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")


def _run_order(item) -> int:
    """Unit tests, then notebooks (nbval), then headline numbers, then the browser.

    The headline tests read the run records the nbval runs just wrote (so `make test` runs each
    study once), and the browser tests' exploration notebooks find those results too.
    """
    if item.get_closest_marker("browser") is not None:
        return 3
    path = Path(str(item.path))
    if HEADLINES in path.parents:
        return 2
    if path.suffix == ".ipynb":
        return 1
    return 0


# tryfirst: pytest-xdist's worker turns the xdist_group marks into groups in its own
# pytest_collection_modifyitems, so the marks are added before any other plugin's hook runs.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):  # noqa: ARG001 - pytest hook signature
    items.sort(key=_run_order)
    # Under pytest-xdist (`make test`: -n 2 --dist loadgroup) the notebooks, the headline tests
    # that read their run records and the browser tests stay on one worker, in this order; the
    # unit tests spread over the workers around them.
    for item in items:
        if _run_order(item) > 0:
            item.add_marker(pytest.mark.xdist_group("studies"))
