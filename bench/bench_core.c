/*
 * bench_core.c -- packed rows vs plain column reads, the first
 * benchmark.
 *
 *   bench_core <extension-path-without-.so> [--rows N] [--rounds N]
 *
 * Builds an in-memory database with djangobench's two models, Book (id,
 * title) and MultiField (id, field1..field10), filled like djangobench fills
 * them ('foobar_<i>', 'foobar_<i>_<j>', padded to 10-30 and 10-20
 * characters), declares a modelpack model over each, then times:
 *
 *   plain   sqlite3_step + sqlite3_column_int64/_text/_bytes on the source
 *           table, every selected column read;
 *   packed  SELECT packed FROM <model>, each blob validated with
 *           mp_view_open() (expected fingerprint included) and every loaded
 *           field read with the include/modelpack.h getters;
 *   fetch   the same packed query, blobs fetched but not decoded: only used
 *           to split the packed time into the extension's and the client's.
 *
 * Both loops do the same per-value work (add the id, each text's length and
 * first byte into a checksum) and the checksums must agree, so neither side
 * can be optimised away or skip work.  A third row defers every MultiField
 * field but field1 and compares with a plain loop reading only id, field1.
 *
 * Contenders rotate order each round after one uncounted warm-up round;
 * the table shows medians in ns per row and the ratio packed/plain against
 * the target of 1.2x.  `make bench` runs it; examples/shell/demo.sh runs a
 * smaller one.  bench/README.md says why the database is in memory.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../include/modelpack.h"

#define TARGET_RATIO 1.2
#define MAX_ROUNDS 101

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

static const char SCHEMA[] =
    "CREATE TABLE book_rows(id INTEGER PRIMARY KEY, title TEXT NOT NULL);"
    "CREATE TABLE multifield_rows(id INTEGER PRIMARY KEY,"
    " field1 TEXT NOT NULL, field2 TEXT NOT NULL, field3 TEXT NOT NULL,"
    " field4 TEXT NOT NULL, field5 TEXT NOT NULL, field6 TEXT NOT NULL,"
    " field7 TEXT NOT NULL, field8 TEXT NOT NULL, field9 TEXT NOT NULL,"
    " field10 TEXT NOT NULL);";

static const char MODELS[] =
    "CREATE VIRTUAL TABLE book USING modelpack(source='book_rows',"
    " id INTEGER PRIMARY KEY, title TEXT NOT NULL);"
    "CREATE VIRTUAL TABLE multifield USING modelpack(source='multifield_rows',"
    " id INTEGER PRIMARY KEY, field1 TEXT NOT NULL, field2 TEXT NOT NULL,"
    " field3 TEXT NOT NULL, field4 TEXT NOT NULL, field5 TEXT NOT NULL,"
    " field6 TEXT NOT NULL, field7 TEXT NOT NULL, field8 TEXT NOT NULL,"
    " field9 TEXT NOT NULL, field10 TEXT NOT NULL);";

static sqlite3 *open_db(const char *ext, long rows) {
  sqlite3 *db = NULL;
  char *err = NULL;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) die(db, "open");
  sqlite3_enable_load_extension(db, 1);
  if (sqlite3_load_extension(db, ext, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "bench_core: cannot load %s: %s\n", ext, err ? err : "?");
    exit(1);
  }
  exec(db, SCHEMA);
  exec(db, "BEGIN");
  fill_book(db, rows);
  fill_multifield(db, rows);
  exec(db, "COMMIT");
  exec(db, MODELS);
  return db;
}

/* ------------------------------------------------------------ contenders */

/* One benchmark row: a plain query and a packed query over the same data.
 * Field 0 is the INTEGER primary key, every other field is TEXT. */
typedef struct bench {
  const char *label;
  const char *plain_sql;  /* id, then the text columns read */
  const char *packed_sql; /* SELECT packed ... */
  const char *const *names; /* the model's fields, for the fingerprint */
  const unsigned char *types;
  int nfield;
  uint64_t mask;          /* loaded fields of the packed query */
  uint64_t fingerprint;   /* expected in every blob */
  sqlite3_stmt *plain, *packed;
  uint64_t checksum;      /* of the plain query, before timing */
  double ns[3][MAX_ROUNDS]; /* per contender (PLAIN, PACKED, FETCH), per round */
} bench;

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

/* The packed loop: validate each blob, then read each loaded field. */
static uint64_t run_packed(sqlite3 *db, const bench *b, long *rows) {
  sqlite3_stmt *st = b->packed;
  uint64_t acc = 0;
  long n = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    mp_view v;
    const char *why = NULL;
    const void *blob = sqlite3_column_blob(st, 0);
    if (!mp_view_open(&v, blob, (size_t)sqlite3_column_bytes(st, 0), b->fingerprint, &why)) {
      fprintf(stderr, "bench_core: %s: blob refused: %s\n", b->label, why);
      exit(1);
    }
    acc += (uint64_t)mp_get_int64(&v, 0, 0);
    for (int f = 1; f < b->nfield; f++) {
      if (!((b->mask >> f) & 1)) continue;
      uint32_t len;
      const uint8_t *t = mp_get_bytes(&v, 0, f, &len);
      acc += (uint64_t)len + (len ? t[0] : 0);
    }
    n++;
  }
  if (rc != SQLITE_DONE) die(db, "packed query");
  sqlite3_reset(st);
  *rows = n;
  return acc;
}

/* Packed rows fetched but not decoded: subtracted from the packed time it
 * splits the cost between the extension and the client's decoding. */
static uint64_t run_fetch(sqlite3 *db, sqlite3_stmt *st, long *rows) {
  uint64_t acc = 0;
  long n = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    acc += (uint64_t)sqlite3_column_bytes(st, 0) + (sqlite3_column_blob(st, 0) != NULL);
    n++;
  }
  if (rc != SQLITE_DONE) die(db, "packed query");
  sqlite3_reset(st);
  *rows = n;
  return acc;
}

enum { PLAIN, PACKED, FETCH, NKIND };

/* Time one contender: it must see every row and produce the checksum of
 * the untimed reference run, or the comparison would be meaningless. */
static double time_one(sqlite3 *db, bench *b, int kind, long want_rows) {
  static const char *const names[] = {"plain", "packed", "fetch"};
  long rows = 0;
  uint64_t acc;
  double t0 = now_ns();
  if (kind == PLAIN)
    acc = run_plain(db, b->plain, &rows);
  else if (kind == PACKED)
    acc = run_packed(db, b, &rows);
  else
    acc = run_fetch(db, b->packed, &rows);
  double ns = now_ns() - t0;
  if (rows != want_rows || (kind != FETCH && acc != b->checksum)) {
    fprintf(stderr, "bench_core: %s %s: %ld rows (want %ld), checksum %" PRIx64
            " (want %" PRIx64 ")\n", b->label, names[kind], rows, want_rows,
            acc, b->checksum);
    exit(1);
  }
  return ns / (double)want_rows;
}

/* The contenders run in a rotating order, so none always runs first or on
 * the caches another left behind. */
static void run_round(sqlite3 *db, bench *b, int round, long rows) {
  for (int k = 0; k < NKIND; k++) {
    int kind = (round + k) % NKIND;
    b->ns[kind][round] = time_one(db, b, kind, rows);
  }
}

/* Untimed: sets the checksum, then runs every contender once to warm up. */
static void warm_up(sqlite3 *db, bench *b, long rows) {
  long seen = 0;
  b->checksum = run_plain(db, b->plain, &seen);
  for (int kind = 0; kind < NKIND; kind++) time_one(db, b, kind, rows);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ------------------------------------------------------------------- main */

static const char *const BOOK_NAMES[] = {"id", "title"};
static const char *const MF_NAMES[] = {"id", "field1", "field2", "field3",
                                       "field4", "field5", "field6", "field7",
                                       "field8", "field9", "field10"};
static const unsigned char MF_TYPES[] = {MP_INTEGER, MP_TEXT, MP_TEXT, MP_TEXT,
                                         MP_TEXT, MP_TEXT, MP_TEXT, MP_TEXT,
                                         MP_TEXT, MP_TEXT, MP_TEXT};

static void setup_benches(sqlite3 *db, bench *b) {
  memset(b, 0, 3 * sizeof *b);
  b[0].label = "Book (id, title)";
  b[0].plain_sql = "SELECT id, title FROM book_rows";
  b[0].packed_sql = "SELECT packed FROM book";
  b[0].names = BOOK_NAMES;
  b[0].nfield = 2;
  b[0].mask = 3;
  b[1].label = "MultiField (id + 10 TEXT)";
  b[1].plain_sql = "SELECT id, field1, field2, field3, field4, field5, field6,"
                   " field7, field8, field9, field10 FROM multifield_rows";
  b[1].packed_sql = "SELECT packed FROM multifield";
  b[1].names = MF_NAMES;
  b[1].nfield = 11;
  b[1].mask = mp_all_fields(11);
  b[2].label = "MultiField deferred (id, field1)";
  b[2].plain_sql = "SELECT id, field1 FROM multifield_rows";
  b[2].packed_sql = "SELECT packed FROM multifield"
                    " WHERE mask = modelpack_mask('multifield', 'id,field1')";
  b[2].names = MF_NAMES;
  b[2].nfield = 11;
  b[2].mask = 3;
  for (int i = 0; i < 3; i++) {
    /* INTEGER then TEXTs: MultiField's type list serves Book too. */
    b[i].types = MF_TYPES;
    b[i].fingerprint = mp_fingerprint(b[i].names, b[i].types, b[i].nfield, b[i].mask);
    b[i].plain = prepare(db, b[i].plain_sql);
    b[i].packed = prepare(db, b[i].packed_sql);
  }
}

static void print_table(bench *b, int n, int rounds, long rows) {
  printf("\n%-34s %12s %13s %13s %7s  target: ratio <= %.2f\n", "rows decoded",
         "plain ns/row", "packed ns/row", "decode ns/row", "ratio", TARGET_RATIO);
  for (int i = 0; i < n; i++) {
    double plain = median(b[i].ns[0], rounds);
    double packed = median(b[i].ns[1], rounds);
    double fetch = median(b[i].ns[2], rounds);
    double ratio = packed / plain;
    printf("%-34s %12.1f %13.1f %13.1f %6.2fx  %s\n", b[i].label, plain,
           packed, packed - fetch, ratio, ratio <= TARGET_RATIO ? "met" : "NOT met");
  }
  printf("\n%ld rows per query, median of %d rounds; ratio = packed/plain.\n"
         "decode = packed minus fetching the same blobs undecoded: the client's\n"
         "share (mp_view_open + getters) of the packed time.\n",
         rows, rounds);
}

static long arg_long(int argc, char **argv, const char *name, long dflt, long lo, long hi) {
  for (int i = 2; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) {
      long v = strtol(argv[i + 1], NULL, 10);
      return v < lo ? lo : v > hi ? hi : v;
    }
  return dflt;
}

static const char *module_version(sqlite3 *db) {
  static char buf[32];
  sqlite3_stmt *st = prepare(db, "SELECT modelpack_version()");
  snprintf(buf, sizeof buf, "%s",
           sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : "?");
  sqlite3_finalize(st);
  return buf;
}

int main(int argc, char **argv) {
  if (argc < 2 || argv[1][0] == '-') {
    fprintf(stderr, "usage: %s <extension-path-without-.so> [--rows N] [--rounds N]\n", argv[0]);
    return 2;
  }
  long rows = arg_long(argc, argv, "--rows", 100000, 1, 100000000);
  int rounds = (int)arg_long(argc, argv, "--rounds", 7, 1, MAX_ROUNDS);
  sqlite3 *db = open_db(argv[1], rows);
  bench b[3];
  setup_benches(db, b);
  printf("bench_core: SQLite %s, modelpack %s, in-memory database\n",
         sqlite3_libversion(), module_version(db));
  for (int i = 0; i < 3; i++) warm_up(db, &b[i], rows);
  for (int r = 0; r < rounds; r++)
    for (int i = 0; i < 3; i++) run_round(db, &b[i], r, rows);
  print_table(b, 3, rounds, rows);
  for (int i = 0; i < 3; i++) {
    sqlite3_finalize(b[i].plain);
    sqlite3_finalize(b[i].packed);
  }
  sqlite3_close(db);
  return 0;
}
