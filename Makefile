# lensnb: two commands on a fresh machine.
#   make demo   JupyterLab on notebooks/01_quickstart.ipynb, offline, on the embedded model
#   make test   the whole test suite (what .ci/run calls)

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# A CPU build of torch where no GPU is present (on this project's machines pip takes 2.13.0+cpu
# from the local wheel store). Override, e.g. `make demo TORCH_SPEC='torch==2.14.1'`.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 'torch>=2.4,<=2.14.1' || echo 'torch==2.13.0')
STAMP := $(VENV)/.lensnb-installed
EXTRAS ?= test,bench
PORT ?= 8888

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test lint bench screenshots install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.port=$(PORT) --ServerApp.ip=127.0.0.1 \
		--LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
		$(if $(filter 0,$(shell id -u)),--allow-root) notebooks/01_quickstart.ipynb

test: $(STAMP)
	@bash scripts/ensure_chromium.sh
	$(PY) -m ruff check lensnb tests bench scripts
	$(PY) -m pytest tests -q

lint: $(STAMP)
	$(PY) -m ruff check lensnb tests bench scripts

bench: $(STAMP)
	$(PY) bench/generation.py --write BENCHMARKS.md
	$(PY) bench/attention_explorer.py
	$(PY) bench/split_qkv_memory.py --write

screenshots: $(STAMP)
	$(PY) scripts/refresh_screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache test-output
