# modelpack -- build, test, demo and benchmark.
#
#   make          build ./modelpack.so (load it with `.load ./modelpack`)
#   make demo     build, create a sample database, show packed rows
#   make test     install missing Debian packages, build, run the Tcl suite
#   make test-asan  the same suite against an ASan+UBSan build
#   make bench    run the benchmarks in bench/

CC      ?= gcc
CFLAGS  ?= -O2 -g
WARN     = -std=c11 -Wall -Wextra -Wpedantic -Werror -Wno-unused-parameter
SOFLAGS  = -fPIC -shared -fvisibility=hidden
DEPS     = gcc make tcl libsqlite3-tcl libsqlite3-dev sqlite3

SRC      = $(wildcard ext/*.c)
HDR      = $(wildcard ext/*.h) include/modelpack.h
TEST_C   = build/test_decode build/test_threads
BENCH_C  = build/bench_core

.PHONY: all deps test test-asan test-tsan test-valgrind demo bench bench-readme clean

all: modelpack.so

modelpack.so: $(SRC) $(HDR)
	$(CC) $(WARN) $(CFLAGS) $(SOFLAGS) -o $@ $(SRC) -lm

deps:
	@sh scripts/deps.sh $(DEPS)

build/%: test/c/%.c include/modelpack.h
	@mkdir -p build
	$(CC) $(WARN) $(CFLAGS) -o $@ $< -lsqlite3

build/bench_%: bench/bench_%.c include/modelpack.h
	@mkdir -p build
	$(CC) $(WARN) -O2 -o $@ $< -lsqlite3

build/example_c: examples/c/read_books.c include/modelpack.h
	@mkdir -p build
	$(CC) $(WARN) $(CFLAGS) -o $@ $< -lsqlite3

test: deps modelpack.so $(TEST_C) build/example_c
	MODELPACK_SO=$(CURDIR)/modelpack tclsh test/all.tcl

# ASan+UBSan: the extension is instrumented and loaded into tclsh with the
# sanitizer runtime preloaded; any report aborts the run.
ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
build/asan/modelpack.so: $(SRC) $(HDR)
	@mkdir -p build/asan
	gcc $(WARN) $(ASAN_FLAGS) $(SOFLAGS) -o $@ $(SRC) -lm

build/asan/test_%: test/c/test_%.c include/modelpack.h
	@mkdir -p build/asan
	gcc $(WARN) $(ASAN_FLAGS) -o $@ $< -lsqlite3

test-asan: deps build/asan/modelpack.so build/asan/test_decode build/asan/test_threads build/example_c
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/test/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	MODELPACK_SO=$(CURDIR)/build/asan/modelpack MODELPACK_TEST_BIN=$(CURDIR)/build/asan \
	tclsh test/all.tcl

# valgrind (memcheck): the whole Tcl suite in one tclsh, every child program
# too; any error or definite leak fails the run.  Slow (minutes): not in CI,
# which runs the ASan+LSan pass instead.  VALGRIND_TESTS picks some files.
VALGRIND_TESTS ?=
test-valgrind: deps modelpack.so $(TEST_C) build/example_c
	MODELPACK_SO=$(CURDIR)/modelpack MODELPACK_VALGRIND=1 \
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-possibly-lost=no \
	  --trace-children=yes --trace-children-skip='*/sqlite3,*/sh,*/gcc,*/cc' \
	  tclsh test/all.tcl $(VALGRIND_TESTS)

# ThreadSanitizer: reader threads and a WAL writer, each on its own connection.
TSAN_FLAGS = -O1 -g -fsanitize=thread
build/tsan/modelpack.so: $(SRC) $(HDR)
	@mkdir -p build/tsan
	gcc $(WARN) $(TSAN_FLAGS) $(SOFLAGS) -o $@ $(SRC) -lm

build/tsan/test_threads: test/c/test_threads.c include/modelpack.h
	@mkdir -p build/tsan
	gcc $(WARN) $(TSAN_FLAGS) -o $@ $< -lsqlite3

test-tsan: deps build/tsan/modelpack.so build/tsan/test_threads
	TSAN_OPTIONS=halt_on_error=1 ./build/tsan/test_threads ./build/tsan/modelpack 5

demo: deps modelpack.so build/bench_core
	sh examples/shell/demo.sh

# Every benchmark, one table (bench/report.py); bench-readme also pastes it,
# and the warm-up plot, into README.md.
bench: deps modelpack.so $(BENCH_C) python
	$(PYTHON) bench/report.py

bench-readme: deps modelpack.so $(BENCH_C) python
	$(PYTHON) bench/report.py --readme

clean:
	rm -rf build modelpack.so

# Fragments with one job each: fuzzing (fuzz.mk), the out-of-memory loop
# (oom.mk), the Python package and Django integration (python.mk).
-include fuzz.mk
-include oom.mk
-include python.mk
