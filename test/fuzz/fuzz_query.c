/*
 * fuzz_query.c -- libFuzzer target: modelpack_query(model, sql, p1, ...)
 * with every argument taken from the input.
 *
 * modelpack_query runs SQL text it is handed (ext/query.c): it must refuse
 * writes, PRAGMAs, EXPLAIN and multiple statements before they can act,
 * bind parameters by number, match result columns to fields by name (any
 * names, repeats, missing primary key) and pack whatever values come back,
 * per row or in batches, fast or safe.  Here the model name, the SQL, the
 * hidden mask/mode/batch arguments and up to 16 parameters all come from
 * the input, over three models (a hooked one that reads safe in auto
 * mode, a stored one and one keyed by TEXT) on the sources of fuzz_sql.c.
 * The blobs produced are fed back through modelpack_json and
 * modelpack_unpack when the input asks.
 *
 * Input: byte 0 = flags (bit 0 mask, bit 1 mode, bit 2 batch given; bit 3
 * decode the results too), then 0-separated pieces: model name, SQL, then
 * mask, mode, batch for the flags set, then parameters.  Values use the
 * tags of fz_value_of() (fuzz_sql.c): i<int> r<real> t<text> b<blob>
 * x<hex> n; an untagged piece is text.
 *
 * libFuzzer dictionary (fuzz.mk extracts the lines starting with "dict: "):
dict: "book"
dict: "sbook"
dict: "kvm"
dict: "temp."
dict: "SELECT "
dict: " FROM src"
dict: " FROM kv"
dict: " FROM srcv"
dict: " WHERE "
dict: " AS "
dict: "id"
dict: "title"
dict: "price"
dict: "cover"
dict: "in_print"
dict: "author"
dict: "?1"
dict: "?2"
dict: "?"
dict: ":a"
dict: "@b"
dict: "$c"
dict: " ORDER BY "
dict: " LIMIT "
dict: " UNION ALL "
dict: "WITH "
dict: "VALUES"
dict: "PRAGMA "
dict: "EXPLAIN "
dict: "INSERT INTO "
dict: "; "
dict: "--"
dict: "\x2f\x2a"
dict: "\x2a\x2f"
dict: "safe"
dict: "fast"
dict: "auto"
dict: "i-1"
dict: "i9223372036854775807"
dict: "r0.5"
dict: "x00ff"
dict: "n"
dict: "modelpack_query('book', 'SELECT id FROM src')"
dict: "modelpack_json("
dict: "modelpack_unpack("
dict: "modelpack_get("
dict: "modelpack_hooks('book', 'pre_init')"
dict: "modelpack_store('sbook', 9, 'x', 1.5, 1)"
dict: "modelpack_rebuild('sbook')"
dict: "modelpack_mask("
dict: "modelpack_layout("
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sql.c"

#define MAX_PIECE 4096
#define MAX_PARAMS 16

/* Field names that match src's columns partly by name, partly by COLUMN. */
static const char setup[] = FZ_SOURCES
    "CREATE VIRTUAL TABLE temp.book USING modelpack(source = 'src', hooks = 'post_init',"
    " id INTEGER PRIMARY KEY, title TEXT NOT NULL COLUMN c, price REAL COLUMN b,"
    " cover BLOB COLUMN d, in_print BOOLEAN COLUMN e HOOKED, author INTEGER COLUMN a, f TEXT);"
    "CREATE VIRTUAL TABLE temp.sbook USING modelpack(source = 'src', materialize = stored,"
    " id INTEGER PRIMARY KEY, c TEXT, b REAL, e BOOLEAN);"
    "CREATE VIRTUAL TABLE temp.kvm USING modelpack(source = 'kv', k TEXT PRIMARY KEY,"
    " v REAL NOT NULL, w BLOB);";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* One buffer per piece: fz_value_of() points into them. */
  static char buf[3 + 3 + MAX_PARAMS][MAX_PIECE];
  fz_value vals[3 + 3 + MAX_PARAMS];
  size_t len;
  if (size < 1) return 0;
  unsigned flags = data[0];
  fz_input in = {data + 1, size - 1};
  int nval = 0;

  /* model and SQL are bound as text; the rest with their tags. */
  for (int k = 0; k < 2; k++) {
    if (!fz_piece(&in, buf[nval], MAX_PIECE, &len)) return 0;
    memset(&vals[nval], 0, sizeof vals[nval]);
    vals[nval].type = SQLITE_TEXT;
    vals[nval].p = buf[nval];
    vals[nval].n = (int)len;
    nval++;
  }
  static const char *const hidden[] = {"mask", "mode", "batch"};
  char where[128] = "";
  size_t wn = 0;
  for (int h = 0; h < 3; h++) {
    if (!(flags & (1u << h))) continue;
    if (!fz_piece(&in, buf[nval], MAX_PIECE, &len)) break;
    fz_value_of(buf[nval], len, &vals[nval]);
    nval++;
    wn += (size_t)snprintf(where + wn, sizeof where - wn, "%s q.%s = ?%d",
                           wn ? " AND" : " WHERE", hidden[h], nval);
  }
  int nfixed = nval;
  while (nval < 3 + 3 + MAX_PARAMS && fz_piece(&in, buf[nval], MAX_PIECE, &len)) {
    fz_value_of(buf[nval], len, &vals[nval]);
    nval++;
  }

  /* modelpack_query(?1, ?2, <parameters>) with the hidden ones in WHERE. */
  char sql[1024];
  size_t n = (size_t)snprintf(sql, sizeof sql, "SELECT %s FROM modelpack_query(?1, ?2",
                              (flags & 8) ? "q.packed, q.mask, q.mode, q.batch, q.rowid,"
                                            " modelpack_json(?1, q.packed)"
                                          : "q.packed, q.mask, q.mode");
  for (int k = nfixed; k < nval; k++) n += (size_t)snprintf(sql + n, sizeof sql - n, ", ?%d", k + 1);
  snprintf(sql + n, sizeof sql - n, ") AS q%s", where);

  /* Reused (fz_shared_open): modelpack_query only runs read-only
   * statements, and the three models cost more to set up than most inputs
   * to run.  What a "read-only" SELECT can still change is the run-time
   * hooks (modelpack_hooks) and sbook's stored records (modelpack_store,
   * _unstore and _rebuild write from inside a SELECT), so both are put
   * back before each input. */
  static fz_shared_db shared;
  sqlite3 *db = fz_shared_open(&shared, setup,
                               "SELECT modelpack_hooks('book', ''), modelpack_hooks('sbook', ''),"
                               " modelpack_hooks('kvm', ''), modelpack_rebuild('sbook')");
  fz_check_packed = 1; /* q.packed is modelpack_query's own column */
  fz_run(db, sql, vals, nval);
  if (flags & 8) {
    /* The first blob back through the table-valued unpacker. */
    char sql2[1200];
    snprintf(sql2, sizeof sql2,
             "SELECT u.* FROM (%s LIMIT 1) AS r, modelpack_unpack(?1, r.packed) AS u", sql);
    fz_run(db, sql2, vals, nval);
  }
  fz_shared_done(&shared);
  return 0;
}
