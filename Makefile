# neurofl: the two Quickstart commands (`make evaluate`, `make test`) and their set-up.
# Python 3.10 is required (lava-nc 0.10 / lava-dl 0.6 declare >=3.10,<3.11).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYENV_ROOT ?= $(HOME)/.pyenv

# A python3.10 that really runs (pyenv shims may answer "command not found"), else pyenv's install.
PYTHON ?= $(shell for c in python3.10 $(PYENV_ROOT)/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do \
	  if "$$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then echo "$$c"; break; fi; done)

.PHONY: venv evaluate test lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "error: no working Python 3.10 found (tried python3.10 and $(PYENV_ROOT)/versions/3.10*/bin/python3.10); install one or pass PYTHON=/path/to/python3.10" >&2; exit 2; fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

evaluate: venv
	$(VENV)/bin/neurofl evaluate --profile loihi2 --out runs/quickstart

test: venv
	$(PY) -m pytest -q

# mypy's settings (files, strictness, untyped third-party modules) are in pyproject.toml [tool.mypy].
lint: venv
	$(VENV)/bin/ruff check neurofl tests scripts examples
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) runs .pytest_cache
