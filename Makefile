# The two commands are `make demo` and `make test`; `make bench` measures. Each
# creates its own virtual environment and installs what it needs, so a fresh
# clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_FLAGS := --disable-pip-version-check -q
PIP := $(PY) -m pip $(PIP_FLAGS)

.PHONY: demo demo-secure test unit lint typecheck docs pins test-oldest test-newest protos clean bench bench-quick bench-ab bench-map soak

$(VENV)/.base: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[testing,secure]'
	touch $@

# The dev extra: the test suite's needs plus docs, notebook, mypy, ruff and build.
$(VENV)/.dev: $(VENV)/.base
	$(PIP) install -e '.[dev]'
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/mrclient demo

demo-secure: $(VENV)/.base
	$(VENV)/bin/mrclient demo --secure

# Everything, cheapest checks first. `pins` reruns the unit tests against the
# oldest and the newest supported dependency versions, each in its own venv.
test: lint typecheck unit docs pins

unit: $(VENV)/.dev
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

typecheck: $(VENV)/.dev
	$(PY) -m mypy mrclient

# The docs, warnings as errors, every page read afresh (-E: an incremental build hides the
# warnings of pages it does not read again); the notebook is executed as part of the build.
docs: $(VENV)/.dev
	$(PY) -m sphinx -E -W --keep-going -q -b html docs docs/_build/html

# -- the supported range: oldest and newest pins --------------------------------------------
# Each pin venv installs the package with .ci/pins-*.txt as constraints, on the
# oldest or newest supported Python, and runs the unit tests that exercise the
# generated code, grpcio and websockets (real local peers, no benchmarks, no
# reference node), and closing from a signal handler.
PIN_TESTS := tests/test_codec.py tests/test_protos.py tests/test_supported_range.py tests/test_runners.py \
	tests/test_local_node.py tests/test_concurrent.py tests/test_cluster.py tests/test_orchestrator.py \
	tests/test_pools.py tests/test_public_api.py tests/test_stats.py tests/test_metrics.py tests/test_watch.py \
	tests/test_joiners.py tests/test_shutdown.py tests/test_aio.py tests/test_init_retry.py \
	tests/test_docker_backend.py tests/test_reports.py tests/test_results.py tests/test_map.py
OLDEST_PYTHON ?= $(shell .ci/find-python 3.10 $(PYTHON))
NEWEST_PYTHON ?= $(shell .ci/find-python 3.13 $(PYTHON))

.venv-oldest/.ready: setup.cfg setup.py .ci/pins-oldest.txt
	rm -rf .venv-oldest
	$(OLDEST_PYTHON) -m venv .venv-oldest
	.venv-oldest/bin/python -m pip $(PIP_FLAGS) install -c .ci/pins-oldest.txt -e '.[test]' grpcio-tools
	touch $@

.venv-newest/.ready: setup.cfg setup.py .ci/pins-newest.txt
	rm -rf .venv-newest
	$(NEWEST_PYTHON) -m venv .venv-newest
	.venv-newest/bin/python -m pip $(PIP_FLAGS) install -c .ci/pins-newest.txt -e '.[test]'
	touch $@

pins: test-oldest test-newest

test-oldest: .venv-oldest/.ready
	MRCLIENT_PINS=.ci/pins-oldest.txt .venv-oldest/bin/python -m pytest -q -p no:cacheprovider $(PIN_TESTS)

test-newest: .venv-newest/.ready
	MRCLIENT_PINS=.ci/pins-newest.txt .venv-newest/bin/python -m pytest -q -p no:cacheprovider $(PIN_TESTS)

# The committed mrclient/wire/proto comes from the grpcio-tools pinned in
# .ci/pins-oldest.txt: code that old protoc writes imports on every supported
# protobuf, and tests/test_protos.py checks it is current in that venv.
protos: .venv-oldest/.ready
	.venv-oldest/bin/python protos/generate.py

clean:
	rm -rf $(VENV) .venv-* build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache docs/_build docs/jupyter_execute

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

# The map case (benchmarks/map_case.py, docs/performance.rst): 100 models whose latency is drawn
# afresh per input (5-50 ms), 200 inputs, as one map, as a loop of call(), and as the reference's
# loop; about 2 minutes. Options after MAP=, e.g. make bench-map MAP="--models 20 --passes 1".
MAP ?=
bench-map: $(BENCH_VENV)/.ready
	$(BENCH_PY) -m benchmarks.map_case $(MAP)

# An in-process A/B of one setting (benchmarks/ab.py, knobs in benchmarks/knobs.py), e.g.
# make bench-ab AB="--variant stats=off,on --models 100 --rounds 20". About 2 minutes as it is.
AB ?= --variant stats=off,on --models 1000 --rounds 40
bench-ab: $(BENCH_VENV)/.ready
	$(BENCH_PY) -m benchmarks.ab $(AB)

# The long soak of the fault suite (tests/faults/test_soak.py): opt-in, minutes
# long; MRCLIENT_SOAK_ROUNDS sets its length. Figures: docs/reliability.rst.
soak: $(VENV)/.dev
	MRCLIENT_SOAK=1 $(PY) -m pytest tests/faults/test_soak.py -k soak_with_churn -p no:cacheprovider
