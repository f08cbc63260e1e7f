# `make demo` and `make test` create .venv from pyproject.toml when it is missing or stale.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/jax-anomaly demo --out runs/demo

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check jax_anomaly experiments tests
	$(VENV)/bin/ruff format --check jax_anomaly experiments tests

clean:
	rm -rf $(VENV) runs .pytest_cache
