/*
 * test_oom.c -- the out-of-memory loop (issue 6, item 3).
 *
 * Every allocation SQLite makes -- and so every allocation of the
 * extension, which allocates with sqlite3_malloc -- goes through a
 * countdown allocator installed with SQLITE_CONFIG_MALLOC before
 * sqlite3_initialize (lookaside is turned off so that small allocations
 * reach it too).  For each scenario (declaring models, packing rows,
 * batches, masks and modes, modelpack_query, the inspection functions,
 * writes to the source of stored models, modelpack_rebuild, ...) the
 * driver first makes a reference run without failures, then runs the
 * scenario again for N = 1, 2, 3, ... failing the Nth allocation (mode
 * "once") or every allocation from the Nth on (mode "persist"), until a
 * run completes without an injected failure.  Each run must
 *   - end in success with the reference's result, or in an error that is
 *     SQLITE_NOMEM or says "out of memory";
 *   - not crash (a signal handler names the run that did);
 *   - leave no allocation behind once its connection is closed;
 *   - leave the database consistent: with failures off, a fixed "after"
 *     script must give the reference's output, every stored record must
 *     equal a fresh pack of its row (and what modelpack_rebuild() makes of
 *     it), and the source must still be writable.
 * The extension's path (without .so) is argv[1], as for test_threads;
 * test/oom.test runs the --quick version under `make test`, `make
 * test-oom` the full loop, `make test-oom-asan` it against the ASan build.
 *
 * Usage: test_oom <extension-path-without-.so> [--quick] [--only NAME]
 *                 [--mode once|persist] [--at N] [--trap] [-v]
 * --at N runs the one fault point N (with --only and --mode) and says what
 * happened: how to reproduce a reported failure; --trap raises SIGTRAP at
 * each injected failure, so gdb shows who allocated.
 * The last line is "oom: N scenarios, M fault points, F failures".
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- allocator */

static sqlite3_mem_methods sys_mem; /* SQLite's own allocator, wrapped */
static struct {
  int armed;
  int persist;          /* fail every allocation from fail_at on */
  long long fail_at;    /* 1-based number of the allocation to fail; 0 never */
  long long n_alloc;    /* allocations counted while armed */
  long long n_injected; /* failures injected this run */
  long long outstanding; /* live allocations (armed or not) */
  int trap;             /* --trap: SIGTRAP at each injected failure (for gdb) */
} fx;

static int should_fail(void) {
  if (!fx.armed) return 0;
  fx.n_alloc++;
  if (fx.fail_at <= 0) return 0;
  if (fx.n_alloc == fx.fail_at || (fx.persist && fx.n_alloc > fx.fail_at)) {
    fx.n_injected++;
    if (fx.trap) raise(SIGTRAP);
    return 1;
  }
  return 0;
}

static void *oom_malloc(int n) {
  if (should_fail()) return NULL;
  void *p = sys_mem.xMalloc(n);
  if (p) fx.outstanding++;
  return p;
}

static void oom_free(void *p) {
  if (p) fx.outstanding--;
  sys_mem.xFree(p);
}

/* A failed realloc leaves the old block live, so the count is unchanged. */
static void *oom_realloc(void *p, int n) {
  if (should_fail()) return NULL;
  return sys_mem.xRealloc(p, n);
}

static int oom_size(void *p) { return sys_mem.xSize(p); }
static int oom_roundup(int n) { return sys_mem.xRoundup(n); }
static int oom_init(void *app) { return sys_mem.xInit(app); }
static void oom_shutdown(void *app) { sys_mem.xShutdown(app); }

static int install_allocator(void) {
  static sqlite3_mem_methods mine = {oom_malloc, oom_free,  oom_realloc, oom_size,
                                     oom_roundup, oom_init, oom_shutdown, NULL};
  if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sys_mem) != SQLITE_OK) return 0;
  if (sqlite3_config(SQLITE_CONFIG_MALLOC, &mine) != SQLITE_OK) return 0;
  /* Lookaside would serve small allocations without asking us. */
  if (sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0) != SQLITE_OK) return 0;
  return sqlite3_initialize() == SQLITE_OK;
}

static void arm(void) { fx.armed = 1; }
static void disarm(void) { fx.armed = 0; }

/* ---------------------------------------------------------------- text buffers */

/* Plain libc memory: the driver's own bookkeeping must not be counted. */
typedef struct buf {
  char *z;
  size_t n, alloc;
} buf;

static void buf_add(buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int need = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (b->n + (size_t)need + 1 > b->alloc) {
    b->alloc = (b->n + (size_t)need + 1) * 2;
    b->z = realloc(b->z, b->alloc);
    if (!b->z) abort();
  }
  va_start(ap, fmt);
  vsnprintf(b->z + b->n, (size_t)need + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)need;
}

static void buf_hex(buf *b, const unsigned char *p, int n) {
  for (int i = 0; i < n; i++) buf_add(b, "%02x", p[i]);
}

static void buf_free(buf *b) {
  free(b->z);
  memset(b, 0, sizeof *b);
}

static const char *buf_str(const buf *b) { return b->z ? b->z : ""; }

/* ---------------------------------------------------------------- scenarios */

/* The sources and models every scenario starts from (run unarmed). */
#define BOOK_ROWS                                                                                  \
  "CREATE TABLE book_rows(id INTEGER PRIMARY KEY, title TEXT NOT NULL, price REAL, cover BLOB,"    \
  " in_print INTEGER, author INTEGER);"                                                            \
  "INSERT INTO book_rows VALUES (1, 'Emma', 9.5, x'00ff', 1, 7), (2, 'Persuasion', NULL, NULL, 0,"  \
  " 7), (3, 'Ulysses', 12.25, x'', 1, NULL), (4, 'Dubliners', 7, x'0102', 1, 9),"                   \
  " (5, 'Mansfield Park', 3.5, NULL, NULL, 7), (6, 'caf' || char(233), 1e10, x'ab', 2, NULL);"
#define BOOK_FIELDS                                                                                \
  "id INTEGER PRIMARY KEY, title TEXT NOT NULL, price REAL, cover BLOB, in_print BOOLEAN,"         \
  " author_id INTEGER COLUMN author"
#define BOOK "CREATE VIRTUAL TABLE book USING modelpack(source = 'book_rows', " BOOK_FIELDS ");"
#define HBOOK                                                                                      \
  "CREATE VIRTUAL TABLE hbook USING modelpack(source = 'book_rows', hooks = 'post_init',"          \
  " id INTEGER PRIMARY KEY, title TEXT HOOKED, price REAL);"
#define SBOOK_DECL                                                                                 \
  "CREATE VIRTUAL TABLE sbook USING modelpack(source = 'book_rows', materialize = stored, "        \
  BOOK_FIELDS ");"
#define PEOPLE                                                                                     \
  "CREATE TABLE people(pk TEXT PRIMARY KEY, name TEXT NOT NULL, score REAL);"                      \
  "INSERT INTO people VALUES ('ann', 'Ann', 1.5), ('bob', 'Bob', NULL), ('cy', 'Cy', 3),"          \
  " ('dee', 'Dee', -2);"                                                                           \
  "CREATE VIRTUAL TABLE person USING modelpack(source = 'people', pk TEXT PRIMARY KEY,"            \
  " name TEXT NOT NULL, score REAL);"                                                              \
  "CREATE VIRTUAL TABLE sperson USING modelpack(source = 'people', materialize = stored,"          \
  " pk TEXT PRIMARY KEY, name TEXT NOT NULL, score REAL);"

/* Stored models whose consistency is checked, each against a plain model
 * with the same fields over the same source. */
enum { S_BOOK = 1, S_PERSON = 2 };
typedef struct stored_pair {
  int bit;
  const char *plain, *stored, *source, *pk;
  const char *probe; /* writes that must work afterwards */
} stored_pair;

static const stored_pair pairs[] = {
    {S_BOOK, "book", "sbook", "book_rows", "id",
     "INSERT INTO book_rows(id, title, price) VALUES (100, 'probe', 1);"
     "UPDATE book_rows SET price = price + 1, id = 101 WHERE id = 100;"
     "UPDATE book_rows SET title = title || '!' WHERE id = 1;"
     "DELETE FROM book_rows WHERE id = 101;"},
    {S_PERSON, "person", "sperson", "people", "pk",
     "INSERT INTO people VALUES ('probe', 'P', 1);"
     "UPDATE people SET pk = 'probe2', score = 2 WHERE pk = 'probe';"
     "UPDATE people SET name = name || '!' WHERE pk = 'ann';"
     "DELETE FROM people WHERE pk = 'probe2';"},
};

typedef struct scenario {
  const char *name;
  int arm_open;        /* failures start before sqlite3_open (loading included) */
  int reopen;          /* file database, reopened after setup: models connect lazily */
  const char *setup;   /* unarmed (unless arm_open) */
  const char *param;   /* unarmed: its first value is bound to ?1 in the body */
  const char *body;    /* armed: the statements under test */
  const char *result;  /* unarmed, after a successful body: part of its result */
  const char *after;   /* unarmed, after any run: must succeed, same output always */
  int stored;          /* S_* pairs to check */
} scenario;

static const scenario scenarios[] = {
    {"load", 1, 0, "",
     NULL,
     "SELECT modelpack_version();" BOOK_ROWS BOOK "SELECT packed FROM book WHERE id = 2;",
     NULL, NULL, 0},
    {"declare", 0, 0, BOOK_ROWS, NULL,
     BOOK HBOOK "SELECT packed FROM book WHERE id = 2;",
     NULL,
     "CREATE VIRTUAL TABLE IF NOT EXISTS book USING modelpack(source = 'book_rows', " BOOK_FIELDS
     ");SELECT packed FROM book ORDER BY id;",
     0},
    {"declare_stored", 0, 0, BOOK_ROWS BOOK, NULL,
     SBOOK_DECL "SELECT packed FROM sbook WHERE id = 3;",
     NULL,
     "CREATE VIRTUAL TABLE IF NOT EXISTS sbook USING modelpack(source = 'book_rows', "
     "materialize = stored, " BOOK_FIELDS ");SELECT * FROM sbook_packed ORDER BY id;",
     S_BOOK},
    {"pack_rows", 0, 0, BOOK_ROWS BOOK, NULL,
     "SELECT packed FROM book;"
     "SELECT packed FROM book WHERE id = 4;"
     "SELECT title, packed FROM book WHERE price > 5 ORDER BY id;"
     "SELECT packed FROM book ORDER BY title;"
     "SELECT id, title FROM book WHERE title LIKE '%a%';"
     "SELECT packed FROM book WHERE id IN (2, 5);",
     NULL, "SELECT packed FROM book ORDER BY id;", 0},
    {"batches", 0, 0, BOOK_ROWS BOOK, NULL,
     "SELECT rowid, packed FROM book WHERE batch = 4;"
     "SELECT packed FROM book WHERE batch = 2 AND price IS NOT NULL;"
     "SELECT packed FROM book WHERE batch = 3 ORDER BY title DESC;"
     "SELECT packed FROM book WHERE batch = 1000 AND id > 2;"
     "SELECT packed FROM book WHERE batch = 5 LIMIT 1;",
     NULL, "SELECT packed FROM book WHERE batch = 4;", 0},
    {"masks_modes", 0, 0, BOOK_ROWS BOOK HBOOK, NULL,
     "SELECT packed, mask, mode FROM book WHERE mask = modelpack_mask('book', 'id,title') "
     "ORDER BY id;"
     "SELECT packed, mode FROM book WHERE mode = 'safe' AND id < 6;"
     "SELECT packed, mode FROM hbook WHERE id < 4;"
     "SELECT packed FROM book WHERE mask = 5 AND mode = 'fast' AND batch = 2;"
     "SELECT modelpack_hooks('book', 'post_init,setattr:title');"
     "SELECT mode, packed FROM book WHERE id = 1;"
     "SELECT modelpack_hooks('book', '');"
     "SELECT modelpack_mask('book');",
     /* A failed body may leave its hooks set: clear them first. */
     NULL, "SELECT modelpack_hooks('book', '');SELECT mode, packed FROM book WHERE id = 1;", 0},
    {"query", 0, 0, BOOK_ROWS BOOK, NULL,
     "SELECT packed FROM modelpack_query('book', 'SELECT id, title, price FROM book_rows "
     "WHERE id > ?1 ORDER BY id', 2);"
     "SELECT packed FROM modelpack_query('book', 'SELECT * FROM book_rows') WHERE batch = 4;"
     "SELECT packed, mode FROM modelpack_query('book', 'SELECT id, title FROM book_rows "
     "WHERE title > ?1 AND id < ?2', 'E', 6) WHERE mode = 'safe';"
     "SELECT packed FROM modelpack_query('book', 'SELECT id, cover FROM book_rows "
     "WHERE cover = ?1', x'0102') WHERE mask = 3;"
     "SELECT packed FROM modelpack_query('book', 'SELECT id, title FROM book_rows "
     "WHERE id = ?1', 5);",
     NULL, "SELECT packed FROM modelpack_query('book', 'SELECT * FROM book_rows');", 0},
    {"inspect", 0, 0, BOOK_ROWS BOOK,
     "SELECT packed FROM book WHERE batch = 3 LIMIT 1;",
     "SELECT modelpack_layout('book');"
     "SELECT modelpack_layout('book', 3);"
     "SELECT modelpack_json('book', ?1);"
     "SELECT modelpack_json('book', (SELECT packed FROM book WHERE id = 6));"
     "SELECT modelpack_get('book', ?1, 'title'), modelpack_get('book', ?1, 3, 1);"
     "SELECT * FROM modelpack_unpack('book', ?1);"
     "SELECT * FROM book WHERE unpack = ?1;"
     "SELECT title FROM book WHERE unpack = (SELECT packed FROM book WHERE id = 2);",
     NULL, "SELECT modelpack_json('book', packed) FROM book;", 0},
    {"connect", 0, 1, BOOK_ROWS BOOK SBOOK_DECL PEOPLE,
     NULL,
     "SELECT modelpack_layout('person');"
     "SELECT packed FROM book WHERE id = 1;"
     "SELECT packed FROM sbook WHERE id = 2;"
     "INSERT INTO people VALUES ('eve', 'Eve', 5);",
     "SELECT * FROM people ORDER BY pk;SELECT * FROM sperson_packed ORDER BY pk;",
     "SELECT packed FROM book ORDER BY id;", S_BOOK | S_PERSON},
    {"store_insert", 0, 0, BOOK_ROWS BOOK SBOOK_DECL, NULL,
     "INSERT INTO book_rows VALUES (7, 'Sanditon', 2.5, x'cafe', 0, 3), (8, 'Lady Susan', NULL,"
     " NULL, 1, NULL);",
     "SELECT * FROM sbook_packed ORDER BY id;", NULL, S_BOOK},
    {"store_update", 0, 0, BOOK_ROWS BOOK SBOOK_DECL, NULL,
     "UPDATE book_rows SET title = title || ' (2nd ed.)', price = price * 2 WHERE id % 2 = 0;",
     "SELECT * FROM sbook_packed ORDER BY id;", NULL, S_BOOK},
    {"store_pk_update", 0, 0, BOOK_ROWS BOOK SBOOK_DECL, NULL,
     "UPDATE book_rows SET id = id + 10 WHERE id IN (1, 3);",
     "SELECT * FROM sbook_packed ORDER BY id;", NULL, S_BOOK},
    {"store_delete", 0, 0, BOOK_ROWS BOOK SBOOK_DECL, NULL,
     "DELETE FROM book_rows WHERE id > 3;",
     "SELECT * FROM sbook_packed ORDER BY id;", NULL, S_BOOK},
    {"store_txn", 0, 0, BOOK_ROWS BOOK SBOOK_DECL, NULL,
     "BEGIN;"
     "INSERT INTO book_rows VALUES (9, 'Juvenilia', 1, x'01', 1, 1);"
     "UPDATE book_rows SET price = 2 WHERE id = 2;"
     "DELETE FROM book_rows WHERE id = 5;"
     "COMMIT;",
     "SELECT * FROM sbook_packed ORDER BY id;", NULL, S_BOOK},
    {"store_text_pk", 0, 0, PEOPLE, NULL,
     "INSERT INTO people VALUES ('eve', 'Eve', 5);"
     "UPDATE people SET pk = 'bobby', score = 7 WHERE pk = 'bob';"
     "DELETE FROM people WHERE pk = 'cy';",
     "SELECT * FROM sperson_packed ORDER BY pk;", NULL, S_PERSON},
    {"rebuild", 0, 0, BOOK_ROWS BOOK SBOOK_DECL, NULL,
     "SELECT modelpack_rebuild('sbook');",
     "SELECT * FROM sbook_packed ORDER BY id;", NULL, S_BOOK},
    {"rebuild_txn", 0, 0, BOOK_ROWS BOOK SBOOK_DECL, NULL,
     "BEGIN; SELECT modelpack_rebuild('sbook'); COMMIT;",
     "SELECT * FROM sbook_packed ORDER BY id;", NULL, S_BOOK},
};
#define N_SCENARIOS ((int)(sizeof scenarios / sizeof scenarios[0]))

/* ---------------------------------------------------------------- running SQL */

typedef struct blob_param {
  unsigned char *p; /* libc memory */
  int n, set;
} blob_param;

typedef struct sql_error {
  int rc;
  char msg[512];
} sql_error;

static void digest_value(buf *out, sqlite3_stmt *st, int i) {
  /* Fetch by storage class only: no conversion, so no allocation. */
  switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: buf_add(out, "i%lld", sqlite3_column_int64(st, i)); break;
    case SQLITE_FLOAT: buf_add(out, "r%.17g", sqlite3_column_double(st, i)); break;
    case SQLITE_NULL: buf_add(out, "n"); break;
    default: { /* TEXT as its bytes: sqlite3_column_text might add a terminator */
      int t = sqlite3_column_type(st, i);
      const void *p = sqlite3_column_blob(st, i);
      int n = sqlite3_column_bytes(st, i);
      buf_add(out, "%c%d:", t == SQLITE_TEXT ? 't' : 'b', n);
      if (p) buf_hex(out, p, n);
    }
  }
}

static int step_all(sqlite3_stmt *st, buf *out) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    for (int i = 0; i < sqlite3_column_count(st); i++) {
      if (out) digest_value(out, st, i);
      if (out) buf_add(out, i + 1 < sqlite3_column_count(st) ? "|" : "\n");
    }
  }
  return rc;
}

/* Run every statement of sql in turn; stop at the first error, which
 * goes to *e.  Rows are digested into out (when given). */
static int run_sql(sqlite3 *db, const char *sql, const blob_param *bp, buf *out, sql_error *e) {
  const char *tail = sql;
  e->rc = SQLITE_OK;
  e->msg[0] = 0;
  while (tail && *tail) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, tail, -1, &st, &tail);
    if (rc == SQLITE_OK && st && bp && bp->set && sqlite3_bind_parameter_count(st) > 0)
      rc = sqlite3_bind_blob(st, 1, bp->p, bp->n, SQLITE_STATIC);
    if (rc == SQLITE_OK && st) {
      rc = step_all(st, out);
      if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) {
      e->rc = rc;
      snprintf(e->msg, sizeof e->msg, "%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) return rc;
  }
  return SQLITE_OK;
}

/* One integer from a query (unarmed checks); -1 on error. */
static long long query_int(sqlite3 *db, const char *sql, sql_error *e) {
  buf out = {0};
  long long v = -1;
  if (run_sql(db, sql, NULL, &out, e) == SQLITE_OK && out.z && out.z[0] == 'i') v = atoll(out.z + 1);
  buf_free(&out);
  return v;
}

/* ---------------------------------------------------------------- reporting */

static const char *ext_path;
static int verbose;
/* Shared with the forked child that runs a loop, so that a crash costs
 * one fault point, not the rest of the run. */
static struct tally {
  long long points, failures;
  long long next; /* the child's next fault point */
} *tally;
static struct {
  const char *scenario, *mode;
  long long at;
} current;

static void fail(const char *fmt, ...) {
  va_list ap;
  tally->failures++;
  fprintf(stderr, "FAIL %s, mode %s, fault %lld: ", current.scenario, current.mode, current.at);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n    reproduce: test_oom %s --only %s --mode %s --at %lld\n", ext_path,
          current.scenario, current.mode, current.at);
}

/* A crash names the run that crashed, then dies of the same signal. */
static void on_signal(int sig) {
  char msg[256];
  int n = snprintf(msg, sizeof msg,
                   "\nCRASH (signal %d) in scenario %s, mode %s, fault %lld\n"
                   "    reproduce: test_oom <ext> --only %s --mode %s --at %lld\n",
                   sig, current.scenario ? current.scenario : "?", current.mode ? current.mode : "?",
                   current.at, current.scenario ? current.scenario : "?",
                   current.mode ? current.mode : "?", current.at);
  if (n > 0) (void)!write(2, msg, (size_t)n);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* ---------------------------------------------------------------- checks */

/* Every stored record equals a fresh pack; with `rebuild`, the shadow
 * table also equals what modelpack_rebuild() makes (which writes it). */
static void check_stored_pair(sqlite3 *db, const stored_pair *sp, const char *when, int rebuild) {
  char sql[1024];
  sql_error e;
  snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_schema WHERE name = '%s'", sp->stored);
  long long exists = query_int(db, sql, &e);
  if (exists != 1) {
    /* A failed declaration must leave nothing of the model behind. */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '%s\\_%%' ESCAPE '\\'",
             sp->stored);
    long long left = query_int(db, sql, &e);
    if (exists != 0 || left != 0)
      fail("%s: model %s absent but %lld of its objects left (%s)", when, sp->stored, left, e.msg);
    return;
  }
  snprintf(sql, sizeof sql,
           "SELECT (SELECT count(*) FROM %s) - (SELECT count(*) FROM %s_packed)"
           " + (SELECT count(*) FROM %s_packed WHERE %s IS NULL OR %s NOT IN (SELECT %s FROM %s))"
           " + (SELECT count(*) FROM %s AS r WHERE (SELECT packed FROM %s WHERE %s = r.%s AND"
           " mode = 'fast') IS NOT (SELECT packed FROM %s WHERE %s = r.%s AND mode = 'fast'))",
           sp->source, sp->stored, sp->stored, sp->pk, sp->pk, sp->pk, sp->source, sp->source,
           sp->plain, sp->pk, sp->pk, sp->stored, sp->pk, sp->pk);
  long long bad = query_int(db, sql, &e);
  if (bad != 0)
    fail("%s: %s: %lld stored records missing, extra or unlike a fresh pack %s", when, sp->stored,
         bad, e.msg);
  if (!rebuild) return;
  /* Byte for byte (record, mp_error, mp_unsafe) what a rebuild makes. */
  snprintf(sql, sizeof sql,
           "DROP TABLE IF EXISTS temp.oom_chk; CREATE TEMP TABLE oom_chk AS SELECT * FROM %s_packed;"
           "SELECT modelpack_rebuild('%s');",
           sp->stored, sp->stored);
  if (run_sql(db, sql, NULL, NULL, &e) != SQLITE_OK) {
    fail("%s: %s: rebuild for the check failed: %s", when, sp->stored, e.msg);
    return;
  }
  snprintf(sql, sizeof sql,
           "SELECT (SELECT count(*) FROM (SELECT * FROM temp.oom_chk EXCEPT SELECT * FROM %s_packed))"
           " + (SELECT count(*) FROM (SELECT * FROM %s_packed EXCEPT SELECT * FROM temp.oom_chk))",
           sp->stored, sp->stored);
  bad = query_int(db, sql, &e);
  if (bad != 0)
    fail("%s: %s: %lld shadow rows differ from a rebuild %s", when, sp->stored, bad, e.msg);
  run_sql(db, "DROP TABLE IF EXISTS temp.oom_chk", NULL, NULL, &e);
}

static void check_stored(sqlite3 *db, int which, const char *when, int rebuild) {
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
    if (which & pairs[i].bit) check_stored_pair(db, &pairs[i], when, rebuild);
}

/* After the checks the source must still take writes, kept current. */
static void probe_writes(sqlite3 *db, int which) {
  sql_error e;
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    if (!(which & pairs[i].bit)) continue;
    if (run_sql(db, pairs[i].probe, NULL, NULL, &e) != SQLITE_OK)
      fail("probe writes on %s fail afterwards: %s", pairs[i].source, e.msg);
  }
  check_stored(db, which, "after probe writes", 1);
}

/* ---------------------------------------------------------------- one run */

typedef struct outcome {
  int ok;          /* the body (and everything before it) succeeded */
  sql_error err;   /* why not */
  buf result;      /* body rows + result script rows */
  buf after;       /* after script rows */
  long long allocs, injected;
} outcome;

static char db_file[256];

static void remove_db_files(void) {
  char p[300];
  unlink(db_file);
  snprintf(p, sizeof p, "%s-journal", db_file);
  unlink(p);
}

static sqlite3 *open_loaded(const scenario *sc, sql_error *e) {
  sqlite3 *db = NULL;
  char *msg = NULL;
  e->rc = sqlite3_open(sc->reopen ? db_file : ":memory:", &db);
  if (e->rc == SQLITE_OK) e->rc = sqlite3_enable_load_extension(db, 1);
  if (e->rc == SQLITE_OK) e->rc = sqlite3_load_extension(db, ext_path, NULL, &msg);
  if (e->rc == SQLITE_OK && sc->reopen) e->rc = sqlite3_exec(db, "PRAGMA synchronous = OFF", NULL, NULL, NULL);
  if (e->rc != SQLITE_OK) {
    snprintf(e->msg, sizeof e->msg, "open/load: %s", msg ? msg : db ? sqlite3_errmsg(db) : "no handle");
    sqlite3_free(msg);
    sqlite3_close_v2(db);
    return NULL;
  }
  return db;
}

/* The body's ?1: a blob copied to libc memory, bound SQLITE_STATIC. */
static void read_param(sqlite3 *db, const char *sql, blob_param *bp) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    bp->n = sqlite3_column_bytes(st, 0);
    bp->p = malloc((size_t)bp->n + 1);
    if (!bp->p) abort();
    memcpy(bp->p, sqlite3_column_blob(st, 0), (size_t)bp->n);
    bp->set = 1;
  }
  sqlite3_finalize(st);
  if (!bp->set) fail("parameter query failed: %s", sqlite3_errmsg(db));
}

/* Open, load and set up; the body's parameter is read here too. */
static sqlite3 *prepare_run(const scenario *sc, blob_param *bp, outcome *o) {
  if (sc->reopen) remove_db_files();
  sqlite3 *db = open_loaded(sc, &o->err);
  if (!db && !sc->arm_open) fail("open failed unarmed: %s", o->err.msg);
  if (!db) return NULL;
  if (run_sql(db, sc->setup, NULL, NULL, &o->err) != SQLITE_OK) {
    if (!sc->arm_open) fail("setup failed: %s", o->err.msg);
    sqlite3_close_v2(db);
    return NULL;
  }
  if (sc->reopen) {
    sqlite3_close_v2(db);
    if (!(db = open_loaded(sc, &o->err))) return NULL;
  }
  if (sc->param) read_param(db, sc->param, bp);
  return db;
}

static void finish_txn(sqlite3 *db, int stored) {
  sql_error e;
  if (sqlite3_get_autocommit(db)) return;
  /* A failed statement inside BEGIN ... COMMIT: what is left commits.
   * No rebuild here, so that damage reaches the checks after COMMIT. */
  check_stored(db, stored, "inside the open transaction", 0);
  if (run_sql(db, "COMMIT", NULL, NULL, &e) != SQLITE_OK) fail("COMMIT afterwards failed: %s", e.msg);
}

static void after_run(sqlite3 *db, const scenario *sc, outcome *o) {
  sql_error e;
  finish_txn(db, sc->stored);
  if (o->ok && sc->result && run_sql(db, sc->result, NULL, &o->result, &e) != SQLITE_OK)
    fail("result script failed: %s", e.msg);
  if (sc->after && run_sql(db, sc->after, NULL, &o->after, &e) != SQLITE_OK)
    fail("after script failed: %s", e.msg);
  if (sc->stored) {
    check_stored(db, sc->stored, o->ok ? "after the body" : "after the failed body", 1);
    probe_writes(db, sc->stored);
  }
}

static void run_once(const scenario *sc, long long fail_at, int persist, outcome *o) {
  blob_param bp = {0};
  long long base = fx.outstanding;
  memset(o, 0, sizeof *o);
  fx.fail_at = fail_at;
  fx.persist = persist;
  fx.n_alloc = fx.n_injected = 0;
  if (sc->arm_open) arm();
  sqlite3 *db = prepare_run(sc, &bp, o);
  if (db) {
    arm();
    o->ok = run_sql(db, sc->body, &bp, &o->result, &o->err) == SQLITE_OK;
  }
  disarm();
  o->allocs = fx.n_alloc;
  o->injected = fx.n_injected;
  if (db) after_run(db, sc, o);
  sqlite3_close_v2(db);
  free(bp.p);
  if (fx.outstanding != base)
    fail("leak: %lld allocations outstanding after close (was %lld)", fx.outstanding - base, base);
}

static void outcome_free(outcome *o) {
  buf_free(&o->result);
  buf_free(&o->after);
}

/* Loading may fail any way it likes under OOM (SQLite reports every
 * failed init as "error during initialization: <whatever it could say>"),
 * as long as it fails cleanly; everything else must say out of memory. */
static int clear_error(const scenario *sc, const sql_error *e) {
  if (sc->arm_open && strncmp(e->msg, "open/load:", 10) == 0) return 1;
  return (e->rc & 0xff) == SQLITE_NOMEM || strstr(e->msg, "out of memory") != NULL;
}

/* Judge a run with failures against the reference run. */
static void judge(const scenario *sc, const outcome *ref, const outcome *o) {
  if (o->ok && strcmp(buf_str(&o->result), buf_str(&ref->result)) != 0)
    fail("succeeded with a different result:\n  got      %.300s\n  expected %.300s",
         buf_str(&o->result), buf_str(&ref->result));
  if (!o->ok && !clear_error(sc, &o->err))
    fail("error is neither SQLITE_NOMEM nor 'out of memory': rc %d: %s", o->err.rc, o->err.msg);
  if (sc->after && strcmp(buf_str(&o->after), buf_str(&ref->after)) != 0)
    fail("after script differs:\n  got      %.300s\n  expected %.300s", buf_str(&o->after),
         buf_str(&ref->after));
}

/* ---------------------------------------------------------------- the loop */

typedef struct options {
  int quick;
  const char *only, *mode;
  long long at;
} options;

/* In a child: N = tally->next, then every step-th, until nothing was
 * injected.  Exits 0 when the loop is over. */
static void child_loop(const scenario *sc, const outcome *ref, int persist, long long step) {
  for (long long n = tally->next;; n += step) {
    outcome o;
    tally->next = current.at = n;
    run_once(sc, n, persist, &o);
    if (!o.injected) _exit(0);
    tally->points++;
    judge(sc, ref, &o);
    if (verbose) fprintf(stderr, "  %s %s %lld: %s\n", sc->name, current.mode, n, o.ok ? "ok" : o.err.msg);
    outcome_free(&o);
  }
}

/* One mode's loop in forked children: a crash is reported and counted,
 * and the loop goes on at the next fault point in a new child. */
static long long loop_mode(const scenario *sc, const outcome *ref, int persist, long long step) {
  long long p0 = tally->points;
  current.mode = persist ? "persist" : "once";
  tally->next = 1;
  for (;;) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      exit(2);
    }
    if (pid == 0) child_loop(sc, ref, persist, step);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) break;
    tally->failures++;
    tally->points++;
    fprintf(stderr, "FAIL %s, mode %s, fault %lld: crashed (%s %d)\n"
                    "    reproduce: test_oom %s --only %s --mode %s --at %lld\n",
            sc->name, current.mode, tally->next, WIFSIGNALED(status) ? "signal" : "exit status",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), ext_path, sc->name,
            current.mode, tally->next);
    tally->next += step;
  }
  return tally->points - p0;
}

static void run_scenario(const scenario *sc, const options *opt) {
  outcome ref;
  long long f0 = tally->failures;
  current.scenario = sc->name;
  current.mode = "reference";
  current.at = 0;
  run_once(sc, 0, 0, &ref);
  if (!ref.ok) fail("reference run failed: %s", ref.err.msg);
  long long step = 1;
  if (opt->quick && ref.allocs > 40) step = ref.allocs / 40;
  long long once = 0, persist = 0;
  if (!opt->mode || strcmp(opt->mode, "once") == 0) once = loop_mode(sc, &ref, 0, step);
  if (!opt->mode || strcmp(opt->mode, "persist") == 0) persist = loop_mode(sc, &ref, 1, step);
  printf("%-16s %6lld allocations, fault points: %5lld once, %5lld persist%s%s\n", sc->name,
         ref.allocs, once, persist, step > 1 ? " (quick)" : "",
         tally->failures > f0 ? "  FAILED" : "");
  fflush(stdout);
  outcome_free(&ref);
}

/* --at N: the one run, described. */
static void run_at(const scenario *sc, const options *opt) {
  outcome ref, o;
  int persist = opt->mode && strcmp(opt->mode, "persist") == 0;
  current.scenario = sc->name;
  current.mode = persist ? "persist" : "once";
  current.at = opt->at;
  run_once(sc, 0, 0, &ref);
  run_once(sc, opt->at, persist, &o);
  printf("%s %s %lld: %lld allocations, %lld failures injected, %s%s\n", sc->name, current.mode,
         opt->at, o.allocs, o.injected, o.ok ? "succeeded" : "error: ", o.ok ? "" : o.err.msg);
  judge(sc, &ref, &o);
  tally->points += o.injected > 0;
  outcome_free(&ref);
  outcome_free(&o);
}

static int parse_args(int argc, char **argv, options *opt) {
  memset(opt, 0, sizeof *opt);
  if (argc < 2) return 0;
  ext_path = argv[1];
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) opt->quick = 1;
    else if (strcmp(argv[i], "-v") == 0) verbose = 1;
    else if (strcmp(argv[i], "--trap") == 0) fx.trap = 1;
    else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) opt->only = argv[++i];
    else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) opt->mode = argv[++i];
    else if (strcmp(argv[i], "--at") == 0 && i + 1 < argc) opt->at = atoll(argv[++i]);
    else return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  options opt;
  int nrun = 0;
  if (!parse_args(argc, argv, &opt)) {
    fprintf(stderr, "usage: test_oom <extension-without-.so> [--quick] [--only NAME] "
                    "[--mode once|persist] [--at N] [--trap] [-v]\n");
    return 2;
  }
  tally = mmap(NULL, sizeof *tally, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (tally == MAP_FAILED) {
    perror("mmap");
    return 2;
  }
  memset(tally, 0, sizeof *tally);
  if (!install_allocator()) {
    fprintf(stderr, "test_oom: cannot install the allocator\n");
    return 2;
  }
  signal(SIGSEGV, on_signal);
  signal(SIGBUS, on_signal);
  signal(SIGABRT, on_signal);
  signal(SIGFPE, on_signal);
  snprintf(db_file, sizeof db_file, "/tmp/modelpack-oom-%d.db", (int)getpid());
  for (int i = 0; i < N_SCENARIOS; i++) {
    if (opt.only && strcmp(opt.only, scenarios[i].name) != 0) continue;
    if (opt.at > 0) run_at(&scenarios[i], &opt);
    else run_scenario(&scenarios[i], &opt);
    nrun++;
  }
  remove_db_files();
  if (!nrun) fprintf(stderr, "test_oom: no scenario named %s\n", opt.only);
  printf("oom: %d scenarios, %lld fault points, %lld failures\n", nrun, tally->points,
         tally->failures);
  return tally->failures || !nrun ? 1 : 0;
}
