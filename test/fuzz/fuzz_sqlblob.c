/*
 * fuzz_sqlblob.c -- libFuzzer target: packed blobs from anywhere, handed
 * to the SQL functions that read them.
 *
 * modelpack_get, modelpack_json, modelpack_unpack and the model table's
 * `WHERE unpack = ?` accept a blob from SQL -- a parameter, another
 * database, a column an attacker wrote -- validate it (ext/blob.c:
 * mp_view_open plus the model's fingerprint and TEXT/BLOB set) and then
 * read it by the model's field types.  The blob comes from the input,
 * its header optionally repaired by fz_fixup() (fuzz_fixup.c) with the
 * model's own fingerprint for the blob's mask, so the readers past
 * validation are reached; every field of the first records is fetched,
 * by index and by name, and some out-of-range indexes.
 *
 * Input: byte 0 = flags: bits 0-1 pick the model (book, the 64-field
 * wide model, the TEXT-keyed kvm, or the stored sbook), bits 2-5 the
 * header parts to repair (FZ_FIX_*); the rest is the blob.
 *
 * The database is kept for a few hundred inputs (fz_shared_open; it is
 * only read); FUZZ_FRESH=1 gives each input its own.
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_fixup.c"
#include "fuzz_sql.c"

#define MAX_RECORDS 4 /* records read one field at a time */

/* Models matching the layouts below field for field (names and types). */
static char setup[16384];
static fz_layout layouts[4];
static const char *const model_names[4] = {"book", "wide", "kvm", "sbook"};

static void build_setup(void) {
  static const char *const tname[] = {"", "INTEGER", "REAL", "TEXT", "BLOB", "BOOLEAN"};
  size_t n = (size_t)snprintf(setup, sizeof setup, "%s", FZ_SOURCES
      "CREATE VIRTUAL TABLE temp.book USING modelpack(source = 'src', f0 INTEGER PRIMARY KEY"
      " COLUMN id, f1 TEXT COLUMN c, f2 REAL COLUMN b, f3 BLOB COLUMN d, f4 BOOLEAN COLUMN e,"
      " f5 INTEGER COLUMN a);"
      "CREATE VIRTUAL TABLE temp.kvm USING modelpack(source = 'kv', f0 TEXT PRIMARY KEY"
      " COLUMN k, f1 REAL COLUMN v, f2 BLOB COLUMN w);"
      "CREATE VIRTUAL TABLE temp.sbook USING modelpack(source = 'src', materialize = stored,"
      " f0 INTEGER PRIMARY KEY COLUMN id, f1 TEXT COLUMN c, f2 REAL COLUMN b);");
  /* wide: 64 fields f0..f63 cycling the types, over a view of src. */
  fz_layout_cycle(&layouts[1], MP_MAX_FIELDS);
  n += (size_t)snprintf(setup + n, sizeof setup - n, "CREATE VIEW widev AS SELECT id AS f0");
  for (int i = 1; i < MP_MAX_FIELDS; i++)
    n += (size_t)snprintf(setup + n, sizeof setup - n, ", %c AS f%d", "abcdef"[i % 6], i);
  n += (size_t)snprintf(setup + n, sizeof setup - n,
                        " FROM src; CREATE VIRTUAL TABLE temp.wide USING modelpack(source = 'widev'");
  for (int i = 0; i < MP_MAX_FIELDS; i++)
    n += (size_t)snprintf(setup + n, sizeof setup - n, ", f%d %s%s", i,
                          tname[layouts[1].types[i]], i == 0 ? " PRIMARY KEY" : "");
  snprintf(setup + n, sizeof setup - n, ");");

  fz_layout_cycle(&layouts[0], 6);
  layouts[0].types[1] = MP_TEXT, layouts[0].types[2] = MP_REAL, layouts[0].types[3] = MP_BLOB;
  layouts[0].types[4] = MP_BOOLEAN, layouts[0].types[5] = MP_INTEGER;
  fz_layout_cycle(&layouts[2], 3);
  layouts[2].types[0] = MP_TEXT, layouts[2].types[1] = MP_REAL, layouts[2].types[2] = MP_BLOB;
  fz_layout_cycle(&layouts[3], 3);
  layouts[3].types[0] = MP_INTEGER, layouts[3].types[1] = MP_TEXT, layouts[3].types[2] = MP_REAL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!setup[0]) build_setup();
  if (size < 1) return 0;
  unsigned flags = data[0];
  int which = (int)(flags & 3);
  const fz_layout *l = &layouts[which];
  size_t len = size - 1;
  uint8_t *blob = calloc(1, len ? len : 1);
  if (!blob) return 0;
  if (len) memcpy(blob, data + 1, len);
  fz_fixup(blob, len, (flags >> 2) & 0xF, l);

  fz_value v[4];
  memset(v, 0, sizeof v);
  v[0].type = SQLITE_TEXT;
  v[0].p = model_names[which];
  v[0].n = -1;
  v[1].type = SQLITE_BLOB;
  v[1].p = blob;
  v[1].n = (int)len;

  /* Nothing here writes, and setting up the wide and stored models costs
   * far more than the reads: one database serves many inputs. */
  static fz_shared_db shared;
  sqlite3 *db = fz_shared_open(&shared, setup, NULL);
  fz_run(db, "SELECT modelpack_json(?1, ?2)", v, 2);
  fz_run(db, "SELECT * FROM modelpack_unpack(?1, ?2)", v, 2);
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT * FROM temp.%s WHERE unpack = ?1", model_names[which]);
  fz_run(db, sql, v + 1, 1);

  /* One field at a time: by index, by name, and out of range. */
  uint32_t count = len >= MP_HEADER_SIZE ? mp_rd32(blob + MP_H_COUNT) : 1;
  if (count > MAX_RECORDS) count = MAX_RECORDS;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "SELECT modelpack_get(?1, ?2, ?3, ?4)", -1, &st, NULL) == SQLITE_OK) {
    fz_bind(st, 1, &v[0]);
    fz_bind(st, 2, &v[1]);
    for (uint32_t r = 0; r <= count; r++) {
      for (int f = -1; f <= l->n; f++) {
        if (f >= 0 && f < l->n && (f + (int)r) % 2)
          sqlite3_bind_text(st, 3, l->names[f], -1, SQLITE_STATIC);
        else
          sqlite3_bind_int(st, 3, f);
        sqlite3_bind_int64(st, 4, r == count ? -1 : (sqlite3_int64)r);
        while (sqlite3_step(st) == SQLITE_ROW) fz_touch_row(st);
        sqlite3_reset(st);
      }
    }
  }
  sqlite3_finalize(st);
  fz_shared_done(&shared);
  free(blob);
  return 0;
}
