# The front door. `make` builds, `make test` runs every test (a normal and
# an ASan+UBSan build), `make run` runs the main job, `make bench` the
# benchmarks. Each installs the Debian packages it needs (scripts/deps).
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_GEN  := -DCMAKE_BUILD_TYPE=RelWithDebInfo
MAKEFLAGS  += --no-print-directory

.PHONY: all build test test-fast run bench format clean

all: build

build:
	@scripts/deps build
	@cmake -S . -B $(BUILD) $(CMAKE_GEN) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DREEL_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

# Only the normal build's tests, for a quick loop while editing.
test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

run: build
	@scripts/deps run || echo "make run: could not install R's MovieLens package; will simulate" >&2
	@scripts/run

bench: build
	@scripts/deps bench
	@bench/run

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
