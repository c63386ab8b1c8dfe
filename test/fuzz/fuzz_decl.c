/*
 * fuzz_decl.c -- libFuzzer target: the model declaration parser, and the
 * model table built from whatever it accepts.
 *
 * The arguments of CREATE VIRTUAL TABLE ... USING modelpack(...) are the
 * one piece of text the extension parses itself (ext/decl.c: its own
 * lexer, quoting, options, field options), and they also arrive from
 * database files, since SQLite re-parses the stored declaration whenever
 * a connection first uses the table (docs/SECURITY.md).  The target runs
 *     CREATE VIRTUAL TABLE temp.m USING modelpack(<input>)
 * in a fresh in-memory database whose source tables (fuzz_sql.c) offer
 * every storage class; when the declaration is accepted it reads the
 * model every way the SQL reference offers -- per row, batches, masks,
 * safe mode, unpack, the inspection functions, modelpack_query, and for
 * stored models writes through the triggers and a rebuild -- then drops
 * it.  Errors are expected; ASan/UBSan reports, leaks and statements left
 * unfinalized are findings.
 *
 * Input: the declaration text, up to the first 0 byte; each further
 * 0-separated piece is one more SQL statement run against the model
 * (WHERE/ORDER BY/LIMIT pushed down to the source by plan.c), at most 4.
 *
 * libFuzzer dictionary (fuzz.mk extracts the lines starting with "dict: "):
dict: "source"
dict: "source = 'src'"
dict: "source = 'kv'"
dict: "source = 'srcv'"
dict: "main."
dict: "temp."
dict: "hooks"
dict: "hooks = 'post_init'"
dict: "pre_init,custom_init,setattr:"
dict: "materialize = stored"
dict: "materialize"
dict: "INTEGER"
dict: "REAL"
dict: "TEXT"
dict: "BLOB"
dict: "BOOLEAN"
dict: "PRIMARY KEY"
dict: "NOT NULL"
dict: "HOOKED"
dict: "COLUMN"
dict: "id INTEGER PRIMARY KEY"
dict: "k TEXT PRIMARY KEY"
dict: ", "
dict: "\""
dict: "'"
dict: "["
dict: "`"
dict: "="
dict: "\x00SELECT packed FROM m WHERE "
dict: "mask"
dict: "mode"
dict: "batch"
dict: "unpack"
dict: "packed"
dict: "ORDER BY"
dict: "LIMIT"
dict: " IS NULL"
dict: " LIKE "
dict: " GLOB "
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sql.c"

#define MAX_DECL 8192
#define MAX_EXTRA 4

/* Every way to read a model: one statement each, all run in order. */
static const char *const reads[] = {
    "SELECT packed FROM temp.m",
    "SELECT packed, mask, mode, rowid FROM temp.m WHERE batch = 2",
    "SELECT * FROM temp.m WHERE mask = 1",
    "SELECT packed FROM temp.m WHERE mode = 'safe'",
    "SELECT packed FROM temp.m WHERE mode = 'fast' AND batch = 1000",
    "SELECT packed FROM temp.m ORDER BY 1 DESC LIMIT 3 OFFSET 1",
    ("SELECT modelpack_layout('temp.m'), modelpack_layout('temp.m', 1),"
     " modelpack_mask('temp.m'), modelpack_hooks('temp.m')"),
    "SELECT modelpack_json('temp.m', packed) FROM temp.m",
    "SELECT modelpack_json('temp.m', packed) FROM temp.m WHERE batch = 3",
    "SELECT u.* FROM temp.m AS m, modelpack_unpack('temp.m', m.packed) AS u",
    "SELECT * FROM temp.m WHERE unpack = (SELECT packed FROM temp.m WHERE batch = 4 LIMIT 1)",
    "SELECT modelpack_get('temp.m', packed, 0), modelpack_get('temp.m', packed, 0, 0) FROM temp.m",
    "SELECT modelpack_hooks('temp.m', 'post_init')",
    "SELECT packed, mode FROM temp.m",
    "SELECT packed FROM modelpack_query('temp.m', 'SELECT * FROM src')",
    "SELECT packed FROM modelpack_query('temp.m', 'SELECT * FROM kv') WHERE batch = 2",
    /* Stored models: the triggers, then a rebuild; others just fail here. */
    "INSERT INTO src VALUES (100, 1, 2.0, 'new', x'aa', 1, 'f')",
    "UPDATE src SET id = 101, c = NULL WHERE id = 100",
    "DELETE FROM src WHERE id = 2",
    "INSERT INTO kv VALUES ('z', 3, 4)",
    "SELECT modelpack_rebuild('temp.m')",
    "SELECT packed FROM temp.m WHERE id = 101",
    "SELECT packed FROM temp.m WHERE batch = 5",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char decl[MAX_DECL];
  fz_input in = {data, size};
  size_t len;
  if (!fz_piece(&in, decl, sizeof decl, &len)) return 0;
  sqlite3 *db = fz_open(FZ_SOURCES);
  char *create = sqlite3_mprintf("CREATE VIRTUAL TABLE temp.m USING modelpack(%s)", decl);
  if (!create) fz_die(db, "sqlite3_mprintf", NULL);
  int rc = fz_run(db, create, NULL, 0);
  sqlite3_free(create);
  if (rc == SQLITE_DONE) {
    fz_check_packed = 1;
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) fz_run(db, reads[i], NULL, 0);
    fz_check_packed = 0;
    static char extra[MAX_DECL];
    for (int k = 0; k < MAX_EXTRA && fz_piece(&in, extra, sizeof extra, &len); k++)
      fz_run(db, extra, NULL, 0);
    fz_run(db, "DROP TABLE temp.m", NULL, 0);
  }
  fz_close(db);
  return 0;
}
