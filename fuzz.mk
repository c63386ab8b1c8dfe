# fuzz.mk -- libFuzzer targets for modelpack (included by the Makefile).
#
#   make fuzz          run every target for FUZZ_SECONDS (default 60) each,
#                      one after the other, and print execs and findings
#   make fuzz-short    the same for FUZZ_SHORT_SECONDS (default 10) each (CI)
#   make fuzz-build    only build the fuzzers (clang, build/fuzz/fuzz_<target>)
#   make fuzz-replay   only build the plain replay drivers (gcc)
#
# Targets (test/fuzz/fuzz_<target>.c, see test/fuzz/README.md):
#   blob     include/modelpack.h: mp_view_open and the getters on any bytes
#   decl     CREATE VIRTUAL TABLE ... USING modelpack(<input>), then reads
#   query    modelpack_query(model, sql, params...) from the input
#   sqlblob  blobs from the input into modelpack_get/_json/_unpack, unpack =
#
# The fuzzers compile ext/*.c in (instrumented) and link the system
# libsqlite3.  Each run uses the committed seeds (test/fuzz/corpus/<target>,
# read only) plus a working corpus in build/fuzz/corpus/<target>; crashes go
# to build/fuzz/artifacts/<target>/ -- copy one to
# test/fuzz/regress/<target>-<name> to keep it.  FUZZ_OPTS adds libFuzzer
# flags, e.g. make fuzz FUZZ_OPTS=-seed=1.
#
# The same targets are also built with gcc around test/fuzz/replay.c
# (build/fuzz_replay_<target>, and build/asan/... under ASan+UBSan):
# test/fuzz.test replays every seed and regression input through them, so
# `make test` and `make test-asan` exercise them without clang.  The test
# rules' prerequisites were expanded when the Makefile read them, so adding
# to TEST_C here would not reach them; a recipe-less rule adds the
# prerequisites to those targets instead.

FUZZ_TARGETS       = blob decl query sqlblob
FUZZ_SECONDS      ?= 60
FUZZ_SHORT_SECONDS ?= 10
FUZZ_OPTS         ?=
FUZZ_CC           ?= clang
FUZZ_DEPS          = clang libclang-rt-14-dev
FUZZ_DIR           = build/fuzz
FUZZ_SAN           = -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS        = -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN)
# Shared helpers, #included by the targets (not compiled on their own).
FUZZ_COMMON        = test/fuzz/fuzz_sql.c test/fuzz/fuzz_fixup.c include/modelpack.h

FUZZ_BINS          = $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_DICTS         = $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%.dict)
FUZZ_EXT_OBJ       = $(SRC:ext/%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_REPLAY        = $(FUZZ_TARGETS:%=build/fuzz_replay_%)
FUZZ_REPLAY_OBJ    = $(SRC:ext/%.c=build/fuzz-replay/%.o)
FUZZ_REPLAY_ASAN   = $(FUZZ_TARGETS:%=build/asan/fuzz_replay_%)
FUZZ_ASAN_OBJ      = $(SRC:ext/%.c=build/asan/fuzz-replay/%.o)

.PHONY: fuzz fuzz-short fuzz-build fuzz-replay fuzz-deps
# Keep the objects of the pattern-rule chains between builds.
.SECONDARY: $(FUZZ_EXT_OBJ) $(FUZZ_REPLAY_OBJ) $(FUZZ_ASAN_OBJ) $(FUZZ_DICTS)

test: $(FUZZ_REPLAY)
test-asan: $(FUZZ_REPLAY_ASAN)

fuzz-deps:
	@sh scripts/deps.sh $(FUZZ_DEPS)

fuzz-build: $(FUZZ_BINS) $(FUZZ_DICTS)

fuzz-replay: $(FUZZ_REPLAY)

# ---- libFuzzer builds (clang) ----

$(FUZZ_DIR)/obj/%.o: ext/%.c $(HDR) | fuzz-deps
	@mkdir -p $(@D)
	$(FUZZ_CC) $(WARN) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

# blob needs only the header, no SQLite.
$(FUZZ_DIR)/fuzz_blob: test/fuzz/fuzz_blob.c $(FUZZ_COMMON) | fuzz-deps
	@mkdir -p $(@D)
	$(FUZZ_CC) $(WARN) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $<

$(FUZZ_DIR)/fuzz_%: test/fuzz/fuzz_%.c $(FUZZ_COMMON) $(FUZZ_EXT_OBJ) | fuzz-deps
	@mkdir -p $(@D)
	$(FUZZ_CC) $(WARN) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_EXT_OBJ) -lsqlite3 -lm

# A target's dictionary lives in its header comment, one "dict: " line each.
$(FUZZ_DIR)/%.dict: test/fuzz/fuzz_%.c
	@mkdir -p $(@D)
	sed -n 's/^dict: //p' $< > $@

# ---- replay drivers (gcc; plain and ASan+UBSan) ----

build/fuzz-replay/%.o: ext/%.c $(HDR)
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) -c -o $@ $<

build/fuzz_replay_blob: test/fuzz/fuzz_blob.c test/fuzz/replay.c $(FUZZ_COMMON)
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) -o $@ $< test/fuzz/replay.c

build/fuzz_replay_%: test/fuzz/fuzz_%.c test/fuzz/replay.c $(FUZZ_COMMON) $(FUZZ_REPLAY_OBJ)
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) -o $@ $< test/fuzz/replay.c $(FUZZ_REPLAY_OBJ) -lsqlite3 -lm

build/asan/fuzz-replay/%.o: ext/%.c $(HDR)
	@mkdir -p $(@D)
	gcc $(WARN) $(ASAN_FLAGS) -c -o $@ $<

build/asan/fuzz_replay_blob: test/fuzz/fuzz_blob.c test/fuzz/replay.c $(FUZZ_COMMON)
	@mkdir -p $(@D)
	gcc $(WARN) $(ASAN_FLAGS) -o $@ $< test/fuzz/replay.c

build/asan/fuzz_replay_%: test/fuzz/fuzz_%.c test/fuzz/replay.c $(FUZZ_COMMON) $(FUZZ_ASAN_OBJ)
	@mkdir -p $(@D)
	gcc $(WARN) $(ASAN_FLAGS) -o $@ $< test/fuzz/replay.c $(FUZZ_ASAN_OBJ) -lsqlite3 -lm

# ---- running ----

# $(call fuzz_run,SECONDS): each target in turn, one process at a time (the
# machine is shared).  Saved regression inputs run first (one that still
# fails is reported and fails the run, but the fuzzing goes on), then the
# fuzzer for SECONDS; a line per target gives execs, speed, coverage and the
# crash files it left.  Fails if any target found something.
define fuzz_run
fail=0; \
for t in $(FUZZ_TARGETS); do \
  bin=$(FUZZ_DIR)/fuzz_$$t; log=$(FUZZ_DIR)/$$t.log; art=$(FUZZ_DIR)/artifacts/$$t; \
  mkdir -p $(FUZZ_DIR)/corpus/$$t $$art; \
  before=$$(ls $$art | wc -l); \
  regress=$$(ls test/fuzz/regress/$$t-* 2>/dev/null); \
  if [ -n "$$regress" ] && ! FUZZ_FRESH=1 $$bin $$regress > $$log.regress 2>&1; then \
    echo "fuzz $$t: a saved regression input still fails (see $$log.regress):"; \
    grep -E -m3 'ERROR|runtime error|check failed|fuzz harness|Running:' $$log.regress; fail=1; \
  fi; \
  dict=; [ -s $(FUZZ_DIR)/$$t.dict ] && dict=-dict=$(FUZZ_DIR)/$$t.dict; \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  $$bin $$dict -max_total_time=$(1) -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix=$$art/ $(FUZZ_OPTS) \
    $(FUZZ_DIR)/corpus/$$t test/fuzz/corpus/$$t > $$log 2>&1; rc=$$?; \
  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log | tail -1); \
  rate=$$(sed -n 's/^stat::average_exec_per_sec: *//p' $$log | tail -1); \
  cov=$$(grep -o 'cov: [0-9]*' $$log | tail -1 | sed 's/cov: //'); \
  found=$$(( $$(ls $$art | wc -l) - before )); \
  printf 'fuzz %-8s %11s execs %8s execs/s  cov %-6s corpus %5s  findings %s\n' \
    $$t "$${execs:-?}" "$${rate:-?}" "$${cov:-?}" "$$(ls $(FUZZ_DIR)/corpus/$$t | wc -l)" $$found; \
  if [ $$rc -ne 0 ] || [ $$found -gt 0 ]; then \
    fail=1; echo "fuzz $$t: exit $$rc, log $$log, crash files in $$art/:"; ls $$art; \
    grep -E -A12 '^==[0-9]+==ERROR|runtime error|check failed|deadly signal|fuzz harness' $$log | head -40; \
  fi; \
done; \
exit $$fail
endef

fuzz: fuzz-build
	@$(call fuzz_run,$(FUZZ_SECONDS))

fuzz-short: fuzz-build
	@$(call fuzz_run,$(FUZZ_SHORT_SECONDS))
