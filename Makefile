# labkit: set up, make every figure, test. See README.md.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# A mirror of the real datasets beside the checkout is used when present (CI, offline machines).
export LABKIT_DATA_MIRROR ?= $(abspath $(wildcard ../shared/data))
export TOKENIZERS_PARALLELISM ?= false
NOTEBOOKS := $(filter-out notebooks/explore_%,$(sort $(wildcard notebooks/*.ipynb)))
EXPLORE := $(sort $(wildcard notebooks/explore_*.ipynb))
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=900

.PHONY: setup browser figures test test-fast lab gallery clean

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

test:  ## unit tests + every notebook on the smoke profile (nbval)
	$(PY) -m pytest tests $(NOTEBOOKS) $(EXPLORE) $(NBVAL)

test-fast:  ## unit tests only, without the slow ones
	$(PY) -m pytest tests -m "not slow"

lab:  ## JupyterLab on localhost; the URL (with its token) is printed
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$${PORT:-8888} --no-browser $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) notebooks

gallery:
	$(VENV)/bin/labkit gallery

clean:
	rm -rf .pytest_cache $(VENV) *.egg-info
