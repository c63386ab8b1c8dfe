# oom.mk -- the out-of-memory loop (test/c/test_oom.c), included at the end
# of the Makefile.
#
#   make test-oom           every fault point of every scenario, normal build
#   make test-oom-asan      the same against build/asan/modelpack.so, the
#                           driver built with ASan+UBSan too
#   make test-oom-valgrind  the quick loop under valgrind (memcheck); slow
#                           (about a minute a scenario): pick some with
#                           OOM_VALGRIND_ARGS="--quick --only rebuild"
#
# `make test` runs the quick loop through test/oom.test.  TEST_C is used as
# a prerequisite of `test` in the Makefile, and make expands prerequisites
# when it reads a rule: appending to TEST_C here, after that rule, does not
# reach it, so the binary is also added to `test` (and `test-asan`) as an
# extra prerequisite line, which make merges with the rule's own.

TEST_C += build/test_oom
test: build/test_oom
test-asan: build/asan/test_oom

.PHONY: test-oom test-oom-asan test-oom-valgrind

test-oom: modelpack.so build/test_oom
	./build/test_oom ./modelpack

# The driver carries the sanitizer runtime itself (no LD_PRELOAD): the
# instrumented extension is dlopened into it.  LeakSanitizer runs at exit,
# on top of the driver's own count of outstanding allocations.
test-oom-asan: build/asan/modelpack.so build/asan/test_oom
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	./build/asan/test_oom ./build/asan/modelpack

OOM_VALGRIND_ARGS ?= --quick
test-oom-valgrind: modelpack.so build/test_oom
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	  ./build/test_oom ./modelpack $(OOM_VALGRIND_ARGS)
