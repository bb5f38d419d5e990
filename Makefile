# SPDX-License-Identifier: MIT
# Thin wrapper over CMake. `make` builds build/bin/errand and liberrand; `make test` runs
# every test suite; `make asan` runs them again under ASan+UBSan in build-asan/.
# Quiet by default (CMake's progress lines only); `make V=1 ...` shows every command.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
PYTHON ?= /usr/bin/python3
# pytest processes the pytest suites (end-to-end, conformance, example) run in (pytest-xdist;
# 0 = one, in pytest's own). Each test starts its own servers on ports the system picks, so
# they run side by side; most of their time is spent waiting on those processes, which is why
# two halve a suite on 2 cores. ctest runs $(JOBS) unit tests at a time.
PYTEST_JOBS ?= 2
V ?= 0

ifeq ($(V),1)
Q :=
CMAKE_BUILD_VERBOSE := --verbose
else
Q := @
CMAKE_BUILD_VERBOSE :=
# Also reaches the make that `cmake --build` runs (through MAKEFLAGS in the environment).
MAKEFLAGS += --no-print-directory
endif

.PHONY: all deps test-deps deb package-test test unit e2e e2e-postgres conformance conformance-python example example-fastapi browser check asan fuzz fault container-test fresh-check demo install clean format

all: deps
	$(Q)cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	$(Q)cmake --build $(BUILD) -j $(JOBS) $(CMAKE_BUILD_VERBOSE)

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test

unit: all test-deps
	@echo "== C unit tests ($(BUILD)) =="
	$(Q)cd $(BUILD) && ctest -j $(JOBS) --output-on-failure --no-tests=error

e2e: all test-deps
	@echo "== end-to-end tests ($(BUILD)) =="
	$(Q)cd tests/s3 && npm ci --no-audit --no-fund --silent
	$(Q)cd tests/openapi && npm ci --no-audit --no-fund --silent
	$(Q)ERRAND_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -n $(PYTEST_JOBS) tests/e2e

# The same suite with every server on PostgreSQL: one throwaway cluster for the session
# (tests/e2e/pg_cluster.py), a schema per server home; tests about SQLite itself are skipped,
# saying why (-rs lists them).
e2e-postgres: all test-deps
	@echo "== end-to-end tests on PostgreSQL ($(BUILD)) =="
	$(Q)cd tests/s3 && npm ci --no-audit --no-fund --silent
	$(Q)cd tests/openapi && npm ci --no-audit --no-fund --silent
	$(Q)ERRAND_TEST_STORE=postgresql ERRAND_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -rs -n $(PYTEST_JOBS) tests/e2e

# The worker-protocol conformance suite, against the runtime that ERRAND_CONFORMANCE_RUNTIME
# names (default: liberrand's C worker); tests/conformance/README.md.
conformance: all test-deps
	@echo "== worker conformance tests ($(BUILD)) =="
	$(Q)ERRAND_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -n $(PYTEST_JOBS) tests/conformance

# The same suite against the Python runtime (errand.serve, clients/python): the same tests
# must pass for both runtimes.
conformance-python: all test-deps
	@echo "== worker conformance tests, Python runtime ($(BUILD)) =="
	$(Q)ERRAND_CONFORMANCE_RUNTIME=python_runtime:PythonRuntime ERRAND_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -n $(PYTEST_JOBS) tests/conformance

# The example app's suite (tests/example) against the C app (examples/structured-output),
# built in $(BUILD); `make asan` runs it with the sanitizers.
example: all test-deps
	@echo "== example app tests, C app ($(BUILD)) =="
	$(Q)ERRAND_EXAMPLE_APP=c ERRAND_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -n $(PYTEST_JOBS) tests/example

# The same suite against the FastAPI app (examples/fastapi-structured-output): the errand
# server of $(BUILD), the Python worker and the app under uvicorn, from Debian's
# python3-fastapi and python3-uvicorn. The same tests must pass for both apps.
example-fastapi: all test-deps
	@echo "== example app tests, FastAPI app ($(BUILD)) =="
	$(Q)ERRAND_EXAMPLE_APP=fastapi ERRAND_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -n $(PYTEST_JOBS) tests/example

browser: all test-deps
	@echo "== browser tests ($(BUILD)) =="
	$(Q)cd tests/browser && npm ci --no-audit --no-fund && ERRAND_BUILD=$(abspath $(BUILD)) node --test
	@echo "== the dashboard in firefox ($(BUILD)) =="
	$(Q)cd tests/browser && ERRAND_BROWSER=firefox ERRAND_BUILD=$(abspath $(BUILD)) node --test dashboard.test.mjs

# Coverage-guided fuzzing (libFuzzer) of the parsers of untrusted input, FUZZ_SECONDS each.
fuzz: deps
	@echo "== fuzzers (FUZZ_SECONDS=$${FUZZ_SECONDS:-20} each) =="
	$(Q)tests/fuzz/run.sh

# The fault campaign in its short form (30-50 s each): the server killed under load, workers
# killed, deployed and cut off, then every acknowledged run checked; once with liberrand's C
# workers, once with the Python runtime's (errand.serve). The long form is by hand:
# `ERRAND_BUILD=$PWD/build tests/fault/campaign.py --rounds 20` (docs/testing.md).
fault: all test-deps
	@echo "== fault campaign, short form, C workers ($(BUILD)) =="
	$(Q)ERRAND_BUILD=$(abspath $(BUILD)) $(PYTHON) tests/fault/campaign.py --short
	@echo "== fault campaign, short form, Python workers ($(BUILD)) =="
	$(Q)ERRAND_BUILD=$(abspath $(BUILD)) $(PYTHON) tests/fault/campaign.py --short --runtime python

# Everything a change must pass: the suites, the end-to-end suite again on PostgreSQL, the
# fault campaign, the suites again under ASan+UBSan, then the fuzzers.
test: unit e2e conformance conformance-python example example-fastapi browser

check: test e2e-postgres fault asan fuzz

container-test:
	$(Q)tests/container/run.sh

# `make check` from a clean clone of HEAD in a new Debian 12 container (what a new user runs).
fresh-check:
	$(Q)tests/container/fresh-check.sh

# Debian packages (errand, liberrand1, liberrand-dev) in build-deb/, checked by lintian.
deb:
	@scripts/install-deps.sh deb
	$(Q)scripts/build-deb.sh build-deb

# The packages of `make deb` installed in a new Debian 12 container with systemd: the server
# and a worker started by their units, a run submitted and its result read, a program built
# against liberrand-dev, an upgrade to the packages' next revision (built here as well) under
# load, then everything purged (tests/package/run.sh).
package-test: deb
	$(Q)DEB_REVISION=2 scripts/build-deb.sh build-deb/next
	$(Q)tests/package/run.sh build-deb

# scripts/demo.sh builds first (and installs what is missing) itself.
demo:
	$(Q)BUILD=$(BUILD) V=$(V) scripts/demo.sh

asan:
	$(Q)$(MAKE) unit e2e conformance example BUILD=build-asan CMAKE_FLAGS="-DERRAND_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"

install: all
	$(Q)cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz
