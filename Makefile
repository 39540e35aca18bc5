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

.PHONY: setup browser figures test lint test-fast lab gallery clean notebooks reference

# torch for `make setup`. TORCH=auto (default): keep a torch in the venv that already sees CUDA;
# with a GPU (nvidia-smi) and no torch yet, PyPI's default build (CUDA on Linux); else the local
# CPU wheel $(TORCH_CPU). TORCH=keep: never touch torch. TORCH='torch==2.11.0' (any pip
# requirement, extra pip options allowed): install that. pyproject's torch range then keeps it.
TORCH ?= auto
TORCH_CPU := torch==2.13.0
TORCH_RANGE := torch>=2.6,<3

setup: browser  ## venv + torch (CPU wheel, or the CUDA torch already there) + labkit + kernel
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@version() { $(PY) -c 'import torch; print(torch.__version__)' 2>/dev/null; }; \
	case "$(TORCH)" in \
	  keep) version >/dev/null || { echo "TORCH=keep, but $(VENV) has no importable torch" >&2; exit 1; }; \
	        echo "torch: keeping $$(version) (TORCH=keep)";; \
	  auto) if $(PY) -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then \
	          echo "torch: keeping $$(version), which sees CUDA"; \
	        elif command -v nvidia-smi >/dev/null 2>&1; then \
	          if version >/dev/null; then echo "torch: a GPU is present but torch $$(version) does not see" \
	            "it; keeping it (README: Installing on a GPU machine)"; \
	          else echo "torch: GPU found, installing PyPI's default build"; \
	            $(PY) -m pip install --quiet "$(TORCH_RANGE)"; fi; \
	        else $(PY) -m pip install --quiet $(TORCH_CPU); fi;; \
	  *) $(PY) -m pip install --quiet $(TORCH);; \
	esac
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name labkit --display-name "Python (labkit)" >/dev/null
	@echo "labkit is set up: activate with 'source $(VENV)/bin/activate'"

browser:  ## Debian's chromium for PNG export (kaleido) and the browser tests; skipped if not root
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "no chromium and not root: install it (e.g. 'sudo apt-get install chromium') for PNG figures"; fi

figures:  ## the main job: every study notebook through papermill (default profile) + gallery
	# two notebooks at once, one torch thread each: tiny models do not scale across threads and
	# two kernels with two threads each oversubscribe 2 cores (README, "The command line")
	$(VENV)/bin/labkit run --profile $${PROFILE:-default} --jobs $${JOBS:-2} --threads $${THREADS:-1}

# Two pytest-xdist workers, one thread each (conftest.py): the notebooks, their headline tests
# and the browser tests run in order on one worker (group "studies"), unit tests spread over
# both. TEST_JOBS=0 runs everything in this one process.
TEST_JOBS ?= 2
test: lint  ## lint, then unit tests + doctests + every notebook on the smoke profile (nbval-lax) + headline numbers
	$(PY) -m pytest $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadgroup) tests $(NOTEBOOKS) $(EXPLORE) $(NBVAL) --doctest-modules labkit

lint:  ## ruff: lint rules and formatting (pyproject.toml [tool.ruff]); 'ruff format .' fixes the layout
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

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

reference:  ## results/ from the last default run in figures/ (+ the docs blocks that quote it)
	$(PY) -m labkit.run.reference $${FIGURES:+--figures $$FIGURES} $${ALLOW_PARTIAL:+--allow-partial}
	$(PY) -m labkit.run.reference --update-docs

clean:
	rm -rf .pytest_cache $(VENV) *.egg-info
