/*
 * fuzz_sql.c -- SQLite plumbing shared by the fuzz targets that drive the
 * extension through SQL (fuzz_decl.c, fuzz_query.c, fuzz_sqlblob.c).
 * #included, not compiled on its own.
 *
 * The targets link the extension's C sources into the fuzzer itself, so
 * its code is instrumented (coverage, ASan, UBSan) while libsqlite3 stays
 * the system library.  The extension is written against sqlite3ext.h and
 * reaches SQLite only through the API table its entry point receives, so
 * it is registered with sqlite3_auto_extension(): every sqlite3_open()
 * then runs sqlite3_modelpack_init() as `.load` would, with no shared
 * object and no dlopen.
 *
 * An input gets a fresh in-memory database (fz_open), so a crash depends
 * on that input alone and replays from its file; targets that only read
 * share one among a few hundred inputs (fz_shared_open) for speed.  Limits
 * and a progress handler bound what fuzzed SQL can cost (recursive CTEs,
 * huge zeroblobs): an input that runs into them just fails its statement.
 * fz_close() aborts if the extension left a prepared statement behind,
 * which sqlite3_close() reports as SQLITE_BUSY.
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../include/modelpack.h"

/* ext/modelpack.c's entry point, the one symbol the targets need. */
int sqlite3_modelpack_init(sqlite3 *db, char **err, const sqlite3_api_routines *api);

#define FZ_MAX_ROWS 200        /* rows stepped per statement */
#define FZ_PROGRESS_OPS 1000   /* VM instructions per progress callback */
#define FZ_PROGRESS_MAX 3000   /* callbacks per input before interrupting */

static volatile uint64_t fz_sink;
static int fz_progress_calls;
/* Set while running the harness's own statements: a result column named
 * "packed" is then the extension's, and must be a blob mp_view_open()
 * accepts ("both [fast and safe packing] always produce a well-formed
 * blob", ext/pack.c).  Off for statements taken from the input, which may
 * name anything "packed". */
static int fz_check_packed;

static inline int fz_progress(void *unused) {
  (void)unused;
  return ++fz_progress_calls > FZ_PROGRESS_MAX;
}

/*
 * sqlite3_modelpack_init() as an automatic extension.  sqlite3_open()
 * returns the connection's error code after running automatic extensions,
 * so an init that leaves an error behind (as already_loaded()'s failing
 * probe once did: every open failed with "no such function") breaks every
 * application that registers modelpack this way: treat it as a finding.
 */
static inline int fz_init(sqlite3 *db, char **err, const sqlite3_api_routines *api) {
  int rc = sqlite3_modelpack_init(db, err, api);
  if (rc == SQLITE_OK && sqlite3_errcode(db) != SQLITE_OK) {
    fprintf(stderr, "fuzz harness: init left error %d (%s) on the connection\n",
            sqlite3_errcode(db), sqlite3_errmsg(db));
    abort();
  }
  return rc;
}

static inline void fz_die(sqlite3 *db, const char *what, const char *sql) {
  fprintf(stderr, "fuzz harness: %s failed: %s\n  SQL: %s\n", what,
          db ? sqlite3_errmsg(db) : "?", sql ? sql : "");
  abort();
}

/* A fresh database with the extension loaded and `setup` run in it. */
static inline sqlite3 *fz_open(const char *setup) {
  static int registered;
  sqlite3 *db = NULL;
  if (!registered) {
    registered = 1;
    /* Bounds what one input may allocate; beyond it SQLite fails with
     * SQLITE_NOMEM, an error path like any other. */
    sqlite3_hard_heap_limit64(256 << 20);
    if (sqlite3_auto_extension((void (*)(void))fz_init) != SQLITE_OK)
      fz_die(NULL, "sqlite3_auto_extension", NULL);
  }
  if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
      SQLITE_OK)
    fz_die(db, "sqlite3_open_v2", NULL);
  sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 1 << 20);
  sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, 1 << 16);
  sqlite3_limit(db, SQLITE_LIMIT_EXPR_DEPTH, 200);
  sqlite3_limit(db, SQLITE_LIMIT_COMPOUND_SELECT, 50);
  sqlite3_limit(db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000);
  sqlite3_limit(db, SQLITE_LIMIT_TRIGGER_DEPTH, 10);
  sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
  char *err = NULL;
  if (setup && sqlite3_exec(db, setup, NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "fuzz harness: setup failed: %s\n", err ? err : "?");
    abort();
  }
  fz_progress_calls = 0;
  sqlite3_progress_handler(db, FZ_PROGRESS_OPS, fz_progress, NULL);
  return db;
}

static inline void fz_close(sqlite3 *db) {
  if (sqlite3_close(db) == SQLITE_OK) return;
  for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st))
    fprintf(stderr, "fuzz harness: statement left unfinalized: %s\n", sqlite3_sql(st));
  fz_die(db, "sqlite3_close", NULL);
}

/*
 * A database kept for several inputs, for targets whose setup costs far
 * more than an input and whose inputs cannot write to it.  fz_shared_done()
 * closes it (with fz_close's check for leaked statements) after every
 * FZ_REUSE inputs, or after each input when FUZZ_FRESH is set in the
 * environment -- what test/fuzz.test does, so a replay depends on one
 * input only.  `reset` runs before each input (NULL: nothing).
 */
#define FZ_REUSE 200
typedef struct fz_shared_db {
  sqlite3 *db;
  int uses;
} fz_shared_db;

static inline sqlite3 *fz_shared_open(fz_shared_db *s, const char *setup, const char *reset) {
  if (!s->db) {
    s->db = fz_open(setup);
    s->uses = 0;
  }
  s->uses++;
  fz_progress_calls = 0;
  if (reset && sqlite3_exec(s->db, reset, NULL, NULL, NULL) != SQLITE_OK) fz_die(s->db, "reset", reset);
  fz_progress_calls = 0;
  return s->db;
}

static inline void fz_shared_done(fz_shared_db *s) {
  static int fresh = -1;
  if (fresh < 0) fresh = getenv("FUZZ_FRESH") != NULL;
  if (fresh || s->uses >= FZ_REUSE) {
    fz_close(s->db);
    s->db = NULL;
  }
}

/* A value to bind: an SQL storage class and its payload. */
typedef struct fz_value {
  int type; /* SQLITE_INTEGER, _FLOAT, _TEXT, _BLOB, _NULL */
  int64_t i;
  double d;
  const void *p;
  int n;
} fz_value;

static inline void fz_bind(sqlite3_stmt *st, int k, const fz_value *v) {
  switch (v->type) {
    case SQLITE_INTEGER: sqlite3_bind_int64(st, k, v->i); break;
    case SQLITE_FLOAT: sqlite3_bind_double(st, k, v->d); break;
    case SQLITE_TEXT: sqlite3_bind_text(st, k, v->p, v->n, SQLITE_TRANSIENT); break;
    case SQLITE_BLOB: sqlite3_bind_blob(st, k, v->p ? v->p : "", v->n, SQLITE_TRANSIENT); break;
    default: sqlite3_bind_null(st, k); break;
  }
}

/* Read every column of a row, so text and blob results are materialized. */
static inline void fz_touch_row(sqlite3_stmt *st) {
  int n = sqlite3_column_count(st);
  for (int c = 0; c < n; c++) {
    const unsigned char *p;
    int len;
    int type = sqlite3_column_type(st, c);
    if (fz_check_packed && type != SQLITE_NULL && strcmp(sqlite3_column_name(st, c), "packed") == 0) {
      mp_view v;
      const char *why = "not a blob";
      if (type != SQLITE_BLOB ||
          !mp_view_open(&v, sqlite3_column_blob(st, c), (size_t)sqlite3_column_bytes(st, c), 0, &why)) {
        fprintf(stderr, "fuzz harness: the extension produced a bad blob (%s)\n  SQL: %s\n", why,
                sqlite3_sql(st));
        abort();
      }
    }
    switch (type) {
      case SQLITE_BLOB:
        p = sqlite3_column_blob(st, c);
        len = sqlite3_column_bytes(st, c);
        for (int i = 0; p && i < len; i++) fz_sink += p[i];
        break;
      case SQLITE_TEXT:
        p = sqlite3_column_text(st, c);
        len = sqlite3_column_bytes(st, c);
        for (int i = 0; p && i < len; i++) fz_sink += p[i];
        break;
      default:
        fz_sink += (uint64_t)sqlite3_column_int64(st, c);
        break;
    }
  }
}

/* Prepare the first statement of sql, bind vals to ?1.., step up to
 * FZ_MAX_ROWS rows.  Returns the last step's result code (SQLITE_DONE or
 * SQLITE_ROW on success); fuzzed statements failing is expected. */
static inline int fz_run(sqlite3 *db, const char *sql, const fz_value *vals, int nval) {
  /* FUZZ_VERBOSE=1 shows what each statement did: for checking seeds. */
  static int verbose = -1;
  if (verbose < 0) verbose = getenv("FUZZ_VERBOSE") != NULL;
  sqlite3_stmt *st = NULL;
  int rows = 0, rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK && st) {
    for (int k = 0; k < nval; k++) fz_bind(st, k + 1, &vals[k]);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && rows++ < FZ_MAX_ROWS) fz_touch_row(st);
  }
  if (verbose)
    fprintf(stderr, "[%d rows, %s] %.200s\n", rows,
            rc == SQLITE_DONE || rc == SQLITE_ROW ? "ok" : sqlite3_errmsg(db), sql);
  sqlite3_finalize(st);
  return rc;
}

/* ---- splitting an input into NUL-separated pieces ---- */

typedef struct fz_input {
  const uint8_t *p;
  size_t n;
} fz_input;

/* The next piece (up to a 0 byte or the end) as a NUL-terminated copy in
 * buf (truncated to cap-1 bytes); its length in *len.  0 when exhausted. */
static inline int fz_piece(fz_input *in, char *buf, size_t cap, size_t *len) {
  if (in->n == 0) return 0;
  const uint8_t *end = memchr(in->p, 0, in->n);
  size_t k = end ? (size_t)(end - in->p) : in->n;
  size_t c = k < cap - 1 ? k : cap - 1;
  memcpy(buf, in->p, c);
  buf[c] = 0;
  *len = c;
  in->p += k + (end ? 1 : 0);
  in->n -= k + (end ? 1 : 0);
  return 1;
}

static inline int fz_hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* A typed value from a piece: its first byte is the type tag
 *   i<integer>  r<real>  t<text>  b<bytes as a blob>  x<hex blob>  n (NULL);
 * anything else is text as a whole.  Decodes in place (x shrinks it). */
static inline void fz_value_of(char *s, size_t len, fz_value *v) {
  memset(v, 0, sizeof *v);
  v->type = SQLITE_TEXT;
  v->p = s;
  v->n = (int)len;
  if (len == 0) return;
  switch (s[0]) {
    case 'i': v->type = SQLITE_INTEGER; v->i = strtoll(s + 1, NULL, 0); break;
    case 'r': v->type = SQLITE_FLOAT; v->d = strtod(s + 1, NULL); break;
    case 't': v->p = s + 1; v->n = (int)len - 1; break;
    case 'b': v->type = SQLITE_BLOB; v->p = s + 1; v->n = (int)len - 1; break;
    case 'n': v->type = SQLITE_NULL; break;
    case 'x': {
      size_t k = 0;
      for (size_t j = 1; j + 1 < len; j += 2) {
        int hi = fz_hexval((unsigned char)s[j]), lo = fz_hexval((unsigned char)s[j + 1]);
        if (hi < 0 || lo < 0) break;
        s[k++] = (char)(hi * 16 + lo);
      }
      v->type = SQLITE_BLOB;
      v->p = s;
      v->n = (int)k;
      break;
    }
    default: break;
  }
}

/* The source tables every SQL target starts from: every storage class in
 * every column, NULLs, extremes, non-ASCII and invalid UTF-8 text. */
#define FZ_SOURCES                                                                   \
  "CREATE TABLE src(id INTEGER PRIMARY KEY, a INTEGER, b REAL, c TEXT, d BLOB,"      \
  " e BOOLEAN, f);"                                                                  \
  "INSERT INTO src VALUES"                                                           \
  " (1, 42, 1.5, 'abc', x'00ff', 1, NULL),"                                          \
  " (2, NULL, NULL, NULL, NULL, NULL, 'x'),"                                         \
  " (3, -9223372036854775808, 1e308, 'Émile', x'', 0, 2.5),"                         \
  " (4, 'not a number', 'nan', 123, 'text as blob', 2, x'01'),"                      \
  " (5, 9223372036854775807, -0.0, '', zeroblob(3), -1, 7),"                         \
  " (6, 2.5, 4.9e-324, CAST(x'ff80c0' AS TEXT), 3.25, 0.5, '\xe4\xb8\xad');"         \
  "CREATE INDEX src_c ON src(c);"                                                    \
  "CREATE TABLE kv(k TEXT PRIMARY KEY, v REAL, w) WITHOUT ROWID;"                    \
  "INSERT INTO kv VALUES ('a', 1, NULL), ('b', NULL, x'00'), ('', 2.5, 'w');"        \
  "CREATE VIEW srcv AS SELECT id, c AS title, b AS price FROM src WHERE id > 1;"
