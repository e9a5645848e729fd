# The two commands are `make demo` and `make test`; `make bench` measures. Each
# creates its own virtual environment and installs what it needs, so a fresh
# clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test protos typecheck clean bench bench-quick soak

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

# The fan-out benchmark (benchmarks/, docs/performance.rst) in its own venv, so
# matplotlib never enters the package's. The async reference client gets a
# third venv (.venv-bench-reference, its pins differ from ours), which
# benchmarks.run makes on first use.
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python

$(BENCH_VENV)/.ready: setup.cfg setup.py
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip --disable-pip-version-check -q install -e '.[testing]' 'matplotlib>=3.8' 'py-spy>=0.3'
	touch $@

bench: $(BENCH_VENV)/.ready
	$(BENCH_PY) -m benchmarks.run --preset full

bench-quick: $(BENCH_VENV)/.ready
	$(BENCH_PY) -m benchmarks.run --preset quick

# The long soak of the fault suite (tests/faults/test_soak.py): opt-in, minutes
# long; MRCLIENT_SOAK_ROUNDS sets its length. Figures: docs/reliability.rst.
soak: $(VENV)/.test
	MRCLIENT_SOAK=1 $(PY) -m pytest tests/faults/test_soak.py -k soak_with_churn -p no:cacheprovider
