# The front door. `make` builds, `make test` runs every test (a normal and
# an ASan+UBSan build, TSan over the threaded modules, the fuzzer), `make
# run` runs the main job, `make bench` the benchmarks. Each installs the
# Debian packages it needs (scripts/deps).
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
TSAN_BUILD ?= build-tsan
FUZZ_SECONDS ?= 30
JOBS       ?= $(shell nproc)
CMAKE_GEN  := -DCMAKE_BUILD_TYPE=RelWithDebInfo
MAKEFLAGS  += --no-print-directory
SHELL      := /bin/bash

.PHONY: all build test test-fast tsan fuzz run bench format clean

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
	@$(MAKE) tsan
	@$(MAKE) fuzz

# ThreadSanitizer over the tests whose modules share state between
# threads (the log's group commit, the HTTP loops, the serving engine);
# part of `make test`. Without address randomisation (setarch -R): TSan's
# shadow memory refuses some kernels' high-entropy mmap layouts.
TSAN_TESTS := test_wal test_http test_engine
tsan:
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_C_FLAGS="-fsanitize=thread" \
	  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS) --target $(TSAN_TESTS)
	@for t in $(TSAN_TESTS); do \
	  echo "tsan: $$t"; \
	  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	    setarch $$(uname -m) -R $(TSAN_BUILD)/tests/$$t \
	    >/dev/null 2>$(TSAN_BUILD)/$$t.log || \
	    { tail -60 $(TSAN_BUILD)/$$t.log; exit 1; }; \
	done

# The libFuzzer targets (fuzz/README.md), each for FUZZ_SECONDS, from the
# seeds; part of `make test`, so CI fuzzes every submission for a while.
fuzz:
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DREEL_FUZZ=ON \
	  -DBUILD_TESTING=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_http
	@corpus=$$(mktemp -d) && trap 'rm -rf "$$corpus"' EXIT && \
	  $(FUZZ_BUILD)/fuzz/fuzz_http -max_total_time=$(FUZZ_SECONDS) \
	    -dict=fuzz/http.dict -print_final_stats=1 "$$corpus" fuzz/corpus/http \
	    2>&1 | grep -E "^(stat::number_of_executed_units|Done|==.*ERROR|SUMMARY)" ; \
	  exit $${PIPESTATUS[0]}

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
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
