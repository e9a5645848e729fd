# The two commands: `make demo` and `make test`. Each creates its own virtual
# environment and installs what it needs, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test protos typecheck clean

$(VENV)/.base: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[testing]'
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) install -e '.[test]'
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/mrclient demo

test: $(VENV)/.test typecheck
	$(PY) -m pytest

typecheck: $(VENV)/.test
	$(PY) -m mypy mrclient

protos: $(VENV)/.test
	$(PY) protos/generate.py

clean:
	rm -rf $(VENV) .venv-* build *.egg-info .pytest_cache .mypy_cache
