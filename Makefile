# Thin wrapper over CMake so the README commands stay short.
#   make            build (build/)
#   make test       build and run every test (ctest)
#   make asan       build and run every test under ASan + UBSan (build-asan/)
#   make tsan       build with clang + TSan (build-tsan/), run the threaded modules' unit tests
#   make fuzz-smoke build the libFuzzer targets with clang and run each 60 s
#   make lint       clang-format check + cppcheck
#   make format     rewrite sources with clang-format
#   make check      everything CI runs: test, asan, tsan, lint, fuzz-smoke
#   make demo       the main job: a server with SQLite and local workers
#   make bench      build and run the benchmarks
#   make soak       the long runs kept out of CI: 5 minutes of chaos (SOAK_SECONDS)

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 60
CMAKE_GEN  := -G Ninja
SOURCES     = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find src include tests bench fuzz -name '*.[ch]')

.PHONY: all build test asan tsan fuzz fuzz-smoke lint format check demo bench soak clean

all: build

build:
	@cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan:
	@cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DVK_SANITIZE=ON \
		-DCMAKE_C_COMPILER=clang >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# The unit tests of the modules that run threads (server, orchestrator, store on both
# backends, worker). Suppressions: only races inside third-party libraries (see the file).
TSAN_TESTS ?= ^(unit_(http|orchestrator|store|worker|git|api)_|triggers_test_hooks)
# Single-threaded and long (every tree shape): nothing for TSan to see, minutes under it.
TSAN_EXCLUDE ?= ^unit_orchestrator_test_states$$
tsan:
	@cmake -S . -B $(TSAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DVK_TSAN=ON \
		-DCMAKE_C_COMPILER=clang >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/scripts/tsan.supp" \
		ctest --output-on-failure -j $(JOBS) -R '$(TSAN_TESTS)' -E '$(TSAN_EXCLUDE)'

fuzz:
	@cmake -S . -B $(FUZZ_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVK_FUZZ=ON \
		-DCMAKE_C_COMPILER=clang >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)

fuzz-smoke: fuzz
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

# varFuncNullUB: vk_log() ends its field list with NULL, which glibc defines as
# ((void *)0), a pointer-sized argument; the check is about platforms where NULL is 0.
lint:
	clang-format --dry-run --Werror $(SOURCES)
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 \
		--inline-suppr --suppress=missingIncludeSystem --suppress=varFuncNullUB \
		-I include -I src src include

format:
	clang-format -i $(SOURCES)

check: test asan tsan lint fuzz-smoke

demo: build
	scripts/demo.sh

bench: build
	scripts/bench.sh $(BUILD)

SOAK_SECONDS ?= 300
soak: build
	rm -rf $(BUILD)/chaos-soak
	tests/chaos/chaos.py $(BUILD)/vulcan $(SOAK_SECONDS) $(BUILD)/chaos-soak

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
