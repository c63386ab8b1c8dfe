/*
 * bench_core.c -- packed rows, batches, modelpack_query and stored models
 * against plain column reads; peak memory of batched reads.
 *
 *   bench_core <extension-path-without-.so> [--rows N] [--rounds N]
 *              [--batch N] [--memory-rows N] [--memory | --no-memory]
 *
 * Timing.  Builds an in-memory database with djangobench's two models, Book
 * (id, title) and MultiField (id, field1..field10), filled like djangobench
 * fills them ('foobar_<i>', 'foobar_<i>_<j>', padded to 10-30 and 10-20
 * characters), declares a modelpack model over each, plus a second model
 * with `materialize = stored` over the same source, then times, for each
 * data set (a "group"):
 *
 *   plain    sqlite3_step + sqlite3_column_int64/_text/_bytes on the source
 *            table, every selected column read;
 *   packed   SELECT packed FROM <model>: one blob per row;
 *   batch    SELECT packed FROM <model> WHERE batch = 1000;
 *   query    SELECT packed FROM modelpack_query('<model>', '<plain SQL>'),
 *            per row and WHERE batch = 1000;
 *   stored   SELECT packed FROM <stored model>, per row and batched.
 *
 * Every packed contender validates each blob once with mp_view_open()
 * (expected fingerprint included), then reads every loaded field of every
 * record with the include/modelpack.h getters.  A "fetch" twin of each
 * contender steps the same statement and touches the blobs without decoding
 * them: packed minus fetch is the client's share of the time.
 *
 * All loops do the same per-value work (add the id, each text's length and
 * first byte into a checksum) and the checksums must agree with the plain
 * loop's, so no contender can be optimised away or skip work.  The third
 * group defers every MultiField field but field1 and compares with a plain
 * loop reading only id, field1.
 *
 * Within a group the contenders (plain included) run in an order that
 * rotates every round, after one uncounted warm-up round; the table shows
 * medians in ns per row and each contender's ratio to the plain loop of its
 * group, against its target where it has one: 1.2x for per-row packed
 * rows, 1.0x for batches read from the model, 0.5x for the stored
 * MultiField model.
 *
 * Memory.  Builds a MultiField table of --memory-rows rows (1,000,000) with
 * its model in a temporary database FILE, so the table lives on disk and
 * not in RAM, then measures, each in a fresh process of its own (this
 * program run again with a hidden option) so that no measurement inherits
 * another's heap: reading the first 100,000 rows and
 * then all rows (a) in batches through the model, each batch turned into
 * row objects and dropped, and (b) collected like fetchall(): every row
 * copied into memory and kept until the end.  Reported: the peak of
 * SQLite's heap above where it started (sqlite3_memory_highwater, which
 * includes the extension's buffers), the client's own peak allocations,
 * their sum, and the process's peak RSS growth (VmHWM after resetting it,
 * from /proc).  The batched read should stay flat from 100k to 1M rows.
 *
 * `make bench` runs both parts; examples/shell/demo.sh runs a smaller one.
 * bench/README.md says why the timing database is in memory.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, mkdtemp, fork */

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../include/modelpack.h"

#define TARGET_ROW 1.2    /* per-row packed blobs */
#define TARGET_BATCH 1.0  /* batches read from the model table */
#define TARGET_STORED 0.5 /* the stored MultiField model */
#define FLAT_LIMIT 1.10   /* batched peak at 1M rows / at 100k rows */
#define MAX_ROUNDS 101
#define MAX_CONT 6
#define NGROUP 3

/* ------------------------------------------------------------------ setup */

static uint64_t rng_state = 0x6d6f64656c7061ULL;

static uint64_t rnd(void) { /* splitmix64: same data on every run */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void die(sqlite3 *db, const char *what) {
  fprintf(stderr, "bench_core: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
  exit(1);
}

static void exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "bench_core: %s\n  -> %s\n", sql, err ? err : "?");
    exit(1);
  }
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) die(db, sql);
  return st;
}

/* djangobench's value, padded with random letters to a length in [lo, hi]. */
static int make_text(char *out, size_t cap, const char *base, int lo, int hi) {
  int n = snprintf(out, cap, "%s", base);
  int want = lo + (int)(rnd() % (uint64_t)(hi - lo + 1));
  while (n < want && (size_t)n + 1 < cap) out[n++] = (char)('a' + rnd() % 26);
  out[n] = 0;
  return n;
}

static void bind_text(sqlite3_stmt *st, int col, const char *base, int lo,
                      int hi) {
  char buf[64];
  int n = make_text(buf, sizeof buf, base, lo, hi);
  sqlite3_bind_text(st, col, buf, n, SQLITE_TRANSIENT);
}

static void fill_book(sqlite3 *db, long rows) {
  sqlite3_stmt *st = prepare(db, "INSERT INTO book_rows VALUES(?1, ?2)");
  char base[32];
  for (long i = 1; i <= rows; i++) {
    snprintf(base, sizeof base, "foobar_%ld", i);
    sqlite3_bind_int64(st, 1, i);
    bind_text(st, 2, base, 10, 30);
    if (sqlite3_step(st) != SQLITE_DONE) die(db, "insert book_rows");
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
}

static void fill_multifield(sqlite3 *db, long rows) {
  sqlite3_stmt *st = prepare(db,
      "INSERT INTO multifield_rows VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)");
  char base[48];
  for (long i = 1; i <= rows; i++) {
    sqlite3_bind_int64(st, 1, i);
    for (int j = 1; j <= 10; j++) {
      snprintf(base, sizeof base, "foobar_%ld_%d", i, j);
      bind_text(st, j + 1, base, 10, 20);
    }
    if (sqlite3_step(st) != SQLITE_DONE) die(db, "insert multifield_rows");
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
}

static const char BOOK_SCHEMA[] =
    "CREATE TABLE book_rows(id INTEGER PRIMARY KEY, title TEXT NOT NULL);";

static const char MF_SCHEMA[] =
    "CREATE TABLE multifield_rows(id INTEGER PRIMARY KEY,"
    " field1 TEXT NOT NULL, field2 TEXT NOT NULL, field3 TEXT NOT NULL,"
    " field4 TEXT NOT NULL, field5 TEXT NOT NULL, field6 TEXT NOT NULL,"
    " field7 TEXT NOT NULL, field8 TEXT NOT NULL, field9 TEXT NOT NULL,"
    " field10 TEXT NOT NULL);";

#define BOOK_FIELDS "id INTEGER PRIMARY KEY, title TEXT NOT NULL"
#define MF_FIELDS                                                          \
  "id INTEGER PRIMARY KEY, field1 TEXT NOT NULL, field2 TEXT NOT NULL,"    \
  " field3 TEXT NOT NULL, field4 TEXT NOT NULL, field5 TEXT NOT NULL,"     \
  " field6 TEXT NOT NULL, field7 TEXT NOT NULL, field8 TEXT NOT NULL,"     \
  " field9 TEXT NOT NULL, field10 TEXT NOT NULL"

/* The same fields twice over each source: packed from the source on every
 * read, and kept pre-packed (materialize = stored). */
static const char MODELS[] =
    "CREATE VIRTUAL TABLE book USING modelpack(source='book_rows', " BOOK_FIELDS ");"
    "CREATE VIRTUAL TABLE book_stored USING modelpack(source='book_rows',"
    " materialize=stored, " BOOK_FIELDS ");"
    "CREATE VIRTUAL TABLE multifield USING modelpack(source='multifield_rows', "
    MF_FIELDS ");"
    "CREATE VIRTUAL TABLE multifield_stored USING modelpack(source='multifield_rows',"
    " materialize=stored, " MF_FIELDS ");";

static sqlite3 *open_with_extension(const char *path, const char *ext) {
  sqlite3 *db = NULL;
  char *err = NULL;
  if (sqlite3_open(path, &db) != SQLITE_OK) die(db, "open");
  sqlite3_enable_load_extension(db, 1);
  if (sqlite3_load_extension(db, ext, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "bench_core: cannot load %s: %s\n", ext, err ? err : "?");
    exit(1);
  }
  return db;
}

static sqlite3 *open_db(const char *ext, long rows) {
  sqlite3 *db = open_with_extension(":memory:", ext);
  exec(db, BOOK_SCHEMA);
  exec(db, MF_SCHEMA);
  exec(db, "BEGIN");
  fill_book(db, rows);
  fill_multifield(db, rows);
  exec(db, "COMMIT");
  exec(db, MODELS); /* the stored models pack every row here, untimed */
  return db;
}

/* ------------------------------------------------------------ contenders */

/* One way of reading a group's rows through modelpack. */
typedef struct contender {
  char label[48];
  char sql[384];     /* SELECT packed ... */
  int batched;       /* blobs of many records (else exactly one each) */
  double target;     /* ratio to reach, 0 = none */
  sqlite3_stmt *st;
  double ns[MAX_ROUNDS];       /* decoded, per round */
  double fetch_ns[MAX_ROUNDS]; /* fetched undecoded, per round */
} contender;

/* One data set: a plain query and the contenders that read the same rows.
 * Field 0 is the INTEGER primary key, every other field is TEXT. */
typedef struct group {
  const char *label;
  const char *plain_sql; /* id, then the text columns read */
  const char *const *names; /* the model's fields, for the fingerprint */
  const unsigned char *types;
  int nfield;
  uint64_t mask;        /* loaded fields of every contender */
  uint64_t fingerprint; /* expected in every blob */
  sqlite3_stmt *plain;
  uint64_t checksum;    /* of the plain query, before timing */
  double plain_ns[MAX_ROUNDS];
  int ncont;
  contender c[MAX_CONT];
} group;

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The plain loop: what a binding does per row without modelpack. */
static uint64_t run_plain(sqlite3 *db, sqlite3_stmt *st, long *rows) {
  uint64_t acc = 0;
  int ncol = sqlite3_column_count(st), rc;
  long n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    acc += (uint64_t)sqlite3_column_int64(st, 0);
    for (int c = 1; c < ncol; c++) {
      const unsigned char *t = sqlite3_column_text(st, c);
      int len = sqlite3_column_bytes(st, c);
      acc += (uint64_t)len + (len ? t[0] : 0);
    }
    n++;
  }
  if (rc != SQLITE_DONE) die(db, "plain query");
  sqlite3_reset(st);
  *rows = n;
  return acc;
}

/* Validate one blob, then read each loaded field of each record. */
static uint64_t decode_blob(const group *g, const contender *c, const void *blob,
                            size_t len, long *rows) {
  mp_view v;
  const char *why = NULL;
  uint64_t acc = 0;
  if (!mp_view_open(&v, blob, len, g->fingerprint, &why)) {
    fprintf(stderr, "bench_core: %s, %s: blob refused: %s\n", g->label, c->label, why);
    exit(1);
  }
  if (!c->batched && v.count != 1) {
    fprintf(stderr, "bench_core: %s, %s: %u records in a per-row blob\n", g->label,
            c->label, v.count);
    exit(1);
  }
  for (uint32_t r = 0; r < v.count; r++) {
    acc += (uint64_t)mp_get_int64(&v, r, 0);
    for (int f = 1; f < g->nfield; f++) {
      if (!((g->mask >> f) & 1)) continue;
      uint32_t n;
      const uint8_t *t = mp_get_bytes(&v, r, f, &n);
      acc += (uint64_t)n + (n ? t[0] : 0);
    }
  }
  *rows += v.count;
  return acc;
}

static uint64_t run_packed(sqlite3 *db, const group *g, const contender *c, long *rows) {
  uint64_t acc = 0;
  int rc;
  *rows = 0;
  while ((rc = sqlite3_step(c->st)) == SQLITE_ROW)
    acc += decode_blob(g, c, sqlite3_column_blob(c->st, 0),
                       (size_t)sqlite3_column_bytes(c->st, 0), rows);
  if (rc != SQLITE_DONE) die(db, c->sql);
  sqlite3_reset(c->st);
  return acc;
}

/* Blobs fetched but not decoded: subtracted from the packed time it splits
 * the cost between SQLite + the extension and the client's decoding.  The
 * record count is read from the header unchecked, only to count rows. */
static uint64_t run_fetch(sqlite3 *db, const contender *c, long *rows) {
  uint64_t acc = 0;
  int rc;
  *rows = 0;
  while ((rc = sqlite3_step(c->st)) == SQLITE_ROW) {
    const uint8_t *blob = sqlite3_column_blob(c->st, 0);
    int len = sqlite3_column_bytes(c->st, 0);
    if (!blob || len < MP_HEADER_SIZE) die(db, "fetch: not a packed blob");
    acc += (uint64_t)len + blob[0];
    *rows += (long)mp_rd32(blob + MP_H_COUNT);
  }
  if (rc != SQLITE_DONE) die(db, c->sql);
  sqlite3_reset(c->st);
  return acc;
}

/* Run k of a group: 0 is plain, 1 + 2j contender j decoded, 2 + 2j its
 * fetch twin.  Each must see every row, and the decoding ones must produce
 * the plain loop's checksum, or the comparison would be meaningless. */
static double time_run(sqlite3 *db, group *g, int k, long want_rows) {
  const contender *c = k ? &g->c[(k - 1) / 2] : NULL;
  int fetch = k && (k - 1) % 2 == 1;
  long rows = 0;
  uint64_t acc;
  double t0 = now_ns();
  if (!c)
    acc = run_plain(db, g->plain, &rows);
  else if (fetch)
    acc = run_fetch(db, c, &rows);
  else
    acc = run_packed(db, g, c, &rows);
  double ns = now_ns() - t0;
  if (rows != want_rows || (!fetch && acc != g->checksum)) {
    fprintf(stderr, "bench_core: %s, %s%s: %ld rows (want %ld), checksum %" PRIx64
            " (want %" PRIx64 ")\n", g->label, c ? c->label : "plain",
            fetch ? " (fetch)" : "", rows, want_rows, acc, g->checksum);
    exit(1);
  }
  return ns / (double)want_rows;
}

static int nruns(const group *g) { return 1 + 2 * g->ncont; }

/* The runs go in an order that rotates from round to round, so none always
 * runs first or on the caches another left behind. */
static void run_round(sqlite3 *db, group *g, int round, long rows) {
  int n = nruns(g);
  for (int i = 0; i < n; i++) {
    int k = (round + i) % n;
    double ns = time_run(db, g, k, rows);
    if (k == 0)
      g->plain_ns[round] = ns;
    else if ((k - 1) % 2 == 0)
      g->c[(k - 1) / 2].ns[round] = ns;
    else
      g->c[(k - 1) / 2].fetch_ns[round] = ns;
  }
}

/* Untimed: sets the checksum, then runs everything once to warm up. */
static void warm_up(sqlite3 *db, group *g, long rows) {
  long seen = 0;
  g->checksum = run_plain(db, g->plain, &seen);
  for (int k = 0; k < nruns(g); k++) time_run(db, g, k, rows);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(const double *in, int n) {
  double v[MAX_ROUNDS];
  memcpy(v, in, (size_t)n * sizeof *v);
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ------------------------------------------------------------ the groups */

static const char *const BOOK_NAMES[] = {"id", "title"};
static const char *const MF_NAMES[] = {"id", "field1", "field2", "field3",
                                       "field4", "field5", "field6", "field7",
                                       "field8", "field9", "field10"};
/* INTEGER then TEXTs: MultiField's type list serves Book too. */
static const unsigned char MF_TYPES[] = {MP_INTEGER, MP_TEXT, MP_TEXT, MP_TEXT,
                                         MP_TEXT, MP_TEXT, MP_TEXT, MP_TEXT,
                                         MP_TEXT, MP_TEXT, MP_TEXT};

static void add(group *g, const char *label, int batched, double target,
                const char *fmt, ...) {
  contender *c = &g->c[g->ncont++];
  va_list ap;
  snprintf(c->label, sizeof c->label, "%s", label);
  va_start(ap, fmt);
  vsnprintf(c->sql, sizeof c->sql, fmt, ap);
  va_end(ap);
  c->batched = batched;
  c->target = target;
}

/* The six ways of reading one group, `where` narrowing the model reads
 * (a mask), `qsql` the plain query handed to modelpack_query. */
static void add_contenders(group *g, const char *model, const char *where,
                           long batch, double stored_target) {
  char bl[48];
  const char *sep = *where ? " AND " : "";
  add(g, "packed, one row per blob", 0, TARGET_ROW, "SELECT packed FROM %s%s%s",
      model, *where ? " WHERE " : "", where);
  snprintf(bl, sizeof bl, "packed, batch = %ld", batch);
  add(g, bl, 1, TARGET_BATCH, "SELECT packed FROM %s WHERE %s%sbatch = %ld", model,
      where, sep, batch);
  add(g, "modelpack_query, per row", 0, 0,
      "SELECT packed FROM modelpack_query('%s', '%s')", model, g->plain_sql);
  snprintf(bl, sizeof bl, "modelpack_query, batch = %ld", batch);
  add(g, bl, 1, 0, "SELECT packed FROM modelpack_query('%s', '%s') WHERE batch = %ld",
      model, g->plain_sql, batch);
  add(g, "stored, one row per blob", 0, stored_target,
      "SELECT packed FROM %s_stored%s%s", model, *where ? " WHERE " : "", where);
  snprintf(bl, sizeof bl, "stored, batch = %ld", batch);
  add(g, bl, 1, stored_target, "SELECT packed FROM %s_stored WHERE %s%sbatch = %ld",
      model, where, sep, batch);
}

static void setup_groups(sqlite3 *db, group *g, long batch) {
  memset(g, 0, NGROUP * sizeof *g);
  g[0].label = "Book (id, title)";
  g[0].plain_sql = "SELECT id, title FROM book_rows";
  g[0].names = BOOK_NAMES;
  g[0].nfield = 2;
  g[0].mask = 3;
  add_contenders(&g[0], "book", "", batch, 0);
  g[1].label = "MultiField (id + 10 TEXT)";
  g[1].plain_sql = "SELECT id, field1, field2, field3, field4, field5, field6,"
                   " field7, field8, field9, field10 FROM multifield_rows";
  g[1].names = MF_NAMES;
  g[1].nfield = 11;
  g[1].mask = mp_all_fields(11);
  add_contenders(&g[1], "multifield", "", batch, TARGET_STORED);
  g[2].label = "MultiField deferred (id, field1)";
  g[2].plain_sql = "SELECT id, field1 FROM multifield_rows";
  g[2].names = MF_NAMES;
  g[2].nfield = 11;
  g[2].mask = 3;
  /* modelpack_query defers what its result lacks: the plain SQL suffices. */
  add_contenders(&g[2], "multifield", "mask = 3", batch, 0);
  for (int i = 0; i < NGROUP; i++) {
    g[i].types = MF_TYPES;
    g[i].fingerprint = mp_fingerprint(g[i].names, g[i].types, g[i].nfield, g[i].mask);
    g[i].plain = prepare(db, g[i].plain_sql);
    for (int j = 0; j < g[i].ncont; j++) g[i].c[j].st = prepare(db, g[i].c[j].sql);
  }
}

/* --tsv FILE: the same figures as tab-separated rows for bench/report.py,
 * which folds them into `make bench`'s one table:
 * section, case, contender, value, unit, ratio, target ("" if none). */
static FILE *tsv;

static void tsv_row(const char *section, const char *cas, const char *who, double value,
                    const char *unit, double ratio, double target) {
  if (!tsv) return;
  fprintf(tsv, "%s\t%s\t%s\t%.3f\t%s\t%.4f\t", section, cas, who, value, unit, ratio);
  if (target > 0) fprintf(tsv, "<=%.2f", target);
  fputc('\n', tsv);
}

static void print_table(const group *g, int rounds, long rows) {
  printf("\n%-36s %9s %9s %8s  %s\n", "rows decoded", "ns/row", "decode", "ratio",
         "target: ratio to plain");
  for (int i = 0; i < NGROUP; i++) {
    double plain = median(g[i].plain_ns, rounds);
    printf("%s\n  %-34s %9.1f %9s %7.2fx\n", g[i].label, "plain sqlite3_column_*", plain,
           "-", 1.0);
    tsv_row("C", g[i].label, "plain sqlite3_column_*", plain, "ns/row", 1.0, 0);
    for (int j = 0; j < g[i].ncont; j++) {
      const contender *c = &g[i].c[j];
      double ns = median(c->ns, rounds), fetch = median(c->fetch_ns, rounds);
      double ratio = ns / plain;
      printf("  %-34s %9.1f %9.1f %7.2fx", c->label, ns, ns - fetch, ratio);
      tsv_row("C", g[i].label, c->label, ns, "ns/row", ratio, c->target);
      if (c->target > 0)
        printf("  <= %.2f %s", c->target, ratio <= c->target ? "met" : "NOT met");
      putchar('\n');
    }
  }
  printf("\n%ld rows per query, median of %d rounds, ns per row; ratio = the\n"
         "contender's time / the plain loop's of its group.  decode = the time\n"
         "minus fetching the same blobs undecoded: the client's share\n"
         "(mp_view_open + getters).  Models: 'book', 'multifield' pack from the\n"
         "source; '<model>_stored' are the same fields with materialize = stored.\n",
         rows, rounds);
}

static const char *module_version(sqlite3 *db) {
  static char buf[32];
  sqlite3_stmt *st = prepare(db, "SELECT modelpack_version()");
  snprintf(buf, sizeof buf, "%s",
           sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : "?");
  sqlite3_finalize(st);
  return buf;
}

static void bench_time(const char *ext, long rows, int rounds, long batch) {
  double t0 = now_ns();
  sqlite3 *db = open_db(ext, rows);
  group g[NGROUP];
  setup_groups(db, g, batch);
  printf("bench_core: SQLite %s, modelpack %s, in-memory database, %ld rows"
         " (built in %.1f s)\n", sqlite3_libversion(), module_version(db), rows,
         (now_ns() - t0) / 1e9);
  fflush(stdout);
  for (int i = 0; i < NGROUP; i++) {
    warm_up(db, &g[i], rows);
    for (int r = 0; r < rounds; r++) run_round(db, &g[i], r, rows);
  }
  print_table(g, rounds, rows);
  for (int i = 0; i < NGROUP; i++) {
    sqlite3_finalize(g[i].plain);
    for (int j = 0; j < g[i].ncont; j++) sqlite3_finalize(g[i].c[j].st);
  }
  sqlite3_close(db);
}

/* ---------------------------------------------------------------- memory */

/* The client's own heap: every byte it allocates goes through these. */
static size_t client_now, client_peak;

static void *client_alloc(size_t n) {
  void *p = malloc(n);
  if (!p) {
    fprintf(stderr, "bench_core: out of memory\n");
    exit(1);
  }
  client_now += n;
  if (client_now > client_peak) client_peak = client_now;
  return p;
}

static void client_free(void *p, size_t n) {
  free(p);
  client_now -= n;
}

/* A row as a client holds it: id and its ten strings, copied out of SQLite
 * (or out of the blob), in one allocation. */
typedef struct mf_row {
  int64_t id;
  size_t size; /* of this allocation */
  const char *f[10];
} mf_row;

static mf_row *row_new(int64_t id, const uint8_t *const *text, const uint32_t *len) {
  size_t size = sizeof(mf_row);
  for (int j = 0; j < 10; j++) size += len[j] + 1;
  mf_row *r = client_alloc(size);
  char *s = (char *)(r + 1);
  r->id = id;
  r->size = size;
  for (int j = 0; j < 10; j++) {
    memcpy(s, text[j], len[j]);
    s[len[j]] = 0;
    r->f[j] = s;
    s += len[j] + 1;
  }
  return r;
}

static uint64_t row_sum(const mf_row *r) {
  uint64_t acc = (uint64_t)r->id;
  for (int j = 0; j < 10; j++) acc += (uint64_t)(unsigned char)r->f[j][0];
  return acc;
}

/* (a) Batches through the model: each batch becomes row objects, which are
 * used and dropped before the next batch, like a loop over a generator. */
static uint64_t read_batched(sqlite3 *db, long upto, long batch, long *rows) {
  uint64_t fp = mp_fingerprint(MF_NAMES, MF_TYPES, 11, mp_all_fields(11)), acc = 0;
  char sql[160];
  snprintf(sql, sizeof sql,
           "SELECT packed FROM multifield WHERE id <= ?1 AND batch = %ld", batch);
  sqlite3_stmt *st = prepare(db, sql);
  sqlite3_bind_int64(st, 1, upto);
  mf_row **objs = NULL;
  size_t cap = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    mp_view v;
    const char *why = NULL;
    if (!mp_view_open(&v, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                      fp, &why)) {
      fprintf(stderr, "bench_core: memory: batch refused: %s\n", why);
      exit(1);
    }
    if (v.count > cap) {
      if (objs) client_free(objs, cap * sizeof *objs);
      cap = v.count;
      objs = client_alloc(cap * sizeof *objs);
    }
    for (uint32_t r = 0; r < v.count; r++) {
      const uint8_t *text[10];
      uint32_t len[10];
      for (int j = 0; j < 10; j++) text[j] = mp_get_bytes(&v, r, j + 1, &len[j]);
      objs[r] = row_new(mp_get_int64(&v, r, 0), text, len);
    }
    for (uint32_t r = 0; r < v.count; r++) {
      acc += row_sum(objs[r]);
      client_free(objs[r], objs[r]->size);
    }
    *rows += v.count;
  }
  if (rc != SQLITE_DONE) die(db, sql);
  sqlite3_finalize(st);
  if (objs) client_free(objs, cap * sizeof *objs);
  return acc;
}

/* (b) fetchall(): every row of the plain query copied and kept. */
static uint64_t read_fetchall(sqlite3 *db, long upto, long *rows) {
  sqlite3_stmt *st = prepare(db,
      "SELECT id, field1, field2, field3, field4, field5, field6, field7, field8,"
      " field9, field10 FROM multifield_rows WHERE id <= ?1");
  sqlite3_bind_int64(st, 1, upto);
  mf_row **all = NULL;
  size_t n = 0, cap = 0;
  uint64_t acc = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const uint8_t *text[10];
    uint32_t len[10];
    for (int j = 0; j < 10; j++) {
      text[j] = sqlite3_column_text(st, j + 1);
      len[j] = (uint32_t)sqlite3_column_bytes(st, j + 1);
    }
    if (n == cap) { /* grows like a list: doubling, old array freed */
      size_t ncap = cap ? 2 * cap : 1024;
      mf_row **bigger = client_alloc(ncap * sizeof *bigger);
      if (n) memcpy(bigger, all, n * sizeof *all);
      if (all) client_free(all, cap * sizeof *all);
      all = bigger;
      cap = ncap;
    }
    all[n++] = row_new(sqlite3_column_int64(st, 0), text, len);
  }
  if (rc != SQLITE_DONE) die(db, "fetchall");
  sqlite3_finalize(st);
  for (size_t i = 0; i < n; i++) { /* the rows are used only now */
    acc += row_sum(all[i]);
    client_free(all[i], all[i]->size);
  }
  if (all) client_free(all, cap * sizeof *all);
  *rows = (long)n;
  return acc;
}

/* VmHWM or VmRSS from /proc/self/status in bytes, or -1. */
static long long proc_status_kb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long long kb = -1;
  size_t klen = strlen(key);
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      kb = strtoll(line + klen + 1, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

/* Resets the peak RSS to the current RSS (Linux >= 4.0). */
static int reset_peak_rss(void) {
  FILE *f = fopen("/proc/self/clear_refs", "w");
  if (!f) return 0;
  int ok = fputs("5", f) >= 0;
  return fclose(f) == 0 && ok;
}

typedef struct mem_result {
  long rows;
  uint64_t checksum;
  long long sqlite_peak; /* bytes above the start */
  long long client_peak;
  long long rss_peak;    /* bytes above the start, or -1 */
  double seconds;
} mem_result;

/* One measurement, in the calling (child) process. */
static mem_result measure(const char *ext, const char *path, int batched, long upto,
                          long batch) {
  mem_result res;
  memset(&res, 0, sizeof res);
  sqlite3 *db = open_with_extension(path, ext);
  long long rss0 = proc_status_kb("VmRSS");
  int rss_ok = reset_peak_rss() && rss0 >= 0;
  sqlite3_int64 base = sqlite3_memory_used();
  sqlite3_memory_highwater(1);
  client_now = client_peak = 0;
  double t0 = now_ns();
  res.checksum = batched ? read_batched(db, upto, batch, &res.rows)
                         : read_fetchall(db, upto, &res.rows);
  res.seconds = (now_ns() - t0) / 1e9;
  res.sqlite_peak = (long long)(sqlite3_memory_highwater(0) - base);
  res.client_peak = (long long)client_peak;
  long long hwm = proc_status_kb("VmHWM");
  res.rss_peak = rss_ok && hwm >= 0 ? (hwm - rss0) * 1024 : -1;
  sqlite3_close(db);
  return res;
}

/* The child's side: one measurement, printed as one line for the parent. */
static int memory_child(const char *ext, int argc, char **argv) {
  if (argc != 7) return 2;
  mem_result r = measure(ext, argv[3], atoi(argv[4]), atol(argv[5]), atol(argv[6]));
  printf("%ld %" PRIu64 " %lld %lld %lld %.6f\n", r.rows, r.checksum, r.sqlite_peak,
         r.client_peak, r.rss_peak, r.seconds);
  return fflush(stdout) == 0 ? 0 : 1;
}

/* Runs measure() in a fresh process (this program, exec'ed again with the
 * hidden --memory-child option): a forked copy would inherit this process's
 * heap, and reusing its freed pages would hide the child's RSS growth. */
static mem_result measure_in_child(const char *self, const char *ext, const char *path,
                                   int batched, long upto, long batch) {
  int fd[2];
  char b[8], u[32], n[32], out[256];
  mem_result res;
  memset(&res, 0, sizeof res);
  snprintf(b, sizeof b, "%d", batched);
  snprintf(u, sizeof u, "%ld", upto);
  snprintf(n, sizeof n, "%ld", batch);
  fflush(stdout);
  if (pipe(fd) != 0) {
    perror("bench_core: pipe");
    exit(1);
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("bench_core: fork");
    exit(1);
  }
  if (pid == 0) {
    dup2(fd[1], STDOUT_FILENO);
    close(fd[0]);
    close(fd[1]);
    execl("/proc/self/exe", self, ext, "--memory-child", path, b, u, n, (char *)NULL);
    execl(self, self, ext, "--memory-child", path, b, u, n, (char *)NULL);
    perror("bench_core: exec");
    _exit(127);
  }
  close(fd[1]);
  size_t got = 0;
  ssize_t k;
  while (got + 1 < sizeof out && (k = read(fd[0], out + got, sizeof out - 1 - got)) != 0) {
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) break;
    got += (size_t)k;
  }
  out[got] = 0;
  close(fd[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
      sscanf(out, "%ld %" SCNu64 " %lld %lld %lld %lf", &res.rows, &res.checksum,
             &res.sqlite_peak, &res.client_peak, &res.rss_peak, &res.seconds) != 6) {
    fprintf(stderr, "bench_core: memory measurement failed in the child process: %s\n", out);
    exit(1);
  }
  return res;
}

static double mib(long long bytes) { return (double)bytes / (1024.0 * 1024.0); }

static void print_mem(const char *label, const mem_result *r) {
  printf("%-30s %9ld %10.2f %10.2f %10.2f ", label, r->rows, mib(r->sqlite_peak),
         mib(r->client_peak), mib(r->sqlite_peak + r->client_peak));
  if (r->rss_peak >= 0)
    printf("%10.2f", mib(r->rss_peak));
  else
    printf("%10s", "n/a");
  printf(" %7.2f\n", r->seconds);
}

/* The temporary database and its directory, removed however we exit. */
static char mem_dir[512], mem_path[600];

static void remove_memory_db(void) {
  if (mem_path[0]) unlink(mem_path);
  if (mem_dir[0]) rmdir(mem_dir);
}

static void bench_memory(const char *self, const char *ext, long rows, long batch) {
  const char *tmp = getenv("TMPDIR");
  snprintf(mem_dir, sizeof mem_dir, "%s/bench_core.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(mem_dir)) {
    perror("bench_core: mkdtemp");
    mem_dir[0] = 0;
    exit(1);
  }
  snprintf(mem_path, sizeof mem_path, "%s/memory.db", mem_dir);
  atexit(remove_memory_db);
  const char *path = mem_path;
  long small = rows < 100000 ? rows : 100000;

  double t0 = now_ns();
  sqlite3 *db = open_with_extension(path, ext);
  exec(db, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;");
  exec(db, MF_SCHEMA);
  exec(db, "BEGIN");
  fill_multifield(db, rows);
  exec(db, "COMMIT");
  exec(db, "CREATE VIRTUAL TABLE multifield USING modelpack(source='multifield_rows', "
           MF_FIELDS ")");
  sqlite3_close(db);
  printf("\nbench_core --memory: MultiField, %ld rows in a temporary database file"
         " (built in %.1f s)\n", rows, (now_ns() - t0) / 1e9);

  mem_result bs = measure_in_child(self, ext, path, 1, small, batch);
  mem_result bl = measure_in_child(self, ext, path, 1, rows, batch);
  mem_result fs = measure_in_child(self, ext, path, 0, small, batch);
  mem_result fl = measure_in_child(self, ext, path, 0, rows, batch);
  if (bs.checksum != fs.checksum || bl.checksum != fl.checksum || bl.rows != rows ||
      fl.rows != rows || bs.rows != small || fs.rows != small) {
    fprintf(stderr, "bench_core: memory: the two reads disagree (rows %ld/%ld, %ld/%ld)\n",
            bs.rows, fs.rows, bl.rows, fl.rows);
    exit(1);
  }

  char lb[64];
  printf("\n%-30s %9s %10s %10s %10s %10s %7s\n", "read", "rows", "SQLite MiB",
         "client MiB", "total MiB", "RSS MiB", "seconds");
  snprintf(lb, sizeof lb, "batches of %ld, model", batch);
  print_mem(lb, &bs);
  print_mem(lb, &bl);
  print_mem("fetchall(), plain rows", &fs);
  print_mem("fetchall(), plain rows", &fl);
  double flat = (double)(bl.sqlite_peak + bl.client_peak) /
                (double)(bs.sqlite_peak + bs.client_peak);
  double grow = (double)(fl.sqlite_peak + fl.client_peak) /
                (double)(fs.sqlite_peak + fs.client_peak);
  char cas[64];
  snprintf(cas, sizeof cas, "peak memory, %ld rows streamed", rows);
  tsv_row("memory", cas, lb, mib(bl.sqlite_peak + bl.client_peak), "MiB", 1.0, 0);
  tsv_row("memory", cas, "fetchall(), plain rows", mib(fl.sqlite_peak + fl.client_peak), "MiB",
          (double)(fl.sqlite_peak + fl.client_peak) / (double)(bl.sqlite_peak + bl.client_peak),
          0);
  snprintf(cas, sizeof cas, "batched peak, %ld / %ld rows (flat)", rows, small);
  tsv_row("memory", cas, lb, flat, "x", flat, FLAT_LIMIT);
  printf("\nbatched peak, %ld rows / %ld rows: %.2fx  target: <= %.2f (flat) %s\n", rows,
         small, flat, FLAT_LIMIT, flat <= FLAT_LIMIT ? "met" : "NOT met");
  printf("fetchall peak, %ld rows / %ld rows: %.2fx; at %ld rows fetchall holds %.1fx"
         " the batched peak\n", rows, small, grow, rows,
         (double)(fl.sqlite_peak + fl.client_peak) / (double)(bl.sqlite_peak + bl.client_peak));
  printf("\nPeaks are above where each read started, each read in a fresh\n"
         "process.  SQLite = sqlite3_memory_highwater (page cache, statements, the\n"
         "extension's batch buffer, the blob handed out); client = this program's\n"
         "own allocations (row objects, the fetchall list); total = their sum;\n"
         "RSS = VmHWM growth after resetting it (whole process, allocator included).\n");

}

/* ------------------------------------------------------------------- main */

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s <extension-path-without-.so> [--rows N] [--rounds N] [--batch N]\n"
          "          [--memory-rows N] [--memory | --no-memory] [--tsv FILE]\n",
          argv0);
  exit(2);
}

static long arg_long(int argc, char **argv, const char *name, long dflt, long lo, long hi) {
  for (int i = 2; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) {
      long v = strtol(argv[i + 1], NULL, 10);
      return v < lo ? lo : v > hi ? hi : v;
    }
  return dflt;
}

static int arg_flag(int argc, char **argv, const char *name) {
  for (int i = 2; i < argc; i++)
    if (strcmp(argv[i], name) == 0) return 1;
  return 0;
}

static void check_args(int argc, char **argv) {
  static const char *const valued[] = {"--rows", "--rounds", "--batch", "--memory-rows",
                                       "--tsv"};
  for (int i = 2; i < argc; i++) {
    int ok = strcmp(argv[i], "--memory") == 0 || strcmp(argv[i], "--no-memory") == 0;
    for (int k = 0; k < 5 && !ok; k++)
      if (strcmp(argv[i], valued[k]) == 0 && i + 1 < argc) ok = 1, i++;
    if (!ok) usage(argv[0]);
  }
}

int main(int argc, char **argv) {
  if (argc < 2 || argv[1][0] == '-') usage(argv[0]);
  if (argc > 2 && strcmp(argv[2], "--memory-child") == 0) return memory_child(argv[1], argc, argv);
  check_args(argc, argv);
  long rows = arg_long(argc, argv, "--rows", 100000, 1, 100000000);
  int rounds = (int)arg_long(argc, argv, "--rounds", 7, 1, MAX_ROUNDS);
  long batch = arg_long(argc, argv, "--batch", 1000, 1, 1000000);
  long mem_rows = arg_long(argc, argv, "--memory-rows", 1000000, 1000, 100000000);
  for (int i = 2; i + 1 < argc; i++)
    if (strcmp(argv[i], "--tsv") == 0 && !(tsv = fopen(argv[i + 1], "w"))) {
      perror(argv[i + 1]);
      return 1;
    }
  int memory_only = arg_flag(argc, argv, "--memory");
  int no_memory = arg_flag(argc, argv, "--no-memory");
  if (memory_only && no_memory) usage(argv[0]);
  if (!memory_only) bench_time(argv[1], rows, rounds, batch);
  if (!no_memory) bench_memory(argv[0], argv[1], mem_rows, batch);
  if (tsv) fclose(tsv);
  return 0;
}
