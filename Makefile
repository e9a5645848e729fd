# The two commands are `make demo` and `make test`; `make check` is the quick one
# while editing; `make bench` measures. Each creates its own virtual environment
# and installs what it needs, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# --no-compile: a module is compiled when first imported, not every file of every
# package at install time (about 20 s less per venv).
PIP_INSTALL := -m pip --disable-pip-version-check -q install --no-compile
PIP := $(PY) $(PIP_INSTALL)
# An editable install writes mrclient.egg-info into the clone: one at a time (.ci/locked).
EDITABLE := $(PYTHON) .ci/locked setup.py
# Python writes the bytecode of what it imports, whatever PYTHONDONTWRITEBYTECODE says
# outside: make test starts hundreds of Python processes (xdist workers, the command, the
# docs' programs, child coordinators), and each would otherwise compile mrclient and all it
# imports from source again (twice the CPU time of those tests, with --no-compile above).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo demo-secure test check check-tests unit unit-parallel unit-serial lint typecheck docs pins venvs \
	test-oldest test-oldest-parallel test-oldest-serial test-newest test-newest-parallel test-newest-serial \
	protos clean bench bench-quick bench-ab bench-shards bench-map soak

$(VENV)/.base: setup.cfg setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(EDITABLE) $(PIP) -e '.[testing,secure]'
	touch $@

# The dev extra: the test suite's needs plus docs, notebook, mypy, ruff and build (the
# base's too, so .base is made with it). Its dependencies first (.ci/requirements), then
# mrclient itself, editable, under the lock: the venvs of make test are made at once.
$(VENV)/.dev: setup.cfg setup.py .ci/requirements
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PYTHON) .ci/requirements dev > $(VENV)/requirements-dev.txt
	$(PIP) -r $(VENV)/requirements-dev.txt
	$(EDITABLE) $(PIP) --no-deps -e .
	touch $(VENV)/.base $@

demo: $(VENV)/.base
	$(VENV)/bin/mrclient demo

demo-secure: $(VENV)/.base
	$(VENV)/bin/mrclient demo --secure

# -- the tests ------------------------------------------------------------------------------
# Each suite runs in two passes: the tests not marked serial on WORKERS xdist workers
# at once (with the slowest shown), then those marked serial in one process, alone
# (signals, wall-clock bounds a loaded machine could break: setup.cfg's markers).
# .ci/check-passes then checks that the two passes ran every test exactly once.
# 3 workers on 2 cores: as fast as 4 here (many tests wait on sockets and processes), for less CPU.
WORKERS ?= 3
PYTEST_FLAGS := -p no:cacheprovider
PARALLEL_PASS = -n $(WORKERS) --dist loadgroup -m "not serial" --durations=25
SERIAL_PASS = -m serial

# Everything, in two stages: the three venvs at once, each followed as soon as it is
# made by what runs in it (lint, type check and the parallel pass of the unit tests in
# .venv, the parallel pass of each pin in its own), each one's output shown when it
# ends (make -j); then the three serial passes, each running its tests one at a time,
# beside the docs build: four processes on a machine the parallel passes have left,
# three of which wait more than they compute.
test:
	$(MAKE) --no-print-directory -j --output-sync=target lint typecheck unit-parallel test-oldest-parallel test-newest-parallel
	$(MAKE) --no-print-directory -j --output-sync=target unit-serial test-oldest-serial test-newest-serial docs
	$(CHECK_PASSES)

venvs: $(VENV)/.dev .venv-oldest/.ready .venv-newest/.ready

# The edit loop, in under a minute: lint, type check and, on CHECK_WORKERS workers, the
# tests that start no process (not marked subprocess: --forbid-processes fails one that
# starts a process anyway) and need not run alone (not marked serial: make unit runs those).
CHECK_WORKERS ?= 4
check: $(VENV)/.dev
	$(MAKE) --no-print-directory -j --output-sync=target lint typecheck check-tests

check-tests: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_FLAGS) -q --forbid-processes -n $(CHECK_WORKERS) -m "not serial and not subprocess"

# A pass writes the tests it selected and left out (--record-selection, tests/conftest.py;
# with '=', or pytest would take the file for a test path and not load tests/conftest.py).
passes = $(1)/passes/parallel.json $(1)/passes/serial.json
CHECK_PASSES = $(PYTHON) .ci/check-passes $(call passes,$(VENV)) && \
	$(PYTHON) .ci/check-passes $(call passes,.venv-oldest) && $(PYTHON) .ci/check-passes $(call passes,.venv-newest)

unit:
	$(MAKE) --no-print-directory unit-parallel
	$(MAKE) --no-print-directory -j1 unit-serial
	$(PYTHON) .ci/check-passes $(call passes,$(VENV))

unit-parallel: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_FLAGS) $(PARALLEL_PASS) --record-selection=$(VENV)/passes/parallel.json

unit-serial: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_FLAGS) $(SERIAL_PASS) --record-selection=$(VENV)/passes/serial.json

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
# reference node), closing from a signal handler and at interpreter exit (whose hook order
# is CPython's own, so each supported Python checks it), and shard_of's committed answers
# (tests/data/shard_golden.json: every supported Python must give the same): in two
# passes, as above, the parallel one in a single process (it runs beside the main suite's).
PIN_TESTS := tests/test_codec.py tests/test_protos.py tests/test_supported_range.py tests/test_runners.py \
	tests/test_local_node.py tests/test_concurrent.py tests/test_cluster.py tests/test_orchestrator.py \
	tests/test_pools.py tests/test_public_api.py tests/test_stats.py tests/test_metrics.py tests/test_watch.py \
	tests/test_joiners.py tests/test_shutdown.py tests/test_aio.py tests/test_init_retry.py \
	tests/test_docker_backend.py tests/test_reports.py tests/test_results.py tests/test_shards.py tests/test_map.py \
	tests/test_exit.py tests/test_aio_shutdown.py
OLDEST_PYTHON ?= $(shell .ci/find-python 3.10 $(PYTHON))
NEWEST_PYTHON ?= $(shell .ci/find-python 3.13 $(PYTHON))

.venv-oldest/.ready: setup.cfg setup.py .ci/requirements .ci/pins-oldest.txt
	rm -rf .venv-oldest
	$(OLDEST_PYTHON) -m venv .venv-oldest
	$(PYTHON) .ci/requirements test > .venv-oldest/requirements-test.txt
	.venv-oldest/bin/python $(PIP_INSTALL) -c .ci/pins-oldest.txt -r .venv-oldest/requirements-test.txt grpcio-tools
	$(EDITABLE) .venv-oldest/bin/python $(PIP_INSTALL) --no-deps -e .
	touch $@

.venv-newest/.ready: setup.cfg setup.py .ci/requirements .ci/pins-newest.txt
	rm -rf .venv-newest
	$(NEWEST_PYTHON) -m venv .venv-newest
	$(PYTHON) .ci/requirements test > .venv-newest/requirements-test.txt
	.venv-newest/bin/python $(PIP_INSTALL) -c .ci/pins-newest.txt -r .venv-newest/requirements-test.txt
	$(EDITABLE) .venv-newest/bin/python $(PIP_INSTALL) --no-deps -e .
	touch $@

pins: test-oldest test-newest

test-oldest test-newest: test-%:
	$(MAKE) --no-print-directory test-$*-parallel
	$(MAKE) --no-print-directory -j1 test-$*-serial
	$(PYTHON) .ci/check-passes $(call passes,.venv-$*)

# $(call pin_pass,oldest|newest,parallel|serial,pytest's selection)
pin_pass = MRCLIENT_PINS=.ci/pins-$(1).txt .venv-$(1)/bin/python -m pytest $(PYTEST_FLAGS) -q $(3) \
	--record-selection=.venv-$(1)/passes/$(2).json $(PIN_TESTS)

test-oldest-parallel: .venv-oldest/.ready
	$(call pin_pass,oldest,parallel,-m "not serial")

test-oldest-serial: .venv-oldest/.ready
	$(call pin_pass,oldest,serial,$(SERIAL_PASS))

test-newest-parallel: .venv-newest/.ready
	$(call pin_pass,newest,parallel,-m "not serial")

test-newest-serial: .venv-newest/.ready
	$(call pin_pass,newest,serial,$(SERIAL_PASS))

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

# The shards case (benchmarks/shards.py, docs/scaling.rst): N=2000 split between K = 1, 2, 4 ...
# shard processes, up to this machine's cores, beside the async reference; e.g.
# make bench-shards SHARDS="--shards 1 2 --latencies-ms 0 50".
SHARDS ?=
bench-shards: $(BENCH_VENV)/.ready
	$(BENCH_PY) -m benchmarks.shards $(SHARDS)

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
