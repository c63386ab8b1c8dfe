/*
 * test_threads.c -- readers and a writer on one WAL database, each thread
 * with its own connection.
 *
 * The writer keeps an invariant in every transaction: the rows of `item`
 * sum to zero in `qty` and their count is in `meta`.  Readers open a read
 * transaction and read the model's packed rows (per row and in batches,
 * from a plain and a stored model) and check the invariant on what they
 * decoded: every read must be one consistent snapshot.  At the end the
 * stored model's records must equal a fresh pack of every row.  Run under
 * ThreadSanitizer by `make test-tsan`.
 *
 * Usage: test_threads <extension-path-without-.so> [seconds]
 */
#define _POSIX_C_SOURCE 200809L /* rand_r */
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../include/modelpack.h"

#define READERS 3

static const char *ext_path;
static char db_path[256];
static atomic_int stop;
static int failures, checks;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;

static void count(int ok, const char *what, const char *detail) {
  pthread_mutex_lock(&count_lock);
  checks++;
  if (!ok) {
    failures++;
    fprintf(stderr, "FAIL %s: %s\n", what, detail ? detail : "");
  }
  pthread_mutex_unlock(&count_lock);
}

static sqlite3 *open_db(void) {
  sqlite3 *db = NULL;
  char *err = NULL;
  if (sqlite3_open(db_path, &db) != SQLITE_OK) return NULL;
  sqlite3_busy_timeout(db, 5000);
  sqlite3_enable_load_extension(db, 1);
  if (sqlite3_load_extension(db, ext_path, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "load: %s\n", err);
    sqlite3_free(err);
    sqlite3_close(db);
    return NULL;
  }
  return db;
}

static int exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK) {
    count(0, sql, err);
    sqlite3_free(err);
  }
  return rc;
}

/* Sum qty over every record of every blob a query returns. */
static int read_sum(sqlite3 *db, const char *sql, long long *rows, long long *sum) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  *rows = *sum = 0;
  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    mp_view v;
    const char *why = NULL;
    if (!mp_view_open(&v, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), 0, &why)) {
      count(0, "blob", why);
      break;
    }
    for (uint32_t r = 0; r < v.count; r++) {
      *rows += 1;
      if (!mp_is_null(&v, r, 1)) *sum += mp_get_int64(&v, r, 1);
    }
    rc = SQLITE_OK;
  }
  if (rc != SQLITE_DONE) count(0, sql, sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return rc == SQLITE_DONE;
}

static void *reader(void *arg) {
  static const char *const reads[] = {
      "SELECT packed FROM item_m", "SELECT packed FROM item_m WHERE batch = 7",
      "SELECT packed FROM item_s", "SELECT packed FROM item_s WHERE batch = 50",
      "SELECT packed FROM modelpack_query('item_m', 'SELECT id, qty FROM item') WHERE batch = 9"};
  sqlite3 *db = open_db();
  int k = (int)(long)arg;
  if (!db) {
    count(0, "reader", "open");
    return NULL;
  }
  while (!stop) {
    long long rows, sum, meta = -1;
    sqlite3_stmt *st;
    exec(db, "BEGIN");
    if (sqlite3_prepare_v2(db, "SELECT n FROM meta", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      meta = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (read_sum(db, reads[k++ % 5], &rows, &sum)) {
      char detail[128];
      snprintf(detail, sizeof detail, "rows %lld (meta %lld), sum %lld", rows, meta, sum);
      count(rows == meta && sum == 0, reads[(k - 1) % 5], detail);
    }
    exec(db, "COMMIT");
  }
  sqlite3_close(db);
  return NULL;
}

/* Each transaction moves qty between rows, inserts a pair summing to zero,
 * or deletes one and gives its qty to another: the sum stays zero. */
static void *writer(void *arg) {
  sqlite3 *db = open_db();
  unsigned seed = 7;
  if (!db) {
    count(0, "writer", "open");
    return NULL;
  }
  while (!stop) {
    int a = 1 + rand_r(&seed) % 400, b = 1 + rand_r(&seed) % 400;
    char sql[512];
    switch (rand_r(&seed) % 3) {
      case 0:
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE; UPDATE item SET qty = qty + %d WHERE id = (SELECT min(id) FROM item);"
                 "UPDATE item SET qty = qty - %d WHERE id = (SELECT max(id) FROM item); COMMIT", b, b);
        break;
      case 1:
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE; INSERT INTO item(qty, note) VALUES (%d, 'n'), (-%d, 'm');"
                 "UPDATE meta SET n = n + 2; COMMIT", a, a);
        break;
      default:
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE;"
                 "UPDATE item SET qty = qty + (SELECT qty FROM item WHERE id = (SELECT max(id) FROM item)) "
                 "WHERE id = (SELECT min(id) FROM item) AND (SELECT count(*) FROM item) > 2;"
                 "DELETE FROM item WHERE id = (SELECT max(id) FROM item) AND changes() = 1;"
                 "UPDATE meta SET n = (SELECT count(*) FROM item); COMMIT");
        break;
    }
    if (exec(db, sql) != SQLITE_OK) exec(db, "ROLLBACK");
  }
  sqlite3_close(db);
  return NULL;
}

static void setup(void) {
  sqlite3 *db = open_db();
  if (!db) exit(2);
  exec(db,
       "PRAGMA journal_mode = WAL;"
       "CREATE TABLE item(id INTEGER PRIMARY KEY, qty INTEGER NOT NULL, note TEXT);"
       "CREATE TABLE meta(n INTEGER);"
       "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)"
       "  INSERT INTO item(qty, note) SELECT CASE WHEN i % 2 THEN i ELSE 1 - i END, 'x' || i FROM n;"
       "INSERT INTO meta VALUES ((SELECT count(*) FROM item));"
       "CREATE VIRTUAL TABLE item_m USING modelpack(source = 'item', id INTEGER PRIMARY KEY, qty INTEGER, note TEXT);"
       "CREATE VIRTUAL TABLE item_s USING modelpack(source = 'item', materialize = stored,"
       "  id INTEGER PRIMARY KEY, qty INTEGER, note TEXT);");
  sqlite3_close(db);
}

/* Every stored record equals a fresh pack of its row. */
static void check_stored(void) {
  sqlite3 *db = open_db();
  sqlite3_stmt *st;
  const char *sql =
      "SELECT (SELECT count(*) FROM item), (SELECT count(*) FROM item_s_packed),"
      " (SELECT count(*) FROM item_m m JOIN item_s s ON s.id = m.id"
      "   WHERE m.mode = 'fast' AND s.mode = 'fast')";
  if (!db || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    count(0, "stored check", db ? sqlite3_errmsg(db) : "open");
    return;
  }
  sqlite3_step(st);
  long long n = sqlite3_column_int64(st, 0), s = sqlite3_column_int64(st, 1);
  sqlite3_finalize(st);
  count(n == s, "stored rows", "shadow table and source differ in size");
  /* Compare blobs of both models, row by row, by primary key. */
  sqlite3_prepare_v2(db,
                     "SELECT count(*) FROM item i WHERE (SELECT packed FROM item_m WHERE id = i.id)"
                     " IS NOT (SELECT packed FROM item_s WHERE id = i.id)",
                     -1, &st, NULL);
  sqlite3_step(st);
  char detail[64];
  snprintf(detail, sizeof detail, "%lld records differ", sqlite3_column_int64(st, 0));
  count(sqlite3_column_int64(st, 0) == 0, "stored records", detail);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

int main(int argc, char **argv) {
  pthread_t r[READERS], w;
  if (argc < 2) {
    fprintf(stderr, "usage: test_threads <extension-without-.so> [seconds]\n");
    return 2;
  }
  ext_path = argv[1];
  snprintf(db_path, sizeof db_path, "/tmp/modelpack-threads-%d.db", (int)getpid());
  unlink(db_path);
  setup();
  pthread_create(&w, NULL, writer, NULL);
  for (long i = 0; i < READERS; i++) pthread_create(&r[i], NULL, reader, (void *)i);
  sleep(argc > 2 ? (unsigned)atoi(argv[2]) : 3);
  stop = 1;
  pthread_join(w, NULL);
  for (int i = 0; i < READERS; i++) pthread_join(r[i], NULL);
  check_stored();
  char wal[300];
  unlink(db_path);
  snprintf(wal, sizeof wal, "%s-wal", db_path);
  unlink(wal);
  snprintf(wal, sizeof wal, "%s-shm", db_path);
  unlink(wal);
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
