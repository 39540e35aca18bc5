# labkit: set up, make every figure, test. See README.md.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# A mirror of the real datasets beside the checkout is used when present (CI, offline machines).
export LABKIT_DATA_MIRROR ?= $(abspath $(wildcard ../shared/data))
export TOKENIZERS_PARALLELISM ?= false
NOTEBOOKS := $(filter-out notebooks/explore_%,$(sort $(wildcard notebooks/*.ipynb)))
EXPLORE := $(sort $(wildcard notebooks/explore_*.ipynb))
# jupytext pairs (notebooks/jupytext.toml); a new notebook may start as either side
PAIRED := $(sort $(wildcard notebooks/*.ipynb) $(filter-out $(patsubst %.ipynb,%.py,$(wildcard notebooks/*.ipynb)),$(wildcard notebooks/*.py)))
# nbval-lax: every cell of every notebook runs (smoke profile); no outputs are compared, since
# notebooks are committed without any. Numbers are asserted by tests/notebooks/ (headlines).
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=900

.PHONY: setup browser figures test test-fast lab gallery clean notebooks

setup: browser  ## venv + CPU torch + labkit with all extras + Jupyter kernel
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name labkit --display-name "Python (labkit)" >/dev/null
	@echo "labkit is set up: activate with 'source $(VENV)/bin/activate'"

browser:  ## Debian's chromium for PNG export (kaleido) and the browser tests; skipped if not root
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "no chromium and not root: install it (e.g. 'sudo apt-get install chromium') for PNG figures"; fi

figures:  ## the main job: every study notebook through papermill (default profile) + gallery
	$(VENV)/bin/labkit run --profile $${PROFILE:-default}

test:  ## unit tests + doctests + every notebook on the smoke profile (nbval-lax) + headline numbers
	$(PY) -m pytest tests $(NOTEBOOKS) $(EXPLORE) $(NBVAL) --doctest-modules labkit

test-fast:  ## unit tests only, without the slow ones
	$(PY) -m pytest tests -m "not slow"

notebooks:  ## sync every .ipynb with its jupytext .py (the newer side wins), outputs cleared
	$(VENV)/bin/jupytext --sync $(PAIRED)
	$(VENV)/bin/jupyter nbconvert --clear-output --inplace --log-level=WARN notebooks/*.ipynb
	$(VENV)/bin/jupytext --sync --quiet notebooks/*.ipynb

lab:  ## JupyterLab on localhost; the URL (with its token) is printed
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$${PORT:-8888} --no-browser $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) notebooks

gallery:
	$(VENV)/bin/labkit gallery

clean:
	rm -rf .pytest_cache $(VENV) *.egg-info
