# Thin wrapper over CMake. `make` builds build/bin/errand and liberrand; `make test` runs
# every test suite; `make asan` runs them again under ASan+UBSan in build-asan/.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
PYTHON ?= /usr/bin/python3

.PHONY: all deps test-deps test unit e2e example browser check asan fuzz container-test demo install clean format

all: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test

unit: all test-deps
	cd $(BUILD) && ctest --output-on-failure --no-tests=error

e2e: all test-deps
	ERRAND_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q tests/e2e

example: all test-deps
	ERRAND_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q tests/example

browser: all test-deps
	cd tests/browser && npm ci --no-audit --no-fund && ERRAND_BUILD=$(abspath $(BUILD)) node --test

# Coverage-guided fuzzing (libFuzzer) of the parsers of untrusted input, FUZZ_SECONDS each.
fuzz: deps
	tests/fuzz/run.sh

# Everything a change must pass: the suites, again under ASan+UBSan, then the fuzzers.
test: unit e2e example browser

check: test asan fuzz

container-test:
	tests/container/run.sh

demo: all
	BUILD=$(BUILD) scripts/demo.sh

asan:
	$(MAKE) unit e2e example BUILD=build-asan CMAKE_FLAGS="-DERRAND_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"

install: all
	cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz
