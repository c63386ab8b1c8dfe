/*
 * test_decode.c -- C round-trip and validator test for modelpack blobs.
 *
 *   test_decode <extension-path-without-.so> [<database-file>]
 *
 * Round trip.  Without a database file the test builds its own in-memory
 * source table of seeded pseudo-random rows (NULLs, empty and long strings,
 * multi-byte UTF-8, blobs up to 1 MiB, int64 and double extremes), declares
 * a six-field model over it, and decodes packed rows with
 * include/modelpack.h, comparing each with the same row read straight from
 * the source with sqlite3_column_*, in fast and safe mode.  The expected
 * fingerprint comes from the test's own field list, so a packer and a
 * header that drift together are still caught.  Every deferred-field mask
 * is tried on a copy of the first 150 rows with the long values cut short;
 * a few masks on the full rows (huge values make every pass slow, under
 * ASan above all).  The same comparisons then cover:
 *   - batches (WHERE batch = N, N = 1, 2, 3, 7, 100, 1000): every blob
 *     validated once, every record compared with the source rows in order,
 *     every batch full but the last, ceil(rows / N) batches, BATCH flag,
 *     rowid = batch number, ORDER BY the key descending, an empty result;
 *   - modelpack_query: the source's rows per row and in batches, and a
 *     query that renames, reorders and leaves out columns and takes
 *     parameters;
 *   - a materialize = stored model over the same source: its blobs decode
 *     like the packing model's, per row and in batches, also after inserts,
 *     updates (of the key too) and deletes went through its triggers;
 *   - the ASCII flag: set only when every TEXT byte is ASCII, and (reading
 *     from values) always then.
 * With a database file, every modelpack model in it is checked per row
 * under every mask and in batches under a few, against the model table's
 * own field columns (which always show the source's values).
 *
 * Validator.  A few valid blobs (per row, deferred, a batch assembled by
 * hand, and two batches as the extension emits them) are mutated thousands
 * of ways -- every truncation, every value of every header byte, every
 * value of every record and heap byte, huge heap offsets and lengths,
 * wrapping record counts, random corruption and forged but self-consistent
 * headers -- and each mutant is handed to mp_view_open() in a malloc
 * buffer of exactly its size.  Under `make test-asan` any read
 * past that buffer is an ASan report.  Acceptance must also agree with an
 * independent, deliberately plain re-statement of the rules in
 * docs/FORMAT.md, and every accepted mutant is read in full through the
 * getters with each pointer checked against the buffer.
 *
 * The Tcl suite runs this program; it prints each failure with details and
 * ends with "N passed, M failed" (exit status 1 if anything failed).
 * MODELPACK_TEST_SEED=<n> in the environment picks another data seed.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../include/modelpack.h"

#define NROWS 300
#define MAX_SHOWN 40 /* failures printed in full; the rest are only counted */
#define MAX_MASKS 256

/* ---------------------------------------------------------------- results */

static long n_passed, n_failed, n_shown;

static void tally(int ok) {
  if (ok)
    n_passed++;
  else
    n_failed++;
}

/* Print a failure, but only the first MAX_SHOWN: one bug tends to fail
 * thousands of mutants the same way, and the first few say it all. */
static int failf(const char *fmt, ...) {
  if (n_shown++ < MAX_SHOWN) {
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
  } else if (n_shown == MAX_SHOWN + 1) {
    puts("(further failure details suppressed)");
  }
  return 0;
}

/* ------------------------------------------------------------------ random */

static uint64_t rng_state;

/* splitmix64: tiny, seedable, and the same sequence on every platform, so a
 * failing seed reproduces anywhere. */
static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t n) { return n ? rnd() % n : 0; }

/* The first rows take every case of a generator in turn, so each extreme is
 * in the data whatever the seed; later rows pick cases at random. */
static int pick(int row, int ncases) {
  return row <= ncases ? row - 1 : (int)rnd_below((uint64_t)ncases);
}

/* ------------------------------------------------------------------ models */

typedef struct field {
  char *name;   /* field name, as hashed into the fingerprint */
  char *column; /* source column */
  int type;     /* MP_INTEGER ... MP_BOOLEAN */
} field;

typedef struct model {
  char *name;
  int nfield, pk;
  field f[MP_MAX_FIELDS];
  const char *names[MP_MAX_FIELDS];
  unsigned char types[MP_MAX_FIELDS];
  char *ref_sql; /* reference rows: one column per field, ORDER BY pk */
  int from_file; /* a safe-mode refusal is then a property of the data */
} model;

static int type_code(const char *name) {
  static const char *const names[] = {"", "INTEGER", "REAL", "TEXT", "BLOB",
                                      "BOOLEAN"};
  for (int t = MP_INTEGER; t <= MP_BOOLEAN; t++)
    if (name && strcmp(name, names[t]) == 0) return t;
  return 0;
}

static int is_var(int type) { return type == MP_TEXT || type == MP_BLOB; }

static void model_add(model *m, const char *name, const char *column,
                      int type) {
  field *f = &m->f[m->nfield];
  f->name = sqlite3_mprintf("%s", name);
  f->column = sqlite3_mprintf("%s", column);
  f->type = type;
  m->names[m->nfield] = f->name;
  m->types[m->nfield] = (unsigned char)type;
  m->nfield++;
}

static void model_free(model *m) {
  for (int i = 0; i < m->nfield; i++) {
    sqlite3_free(m->f[i].name);
    sqlite3_free(m->f[i].column);
  }
  sqlite3_free(m->name);
  sqlite3_free(m->ref_sql);
  memset(m, 0, sizeof *m);
}

static uint64_t varmask_of(const model *m, uint64_t mask) {
  uint64_t v = 0;
  for (int i = 0; i < m->nfield; i++)
    if (((mask >> i) & 1) && is_var(m->f[i].type)) v |= (uint64_t)1 << i;
  return v;
}

/* The Python struct format of a record, built from our own field list. */
static void struct_format(const model *m, uint64_t mask, char *out,
                          size_t cap) {
  size_t n = 0;
  out[n++] = '<';
  out[n++] = 'Q';
  for (int i = 0; i < m->nfield && n + 3 < cap; i++) {
    if (!((mask >> i) & 1)) continue;
    const char *s = m->f[i].type == MP_REAL ? "d" : is_var(m->f[i].type) ? "II" : "q";
    while (*s) out[n++] = *s++;
  }
  out[n] = 0;
}

/* "2I" and "II" mean the same to Python's struct: compare expanded forms. */
static void expand_format(const char *in, char *out, size_t cap) {
  size_t n = 0;
  while (*in && n + 1 < cap) {
    long rep = 0;
    while (*in >= '0' && *in <= '9') rep = rep * 10 + (*in++ - '0');
    if (!*in) break;
    for (long k = 0; k < (rep ? rep : 1) && n + 1 < cap; k++) out[n++] = *in;
    in++;
  }
  out[n] = 0;
}

/* ---------------------------------------------------------------- database */

static sqlite3 *open_with_extension(const char *path, int flags,
                                    const char *ext) {
  sqlite3 *db = NULL;
  char *err = NULL;
  if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
    failf("cannot open %s: %s", path, sqlite3_errmsg(db));
    sqlite3_close(db);
    return NULL;
  }
  sqlite3_enable_load_extension(db, 1);
  if (sqlite3_load_extension(db, ext, NULL, &err) != SQLITE_OK) {
    failf("cannot load extension %s: %s", ext, err ? err : "?");
    sqlite3_free(err);
    sqlite3_close(db);
    return NULL;
  }
  return db;
}

static int exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK) return 1;
  failf("%s\n  -> %s", sql, err ? err : sqlite3_errmsg(db));
  sqlite3_free(err);
  return 0;
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    failf("prepare %s\n  -> %s", sql, sqlite3_errmsg(db));
  return st;
}

/* modelpack_layout(model, mask) as text, or NULL (reported). */
static char *layout_json(sqlite3 *db, const char *model, uint64_t mask) {
  sqlite3_stmt *st = prepare(db, "SELECT modelpack_layout(?1, ?2)");
  char *json = NULL;
  if (!st) return NULL;
  sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)mask);
  if (sqlite3_step(st) == SQLITE_ROW)
    json = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 0));
  else
    failf("modelpack_layout('%s', %" PRIu64 "): %s", model, mask,
          sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return json;
}

/* ------------------------------------------------------- generated source */

static const char SRC_DDL[] =
    "CREATE TABLE src(id INTEGER PRIMARY KEY, n INTEGER, x REAL, s TEXT,"
    " b BLOB, f BOOLEAN)";

/* The first 150 rows with every string and blob longer than 200 bytes cut
 * short, so the first rows' edge cases are all there: the passes that try
 * every mask (with every batch size) read these, and only a few passes
 * read the huge values, which make every pass slow (under ASan above all). */
static const char SMALL_DDL[] =
    "CREATE TABLE src_small(id INTEGER PRIMARY KEY, n INTEGER, x REAL, s TEXT,"
    " b BLOB, f BOOLEAN);"
    "INSERT INTO src_small SELECT id, n, x,"
    " CASE WHEN length(CAST(s AS BLOB)) > 200 THEN substr(s, 1, 40) ELSE s END,"
    " CASE WHEN length(b) > 200 THEN substr(b, 1, 100) ELSE b END, f"
    " FROM src ORDER BY id LIMIT 150";

/* COLUMN options on purpose: field names and source columns differ, so a
 * packer that reads columns by field name would fail loudly.  `stored`
 * adds materialize = stored: the same fields, kept pre-packed. */
static int create_model(sqlite3 *db, const char *name, const char *source, int stored) {
  char *sql = sqlite3_mprintf(
      "CREATE VIRTUAL TABLE \"%w\" USING modelpack(source='%q',%s"
      " id INTEGER PRIMARY KEY, qty INTEGER COLUMN n, price REAL COLUMN x,"
      " title TEXT COLUMN s, cover BLOB COLUMN b, in_print BOOLEAN COLUMN f)",
      name, source, stored ? " materialize = stored," : "");
  int ok = sql && exec(db, sql);
  sqlite3_free(sql);
  return ok;
}

static void own_model(model *m, const char *name, const char *source) {
  memset(m, 0, sizeof *m);
  m->name = sqlite3_mprintf("%s", name);
  model_add(m, "id", "id", MP_INTEGER);
  model_add(m, "qty", "n", MP_INTEGER);
  model_add(m, "price", "x", MP_REAL);
  model_add(m, "title", "s", MP_TEXT);
  model_add(m, "cover", "b", MP_BLOB);
  model_add(m, "in_print", "f", MP_BOOLEAN);
  m->pk = 0;
  m->ref_sql = sqlite3_mprintf("SELECT id, n, x, s, b, f FROM \"%w\" ORDER BY id", source);
}

typedef struct bytes {
  uint8_t *p;
  size_t n, cap;
} bytes;

static void bytes_put(bytes *b, const void *p, size_t n) {
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + n) cap *= 2;
    uint8_t *np = realloc(b->p, cap);
    if (!np) abort();
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
}

static void put_utf8(bytes *b, uint32_t cp) {
  uint8_t u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (uint8_t)cp, n = 1;
  } else if (cp < 0x800) {
    u[0] = (uint8_t)(0xC0 | (cp >> 6)), u[1] = (uint8_t)(0x80 | (cp & 0x3F)), n = 2;
  } else if (cp < 0x10000) {
    u[0] = (uint8_t)(0xE0 | (cp >> 12)), u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (uint8_t)(0x80 | (cp & 0x3F)), n = 3;
  } else {
    u[0] = (uint8_t)(0xF0 | (cp >> 18)), u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (uint8_t)(0x80 | (cp & 0x3F));
    n = 4;
  }
  bytes_put(b, u, n);
}

/* A random scalar value of the given UTF-8 width (1-4 bytes); never a
 * surrogate, which is not valid UTF-8 and would (rightly) fail safe mode. */
static uint32_t rnd_codepoint(int width) {
  switch (width) {
    case 1: return 0x20 + (uint32_t)rnd_below(0x5F);
    case 2: return 0x80 + (uint32_t)rnd_below(0x800 - 0x80);
    case 3: {
      uint32_t cp = 0x800 + (uint32_t)rnd_below(0x10000 - 0x800);
      return (cp >= 0xD800 && cp <= 0xDFFF) ? 0xE9 : cp;
    }
    default: return 0x10000 + (uint32_t)rnd_below(0x110000 - 0x10000);
  }
}

/* nchar characters, each of width `width` (0 = a random mix). */
static void rnd_text(bytes *b, size_t nchar, int width) {
  for (size_t i = 0; i < nchar; i++)
    put_utf8(b, rnd_codepoint(width ? width : 1 + (int)rnd_below(4)));
}

static void bind_int(sqlite3_stmt *st, int col, int row) {
  sqlite3_int64 v;
  switch (pick(row, 9)) {
    case 0: sqlite3_bind_null(st, col); return;
    case 1: v = INT64_MIN; break;
    case 2: v = INT64_MAX; break;
    case 3: v = 0; break;
    case 4: v = -1; break;
    case 5: v = INT64_MIN + 1; break;
    case 6: v = (sqlite3_int64)rnd_below(2001) - 1000; break;
    case 7: v = (int32_t)(uint32_t)rnd(); break;
    default: v = (sqlite3_int64)rnd(); break;
  }
  sqlite3_bind_int64(st, col, v);
}

static double rnd_double_bits(int denormal) {
  uint64_t u = rnd();
  double d;
  if (denormal) u &= 0x800FFFFFFFFFFFFFULL; /* exponent 0: subnormal */
  if (((u >> 52) & 0x7FF) == 0x7FF) u &= ~((uint64_t)1 << 62); /* no NaN/inf */
  memcpy(&d, &u, sizeof d);
  return d;
}

static void bind_real(sqlite3_stmt *st, int col, int row) {
  double v;
  switch (pick(row, 14)) {
    case 0: sqlite3_bind_null(st, col); return;
    case 1: v = HUGE_VAL; break;
    case 2: v = -HUGE_VAL; break;
    case 3: v = DBL_TRUE_MIN; break;
    case 4: v = -DBL_TRUE_MIN; break;
    case 5: v = rnd_double_bits(1); break;
    case 6: v = DBL_MAX; break;
    case 7: v = -DBL_MAX; break;
    case 8: v = 0.0; break;
    case 9: v = -0.0; break;
    case 10: v = DBL_MIN; break;
    case 11: v = 3.0; break;
    case 12: v = ((double)rnd_below(2000001) - 1000000.0) / 64.0; break;
    default: v = rnd_double_bits(0); break;
  }
  sqlite3_bind_double(st, col, v);
}

static void bind_text(sqlite3_stmt *st, int col, int row) {
  bytes b = {0};
  switch (pick(row, 9)) {
    case 0: sqlite3_bind_null(st, col); return;
    case 1: break; /* empty */
    case 2: rnd_text(&b, 1 + rnd_below(30), 1); break;
    case 3: rnd_text(&b, 1 + rnd_below(30), 0); break;
    case 4: rnd_text(&b, 10000 + rnd_below(20000), 0); break;
    case 5: rnd_text(&b, 100000, 1); break;
    case 6: /* U+0000 is valid UTF-8: the length, not the NUL, ends it */
      bytes_put(&b, "a\0b", 3);
      rnd_text(&b, rnd_below(5), 0);
      break;
    case 7: rnd_text(&b, 1 + rnd_below(8), 4); break;
    default: rnd_text(&b, 10 + rnd_below(20), 0); break;
  }
  sqlite3_bind_text(st, col, b.p ? (const char *)b.p : "", (int)b.n,
                    SQLITE_TRANSIENT);
  free(b.p);
}

static void bind_blob(sqlite3_stmt *st, int col, int row) {
  size_t n;
  int k = pick(row, 7);
  /* Large blobs are rare after the first rows: 32 mask passes copy them. */
  if (row > 7 && rnd_below(40) == 0) k = 6;
  switch (k) {
    case 0: sqlite3_bind_null(st, col); return;
    case 1: n = 0; break;
    case 2: n = (size_t)1 << 20; break;
    case 3: n = 1 + rnd_below(64); break;
    case 4: n = 1 + rnd_below(4096); break;
    case 5: n = 16; break; /* all zero bytes below */
    default: n = 1 + rnd_below((uint64_t)1 << 20); break;
  }
  uint8_t *p = malloc(n ? n : 1);
  if (!p) abort();
  for (size_t i = 0; i < n; i++) p[i] = k == 5 ? 0 : (uint8_t)rnd();
  sqlite3_bind_blob(st, col, p, (int)n, SQLITE_TRANSIENT);
  free(p);
}

static void bind_bool(sqlite3_stmt *st, int col, int row) {
  int k = pick(row, 3);
  if (k == 0)
    sqlite3_bind_null(st, col);
  else
    sqlite3_bind_int(st, col, k - 1);
}

static int fill_source(sqlite3 *db, int nrows) {
  sqlite3_stmt *st = prepare(db, "INSERT INTO src VALUES(?1,?2,?3,?4,?5,?6)");
  if (!st || !exec(db, "BEGIN")) return 0;
  for (int row = 1; row <= nrows; row++) {
    sqlite3_bind_int(st, 1, row);
    bind_int(st, 2, row);
    bind_real(st, 3, row);
    bind_text(st, 4, row);
    bind_blob(st, 5, row);
    bind_bool(st, 6, row);
    if (sqlite3_step(st) != SQLITE_DONE) {
      failf("insert row %d: %s", row, sqlite3_errmsg(db));
      sqlite3_finalize(st);
      return 0;
    }
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  return exec(db, "COMMIT");
}

/* ------------------------------------------------------- layout cross-check */

/* The fields reported by modelpack_layout must be the ones we declared. */
static int check_declared_fields(sqlite3 *db, const model *m, const char *json) {
  sqlite3_stmt *st = prepare(db,
      "SELECT json_extract(value,'$.name'), json_extract(value,'$.type'),"
      " json_extract(value,'$.column'), json_extract(value,'$.pk')"
      " FROM json_each(?1, '$.fields') ORDER BY CAST(key AS INTEGER)");
  int ok = st != NULL, i = 0;
  if (!st) return 0;
  sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
  for (; sqlite3_step(st) == SQLITE_ROW; i++) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    const char *type = (const char *)sqlite3_column_text(st, 1);
    const char *col = (const char *)sqlite3_column_text(st, 2);
    int pk = sqlite3_column_int(st, 3);
    if (i >= m->nfield || !name || !col || strcmp(name, m->f[i].name) ||
        type_code(type) != m->f[i].type || strcmp(col, m->f[i].column) ||
        pk != (i == m->pk))
      ok = failf("%s: layout field %d is %s %s column %s pk %d, declared %s/%d/%s",
                 m->name, i, name ? name : "?", type ? type : "?",
                 col ? col : "?", pk, i < m->nfield ? m->f[i].name : "(none)",
                 i < m->nfield ? m->f[i].type : 0,
                 i < m->nfield ? m->f[i].column : "");
  }
  if (i != m->nfield)
    ok = failf("%s: layout has %d fields, declared %d", m->name, i, m->nfield);
  sqlite3_finalize(st);
  return ok;
}

/* Header-level layout facts for one mask. */
static int check_layout_header(sqlite3 *db, const model *m, const char *json,
                               uint64_t mask, uint64_t fp) {
  sqlite3_stmt *st = prepare(db,
      "SELECT json_extract(?1,'$.fingerprint'), json_extract(?1,'$.mask'),"
      " json_extract(?1,'$.record_size'), json_extract(?1,'$.struct'),"
      " json_extract(?1,'$.layout_version'), json_extract(?1,'$.header_size'),"
      " json_extract(?1,'$.pk')");
  int ok = st != NULL;
  if (!st) return 0;
  sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_ROW) {
    sqlite3_finalize(st);
    return failf("%s: cannot read layout JSON: %s", m->name, sqlite3_errmsg(db));
  }
  const char *hex = (const char *)sqlite3_column_text(st, 0);
  char want_hex[17], want_struct[200], got_struct[200];
  snprintf(want_hex, sizeof want_hex, "%016" PRIx64, fp);
  struct_format(m, mask, want_struct, sizeof want_struct);
  expand_format(sqlite3_column_text(st, 3) ? (const char *)sqlite3_column_text(st, 3) : "",
                got_struct, sizeof got_struct);
  if (!hex || strcmp(hex, want_hex) != 0)
    ok = failf("%s mask %" PRIu64 ": layout fingerprint %s, mp_fingerprint of our fields %s",
               m->name, mask, hex ? hex : "NULL", want_hex);
  if ((uint64_t)sqlite3_column_int64(st, 1) != mask)
    ok = failf("%s: layout mask %lld, expected %" PRIu64, m->name,
               sqlite3_column_int64(st, 1), mask);
  if (sqlite3_column_int64(st, 2) != mp_record_size(mask))
    ok = failf("%s mask %" PRIu64 ": layout record_size %lld, expected %u", m->name,
               mask, sqlite3_column_int64(st, 2), mp_record_size(mask));
  if (strcmp(got_struct, want_struct) != 0)
    ok = failf("%s mask %" PRIu64 ": layout struct %s, expected %s", m->name, mask,
               got_struct, want_struct);
  if (sqlite3_column_int(st, 4) != MP_LAYOUT_VERSION ||
      sqlite3_column_int(st, 5) != MP_HEADER_SIZE || sqlite3_column_int(st, 6) != m->pk)
    ok = failf("%s: layout_version/header_size/pk are %d/%d/%d", m->name,
               sqlite3_column_int(st, 4), sqlite3_column_int(st, 5),
               sqlite3_column_int(st, 6));
  sqlite3_finalize(st);
  return ok;
}

/* Per-field loaded flag, offset and format for one mask. */
static int check_layout_fields(sqlite3 *db, const model *m, const char *json,
                               uint64_t mask) {
  sqlite3_stmt *st = prepare(db,
      "SELECT CAST(key AS INTEGER), json_extract(value,'$.loaded'),"
      " json_extract(value,'$.offset') FROM json_each(?1, '$.fields')");
  int ok = st != NULL;
  if (!st) return 0;
  sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
  while (sqlite3_step(st) == SQLITE_ROW) {
    int i = sqlite3_column_int(st, 0);
    int loaded = sqlite3_column_int(st, 1);
    int want = i >= 0 && i < 64 && ((mask >> i) & 1);
    if (loaded != want)
      ok = failf("%s mask %" PRIu64 ": layout says field %d loaded=%d", m->name,
                 mask, i, loaded);
    else if (want && sqlite3_column_int64(st, 2) != mp_slot_offset(mask, i))
      ok = failf("%s mask %" PRIu64 ": layout offset of field %d is %lld, header says %u",
                 m->name, mask, i, sqlite3_column_int64(st, 2), mp_slot_offset(mask, i));
    else if (!want && sqlite3_column_type(st, 2) != SQLITE_NULL)
      ok = failf("%s mask %" PRIu64 ": deferred field %d has an offset", m->name,
                 mask, i);
  }
  sqlite3_finalize(st);
  return ok;
}

static int check_layout(sqlite3 *db, const model *m, uint64_t mask,
                        uint64_t fp) {
  char *json = layout_json(db, m->name, mask);
  if (!json) return 0;
  int ok = check_layout_header(db, m, json, mask, fp);
  ok &= check_layout_fields(db, m, json, mask);
  sqlite3_free(json);
  return ok;
}

/* ----------------------------------------------------------- round trip */

typedef struct pass {
  const model *m;
  uint64_t req_mask; /* as passed in WHERE mask = ? */
  uint64_t mask;     /* effective: primary key added */
  uint64_t varmask, fp;
  int safe;
  sqlite3_int64 row; /* current row number, for messages */
  uint32_t rec;      /* record of the blob being checked */
  char label[160];   /* what is read: model, and how */
} pass;

static void pk_label(sqlite3_stmt *ref, int col, char *out, size_t cap) {
  if (sqlite3_column_type(ref, col) == SQLITE_INTEGER)
    snprintf(out, cap, "%lld", sqlite3_column_int64(ref, col));
  else
    snprintf(out, cap, "(non-integer, type %d)", sqlite3_column_type(ref, col));
}

#define WHERE_FMT "%s mask=%" PRIu64 " (asked %" PRIu64 ") mode=%s row %lld pk=%s"
#define WHERE_ARGS(p, pk) \
  (p)->label, (p)->mask, (p)->req_mask, (p)->safe ? "safe" : "fast", (p)->row, pk

/* A TEXT or BLOB slot: same bytes as the reference, NUL after them. */
static int check_bytes(const pass *p, const mp_view *v, int i,
                       const uint8_t *want, size_t want_n, const char *pk) {
  uint32_t n;
  const uint8_t *got = mp_get_bytes(v, p->rec, i, &n);
  if ((uintptr_t)got < (uintptr_t)v->heap ||
      (uintptr_t)(got + n) >= (uintptr_t)(v->heap + v->heap_size))
    return failf(WHERE_FMT ": field %s points outside the heap", WHERE_ARGS(p, pk),
                 p->m->f[i].name);
  if (n != want_n || (n && memcmp(got, want, n) != 0))
    return failf(WHERE_FMT ": field %s has %u bytes, source %zu bytes%s",
                 WHERE_ARGS(p, pk), p->m->f[i].name, n, want_n,
                 n == want_n ? " (contents differ)" : "");
  if (got[n] != 0)
    return failf(WHERE_FMT ": field %s is not NUL-terminated", WHERE_ARGS(p, pk),
                 p->m->f[i].name);
  if (p->m->f[i].type == MP_TEXT && (v->flags & MP_FLAG_ASCII))
    for (uint32_t k = 0; k < n; k++)
      if (got[k] >= 0x80)
        return failf(WHERE_FMT ": ASCII flag set but field %s has byte 0x%02x",
                     WHERE_ARGS(p, pk), p->m->f[i].name, got[k]);
  return 1;
}

/* One loaded, non-NULL field against the reference column.  The reference
 * conversions are the ones docs/SQL.md gives for each mode; for data that
 * safe mode accepts they give the same value in both modes. */
static int check_value(const pass *p, const mp_view *v, int i,
                       sqlite3_stmt *ref, const char *pk) {
  const char *name = p->m->f[i].name;
  switch (p->m->f[i].type) {
    case MP_INTEGER:
    case MP_BOOLEAN: {
      int64_t want = sqlite3_column_int64(ref, i);
      if (p->m->f[i].type == MP_BOOLEAN && !p->safe) want = want != 0;
      int64_t got = mp_get_int64(v, p->rec, i);
      if (got != want)
        return failf(WHERE_FMT ": field %s = %" PRId64 ", source %" PRId64,
                     WHERE_ARGS(p, pk), name, got, want);
      return 1;
    }
    case MP_REAL: {
      double want = sqlite3_column_double(ref, i), got = mp_get_double(v, p->rec, i);
      if (memcmp(&want, &got, sizeof got) != 0) /* bitwise: -0.0, inf */
        return failf(WHERE_FMT ": field %s = %.17g, source %.17g",
                     WHERE_ARGS(p, pk), name, got, want);
      return 1;
    }
    case MP_TEXT: {
      const uint8_t *want = sqlite3_column_text(ref, i);
      return check_bytes(p, v, i, want, (size_t)sqlite3_column_bytes(ref, i), pk);
    }
    default: {
      const uint8_t *want = sqlite3_column_blob(ref, i);
      return check_bytes(p, v, i, want, (size_t)sqlite3_column_bytes(ref, i), pk);
    }
  }
}

static int check_field(const pass *p, const mp_view *v, int i,
                       sqlite3_stmt *ref, const char *pk) {
  const char *name = p->m->f[i].name;
  int loaded = (int)((p->mask >> i) & 1);
  if (mp_is_loaded(v, i) != loaded)
    return failf(WHERE_FMT ": field %s loaded=%d, expected %d", WHERE_ARGS(p, pk),
                 name, mp_is_loaded(v, i), loaded);
  if (!loaded) {
    if (mp_is_null(v, p->rec, i))
      return failf(WHERE_FMT ": deferred field %s has its NULL bit set",
                   WHERE_ARGS(p, pk), name);
    return 1;
  }
  int null = sqlite3_column_type(ref, i) == SQLITE_NULL;
  if (mp_is_null(v, p->rec, i) != null)
    return failf(WHERE_FMT ": field %s NULL=%d, source NULL=%d", WHERE_ARGS(p, pk),
                 name, mp_is_null(v, p->rec, i), null);
  return null ? 1 : check_value(p, v, i, ref, pk);
}

/* Every byte of every loaded, non-NULL TEXT value of the blob is < 0x80. */
static int text_is_ascii(const model *m, const mp_view *v) {
  for (uint32_t r = 0; r < v->count; r++)
    for (int i = 0; i < m->nfield; i++) {
      if (m->f[i].type != MP_TEXT || !mp_is_loaded(v, i) || mp_is_null(v, r, i)) continue;
      uint32_t n;
      const uint8_t *t = mp_get_bytes(v, r, i, &n);
      for (uint32_t k = 0; k < n; k++)
        if (t[k] >= 0x80) return 0;
    }
  return 1;
}

/* The ASCII flag is only a hint to readers (check_bytes holds it to "set
 * means ASCII"), but packing from values sets it exactly: when clear, a
 * client would decode UTF-8 for nothing. */
static int check_ascii_flag(const pass *p, const mp_view *v, const char *pk) {
  int ascii = text_is_ascii(p->m, v);
  if (((v->flags & MP_FLAG_ASCII) != 0) != ascii)
    return failf(WHERE_FMT ": ASCII flag %s, but the TEXT values are%s all ASCII",
                 WHERE_ARGS(p, pk), (v->flags & MP_FLAG_ASCII) ? "set" : "clear",
                 ascii ? "" : " not");
  return 1;
}

static int check_header(const pass *p, const mp_view *v, const char *pk) {
  /* A file's stored model may hold records packed before the flag existed. */
  int ok = p->m->from_file || check_ascii_flag(p, v, pk);
  if (v->count != 1)
    ok = failf(WHERE_FMT ": count %u in a per-row blob", WHERE_ARGS(p, pk), v->count);
  if (((v->flags & MP_FLAG_SAFE) != 0) != p->safe)
    ok = failf(WHERE_FMT ": flags 0x%04x, SAFE flag wrong", WHERE_ARGS(p, pk), v->flags);
  if (v->flags & MP_FLAG_BATCH)
    ok = failf(WHERE_FMT ": BATCH flag on a per-row blob", WHERE_ARGS(p, pk));
  if (v->mask != p->mask || v->varmask != p->varmask)
    ok = failf(WHERE_FMT ": header mask %" PRIu64 " varmask %" PRIu64
               ", expected %" PRIu64 "/%" PRIu64,
               WHERE_ARGS(p, pk), v->mask, v->varmask, p->mask, p->varmask);
  return ok;
}

/* The hidden mask and mode columns read back what the query used. */
static int check_readback(const pass *p, sqlite3_stmt *st, const char *pk) {
  const char *mode = (const char *)sqlite3_column_text(st, 3);
  int ok = 1;
  if ((uint64_t)sqlite3_column_int64(st, 2) != p->mask)
    ok = failf(WHERE_FMT ": mask column reads %lld", WHERE_ARGS(p, pk),
               sqlite3_column_int64(st, 2));
  if (!mode || strcmp(mode, p->safe ? "safe" : "fast") != 0)
    ok = failf(WHERE_FMT ": mode column reads %s", WHERE_ARGS(p, pk),
               mode ? mode : "NULL");
  return ok;
}

/* The row's primary key column must be the reference row's (lockstep). */
static int check_same_row(const pass *p, sqlite3_stmt *st, sqlite3_stmt *ref,
                          const char *pk) {
  int pkc = p->m->pk;
  int t = sqlite3_column_type(st, 0);
  if (t != sqlite3_column_type(ref, pkc) ||
      (t == SQLITE_INTEGER && sqlite3_column_int64(st, 0) != sqlite3_column_int64(ref, pkc)))
    return failf(WHERE_FMT ": model row has pk %lld (type %d): rows out of step",
                 WHERE_ARGS(p, pk), sqlite3_column_int64(st, 0), t);
  return 1;
}

static int check_row(const pass *p, sqlite3_stmt *st, sqlite3_stmt *ref) {
  char pk[48];
  pk_label(ref, p->m->pk, pk, sizeof pk);
  if (sqlite3_column_type(st, 1) != SQLITE_BLOB)
    return failf(WHERE_FMT ": packed is not a BLOB (type %d)", WHERE_ARGS(p, pk),
                 sqlite3_column_type(st, 1));
  size_t len = (size_t)sqlite3_column_bytes(st, 1);
  uint8_t *blob = malloc(len); /* exactly sized: ASan sees any over-read */
  if (!blob) abort();
  memcpy(blob, sqlite3_column_blob(st, 1), len);
  mp_view v;
  const char *why = "";
  int ok = mp_view_open(&v, blob, len, p->fp, &why);
  if (!ok) {
    failf(WHERE_FMT ": mp_view_open refused %zu bytes: %s", WHERE_ARGS(p, pk), len, why);
  } else {
    ok &= check_header(p, &v, pk);
    ok &= check_readback(p, st, pk);
    ok &= check_same_row(p, st, ref, pk);
    for (int i = 0; i < p->m->nfield; i++) ok &= check_field(p, &v, i, ref, pk);
  }
  free(blob);
  return ok;
}

static char *packed_sql(const model *m) {
  const char *pk = m->f[m->pk].name;
  return sqlite3_mprintf(
      "SELECT \"%w\", packed, mask, mode FROM \"%w\""
      " WHERE mask = ?1 AND mode = ?2 ORDER BY \"%w\"",
      pk, m->name, pk);
}

/* A safe-mode refusal names the model and field ("modelpack: m.f: ..."):
 * for a user's database that is the data failing the safe rules. */
static int is_value_refusal(const pass *p, sqlite3 *db) {
  char prefix[300];
  snprintf(prefix, sizeof prefix, "modelpack: %s.", p->m->name);
  return p->safe && p->m->from_file &&
         strncmp(sqlite3_errmsg(db), prefix, strlen(prefix)) == 0;
}

/* Step the packed query and the reference query side by side. */
static void compare_rows(sqlite3 *db, pass *p, sqlite3_stmt *st, sqlite3_stmt *ref) {
  for (p->row = 1;; p->row++) {
    int rc = sqlite3_step(st);
    int rr = sqlite3_step(ref);
    if (rc == SQLITE_ROW && rr == SQLITE_ROW) {
      tally(check_row(p, st, ref));
      continue;
    }
    if (rc == SQLITE_DONE && rr == SQLITE_DONE) return;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE && is_value_refusal(p, db)) {
      printf("note: %s safe mode refused the data: %s\n", p->m->name, sqlite3_errmsg(db));
      return;
    }
    char pk[8] = "-";
    tally(failf(WHERE_FMT ": packed query step=%d, reference step=%d: %s",
                WHERE_ARGS(p, pk), rc, rr, sqlite3_errmsg(db)));
    return;
  }
}

static void run_pass(sqlite3 *db, const model *m, uint64_t req_mask, int safe) {
  pass p = {m, req_mask, req_mask | ((uint64_t)1 << m->pk), 0, 0, safe, 0, 0, ""};
  snprintf(p.label, sizeof p.label, "%s", m->name);
  p.varmask = varmask_of(m, p.mask);
  p.fp = mp_fingerprint(m->names, m->types, m->nfield, p.mask);
  tally(check_layout(db, m, p.mask, p.fp));
  char *sql = packed_sql(m);
  sqlite3_stmt *st = prepare(db, sql);
  sqlite3_stmt *ref = prepare(db, m->ref_sql);
  sqlite3_free(sql);
  if (st && ref) {
    sqlite3_bind_int64(st, 1, (sqlite3_int64)req_mask);
    sqlite3_bind_text(st, 2, safe ? "safe" : "fast", -1, SQLITE_STATIC);
    compare_rows(db, &p, st, ref);
  } else {
    tally(0);
  }
  sqlite3_finalize(st);
  sqlite3_finalize(ref);
}

/* Field bits for the subset `sub` of the model's non-key fields. */
static uint64_t expand_subset(const model *m, uint64_t sub) {
  uint64_t mask = 0;
  for (int i = 0, j = 0; i < m->nfield; i++) {
    if (i == m->pk) continue;
    if ((sub >> j++) & 1) mask |= (uint64_t)1 << i;
  }
  return mask;
}

/* Every mask for models of up to 8 fields; for wider ones a spread:
 * key only, all, each field alone, all but each field, and random ones. */
static int masks_for(const model *m, uint64_t *out) {
  int others = m->nfield - 1, n = 0;
  if (others <= 7) {
    for (uint64_t s = 0; s < ((uint64_t)1 << others); s++) out[n++] = expand_subset(m, s);
    return n;
  }
  uint64_t all = mp_all_fields(others);
  out[n++] = 0;
  out[n++] = expand_subset(m, all);
  for (int j = 0; j < others; j++) {
    out[n++] = expand_subset(m, (uint64_t)1 << j);
    out[n++] = expand_subset(m, all & ~((uint64_t)1 << j));
  }
  while (n < MAX_MASKS) out[n++] = expand_subset(m, rnd() & all);
  return n;
}

/* Every mask (up to 8 fields; a spread for wider models), or with `few` set
 * the full mask, the key alone and one random mask. */
static int masks_or_few(const model *m, int few, uint64_t *out) {
  if (!few) return masks_for(m, out);
  uint64_t others = mp_all_fields(m->nfield) & ~((uint64_t)1 << m->pk);
  out[0] = mp_all_fields(m->nfield);
  out[1] = 0;
  out[2] = rnd() & others;
  return 3;
}

static void check_model(sqlite3 *db, const model *m, int few) {
  uint64_t masks[MAX_MASKS];
  int n = masks_or_few(m, few, masks);
  long before = n_passed + n_failed;
  for (int k = 0; k < n; k++) {
    /* Half the passes leave the key bit out: the table must add it. */
    uint64_t req = masks[k];
    if (mp_popcount64(req) % 2 == 1) req |= (uint64_t)1 << m->pk;
    run_pass(db, m, req, 0);
    run_pass(db, m, req, 1);
  }
  printf("round trip %s: %d masks x 2 modes, %ld checks\n", m->name, n,
         n_passed + n_failed - before);
}

/* ------------------------------------- batches, modelpack_query, stored */

static const uint32_t BATCH_SIZES[] = {1, 2, 3, 7, 100, 1000};
#define N_BATCH_SIZES (int)(sizeof BATCH_SIZES / sizeof BATCH_SIZES[0])

/*
 * A read that hands out blobs.  Its SQL binds ?1 mask, ?2 mode and, when
 * batch > 0, ?3 batch, and returns the columns packed, rowid, mask, mode,
 * batch; ref_sql returns the source rows it must produce, in the same
 * order, one column per field.
 */
typedef struct blob_read {
  const model *m;
  const char *what;   /* for messages: "batch", "query", "stored", ... */
  char *sql, *ref_sql;
  uint32_t batch;     /* records per blob; 0: one row per blob */
  int rowid_is_batch; /* rowid must count the blobs 1, 2, ... */
  uint64_t avail;     /* fields the read can load (a query: its columns) */
  int ascii_hint;     /* the ASCII flag may be clear on ASCII text (stored) */
} blob_read;

/* Model table `table` (the fields of m), in pk order (desc: descending). */
static blob_read model_read(const model *m, const char *table, const char *what,
                            uint32_t batch, int desc) {
  const char *pk = m->f[m->pk].name;
  blob_read r = {m, what, NULL, NULL, batch, batch > 0, mp_all_fields(m->nfield), 0};
  r.sql = sqlite3_mprintf("SELECT packed, rowid, mask, mode, batch FROM \"%w\""
                          " WHERE mask = ?1 AND mode = ?2%s ORDER BY \"%w\"%s",
                          table, batch ? " AND batch = ?3" : "", pk, desc ? " DESC" : "");
  r.ref_sql = sqlite3_mprintf("%s%s", m->ref_sql, desc ? " DESC" : "");
  return r;
}

/* modelpack_query(m, query, params...): `query` must return the rows of
 * ref_sql (which takes ownership of nothing: both are copied). */
static blob_read query_read(const model *m, const char *what, const char *query,
                            const char *params, const char *ref_sql, uint64_t avail,
                            uint32_t batch) {
  blob_read r = {m, what, NULL, NULL, batch, 0, avail | ((uint64_t)1 << m->pk), 0};
  r.sql = sqlite3_mprintf("SELECT packed, rowid, mask, mode, batch FROM"
                          " modelpack_query('%q', '%q'%s) WHERE mask = ?1 AND mode = ?2%s",
                          m->name, query, params, batch ? " AND batch = ?3" : "");
  r.ref_sql = sqlite3_mprintf("%s", ref_sql);
  return r;
}

static void blob_read_free(blob_read *r) {
  sqlite3_free(r->sql);
  sqlite3_free(r->ref_sql);
}

/* Header of a blob of a blob_read, and the hidden columns beside it. */
static int check_blob_header(const pass *p, const blob_read *r, const mp_view *v,
                             sqlite3_stmt *st, long nblob) {
  int ok = 1;
  char pk[32];
  snprintf(pk, sizeof pk, "(blob %ld)", nblob);
  if (((v->flags & MP_FLAG_SAFE) != 0) != p->safe)
    ok = failf(WHERE_FMT ": flags 0x%04x, SAFE flag wrong", WHERE_ARGS(p, pk), v->flags);
  if (((v->flags & MP_FLAG_BATCH) != 0) != (r->batch > 0))
    ok = failf(WHERE_FMT ": flags 0x%04x, BATCH flag wrong", WHERE_ARGS(p, pk), v->flags);
  if (v->count < 1 || v->count > (r->batch ? r->batch : 1))
    ok = failf(WHERE_FMT ": %u records in a blob of at most %u", WHERE_ARGS(p, pk),
               v->count, r->batch ? r->batch : 1);
  if (v->mask != p->mask || v->varmask != p->varmask)
    ok = failf(WHERE_FMT ": header mask %" PRIu64 " varmask %" PRIu64
               ", expected %" PRIu64 "/%" PRIu64,
               WHERE_ARGS(p, pk), v->mask, v->varmask, p->mask, p->varmask);
  if (r->rowid_is_batch && sqlite3_column_int64(st, 1) != nblob)
    ok = failf(WHERE_FMT ": rowid %lld, expected the batch number", WHERE_ARGS(p, pk),
               sqlite3_column_int64(st, 1));
  if ((uint64_t)sqlite3_column_int64(st, 2) != p->mask)
    ok = failf(WHERE_FMT ": mask column reads %lld", WHERE_ARGS(p, pk),
               sqlite3_column_int64(st, 2));
  const char *mode = (const char *)sqlite3_column_text(st, 3);
  if (!mode || strcmp(mode, p->safe ? "safe" : "fast") != 0)
    ok = failf(WHERE_FMT ": mode column reads %s", WHERE_ARGS(p, pk), mode ? mode : "NULL");
  if (r->batch ? sqlite3_column_int64(st, 4) != r->batch
               : sqlite3_column_type(st, 4) != SQLITE_NULL)
    ok = failf(WHERE_FMT ": batch column reads %s", WHERE_ARGS(p, pk),
               sqlite3_column_text(st, 4) ? (const char *)sqlite3_column_text(st, 4) : "NULL");
  return ok;
}

/* Every record of one blob against the next reference rows. */
static int check_blob_records(sqlite3 *db, pass *p, const mp_view *v, sqlite3_stmt *ref) {
  int ok = 1;
  for (p->rec = 0; p->rec < v->count; p->rec++) {
    char pk[48] = "-";
    p->row++;
    int rr = sqlite3_step(ref);
    if (rr != SQLITE_ROW)
      return failf(WHERE_FMT ": record %u of the blob has no reference row (%s)",
                   WHERE_ARGS(p, pk), p->rec, rr == SQLITE_DONE ? "done" : sqlite3_errmsg(db));
    pk_label(ref, p->m->pk, pk, sizeof pk);
    for (int i = 0; i < p->m->nfield; i++) ok &= check_field(p, v, i, ref, pk);
  }
  return ok;
}

/*
 * One pass of a blob_read: every blob validated (in a buffer of exactly its
 * size, for ASan), every record compared with the reference rows in order,
 * every batch full but the last, and ceil(rows / batch) batches in all.
 */
static void run_blob_pass(sqlite3 *db, const blob_read *r, uint64_t req_mask, int safe) {
  const model *m = r->m;
  pass p = {m, req_mask, (req_mask & r->avail) | ((uint64_t)1 << m->pk), 0, 0, safe, 0, 0, ""};
  snprintf(p.label, sizeof p.label, "%s %s batch=%u", m->name, r->what, r->batch);
  p.varmask = varmask_of(m, p.mask);
  p.fp = mp_fingerprint(m->names, m->types, m->nfield, p.mask);
  sqlite3_stmt *st = prepare(db, r->sql), *ref = prepare(db, r->ref_sql);
  long nblob = 0, short_blobs = 0;
  int rc = SQLITE_ERROR;
  if (st && ref) {
    sqlite3_bind_int64(st, 1, (sqlite3_int64)req_mask);
    sqlite3_bind_text(st, 2, safe ? "safe" : "fast", -1, SQLITE_STATIC);
    if (r->batch) sqlite3_bind_int64(st, 3, r->batch);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      nblob++;
      size_t len = (size_t)sqlite3_column_bytes(st, 0);
      if (sqlite3_column_type(st, 0) != SQLITE_BLOB) {
        tally(failf("%s: blob %ld: packed is not a BLOB", p.label, nblob));
        break;
      }
      uint8_t *blob = malloc(len ? len : 1);
      if (!blob) abort();
      memcpy(blob, sqlite3_column_blob(st, 0), len);
      mp_view v;
      const char *why = "";
      if (!mp_view_open(&v, blob, len, p.fp, &why)) {
        tally(failf("%s mask=%" PRIu64 " mode=%s: blob %ld (%zu bytes) refused: %s",
                    p.label, p.mask, safe ? "safe" : "fast", nblob, len, why));
      } else {
        int ok = check_blob_header(&p, r, &v, st, nblob);
        if (!r->ascii_hint && !m->from_file) ok &= check_ascii_flag(&p, &v, "(whole blob)");
        ok &= check_blob_records(db, &p, &v, ref);
        /* Only the last batch may be short. */
        if (r->batch && v.count < r->batch) short_blobs++;
        tally(ok);
      }
      free(blob);
    }
  }
  if (rc == SQLITE_DONE) {
    /* The reference must be used up, and the batch count follow from it. */
    int rr = sqlite3_step(ref);
    long want = r->batch ? (long)((p.row + r->batch - 1) / r->batch) : (long)p.row;
    tally(rr == SQLITE_DONE ||
          failf("%s mask=%" PRIu64 " mode=%s: only %lld records, the reference has more",
                p.label, p.mask, safe ? "safe" : "fast", p.row));
    tally((nblob == want && short_blobs <= 1) ||
          failf("%s mask=%" PRIu64 " mode=%s: %ld blobs (%ld not full) for %lld records,"
                " expected %ld", p.label, p.mask, safe ? "safe" : "fast", nblob,
                short_blobs, p.row, want));
  } else if (st && ref && rc != SQLITE_ROW) {
    if (is_value_refusal(&p, db))
      printf("note: %s safe mode refused the data: %s\n", p.label, sqlite3_errmsg(db));
    else
      tally(failf("%s mask=%" PRIu64 " mode=%s: step %d: %s", p.label, p.mask,
                  safe ? "safe" : "fast", rc, sqlite3_errmsg(db)));
  } else if (!st || !ref) {
    tally(0);
  }
  sqlite3_finalize(st);
  sqlite3_finalize(ref);
}

/* A blob_read under each mask (every one, or a few) in both modes. */
static long run_blob_passes(sqlite3 *db, const blob_read *r, int few) {
  uint64_t masks[MAX_MASKS];
  int n = masks_or_few(r->m, few, masks);
  long before = n_passed + n_failed;
  for (int k = 0; k < n; k++) {
    run_blob_pass(db, r, masks[k], 0);
    run_blob_pass(db, r, masks[k], 1);
  }
  return n_passed + n_failed - before;
}

/*
 * Model-table batches of every size.  level 2: under every mask, both
 * modes; 1: a few masks, both modes; 0: one pass per size (masks and modes
 * taking turns), for the huge rows.  Then ORDER BY the key, descending:
 * the batches must follow the source's order.
 */
static void test_batches(sqlite3 *db, const model *m, const char *table, int level) {
  uint64_t few[MAX_MASKS];
  int nfew = masks_or_few(m, 1, few);
  long before = n_passed + n_failed;
  for (int k = 0; k < N_BATCH_SIZES; k++) {
    blob_read r = model_read(m, table, "batch", BATCH_SIZES[k], 0);
    if (level)
      run_blob_passes(db, &r, level < 2);
    else
      run_blob_pass(db, &r, few[k % nfew], k % 2);
    blob_read_free(&r);
  }
  for (int k = 2; k < (level ? N_BATCH_SIZES : 3); k += 2) {
    blob_read r = model_read(m, table, "batch desc", BATCH_SIZES[k], 1);
    run_blob_pass(db, &r, few[0], k % 4 == 0);
    blob_read_free(&r);
  }
  printf("batches %s: sizes 1 to 1000, %s, %ld checks\n", table,
         level == 2 ? "every mask x 2 modes" : level ? "3 masks x 2 modes" : "1 pass each",
         n_passed + n_failed - before);
}

/* Empty results give no batch at all. */
static void test_empty_batch(sqlite3 *db, const model *m) {
  char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\" WHERE batch = 7 AND \"%w\" < 0",
                              m->name, m->f[m->pk].name);
  sqlite3_stmt *st = sql ? prepare(db, sql) : NULL;
  int ok = st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0;
  tally(ok || failf("%s: an empty result in batches does not give zero rows: %s", m->name,
                    sqlite3_errmsg(db)));
  sqlite3_finalize(st);
  sqlite3_free(sql);
}

/*
 * modelpack_query round trip: the whole source once per row and once in
 * batches; every mask on the small rows, per row and in batches; a query
 * that renames columns with AS, lists them out of field order, leaves some
 * out and takes parameters (a blob among them).
 */
static void test_query(sqlite3 *db, const model *m, const model *small) {
  uint64_t all = mp_all_fields(m->nfield), few[MAX_MASKS];
  masks_or_few(m, 1, few);
  long before = n_passed + n_failed;
  for (int k = 0; k < 2; k++) {
    blob_read r = query_read(m, "query", "SELECT id, n, x, s, b, f FROM src ORDER BY id", "",
                             m->ref_sql, all, k ? 7 : 0);
    run_blob_pass(db, &r, few[k ? 2 : 0], k);
    blob_read_free(&r);
  }
  for (int k = 0; k < 2; k++) {
    blob_read r = query_read(small, "query", "SELECT id, n, x, s, b, f FROM src_small ORDER BY id",
                             "", small->ref_sql, all, k ? 3 : 0);
    run_blob_passes(db, &r, 0);
    blob_read_free(&r);
  }
  /* id, price and title only: qty, cover and in_print are deferred. */
  uint64_t some = (uint64_t)1 << 0 | (uint64_t)1 << 2 | (uint64_t)1 << 3;
  for (int k = 0; k < 2; k++) {
    blob_read r = query_read(small, "query AS ?", "SELECT s AS title, x AS Price, id FROM src_small"
                             " WHERE id > ?1 AND ?2 IS NOT NULL ORDER BY id", ", 10, x'00ff'",
                             "SELECT id, n, x, s, b, f FROM src_small WHERE id > 10 ORDER BY id",
                             some, k ? 3 : 0);
    run_blob_pass(db, &r, all, 0);
    run_blob_pass(db, &r, all, 1);
    run_blob_pass(db, &r, (uint64_t)1 << 3, 0); /* the mask narrows further */
    blob_read_free(&r);
  }
  printf("modelpack_query: %ld checks\n", n_passed + n_failed - before);
}

/* Two accepted views hold the same records (the ASCII flag is a hint, and
 * heap order is the writer's business: values are compared, not bytes). */
static int same_records(const mp_view *a, const mp_view *b, const char **why) {
  if (a->count != b->count) return (*why = "record counts differ"), 0;
  if ((a->flags & ~MP_FLAG_ASCII) != (b->flags & ~MP_FLAG_ASCII)) return (*why = "flags differ"), 0;
  if (a->mask != b->mask || a->varmask != b->varmask || a->fingerprint != b->fingerprint)
    return (*why = "masks or fingerprints differ"), 0;
  for (uint32_t r = 0; r < a->count; r++) {
    if (mp_rd64(mp_record(a, r)) != mp_rd64(mp_record(b, r))) return (*why = "NULL bits differ"), 0;
    for (int i = 0; i < MP_MAX_FIELDS; i++) {
      if (!mp_is_loaded(a, i) || mp_is_null(a, r, i)) continue;
      if ((a->varmask >> i) & 1) {
        uint32_t na, nb;
        const uint8_t *pa = mp_get_bytes(a, r, i, &na), *pb = mp_get_bytes(b, r, i, &nb);
        if (na != nb || memcmp(pa, pb, na) != 0) return (*why = "TEXT/BLOB values differ"), 0;
      } else if (mp_get_int64(a, r, i) != mp_get_int64(b, r, i)) {
        return (*why = "slot values differ"), 0;
      }
    }
  }
  return 1;
}

/* The stored model's blobs decode exactly like the packing model's. */
static void compare_models(sqlite3 *db, const model *m, const char *stored, uint64_t req,
                           int safe, uint32_t batch, const char *when) {
  blob_read a = model_read(m, m->name, "", batch, 0), b = model_read(m, stored, "", batch, 0);
  sqlite3_stmt *sa = prepare(db, a.sql), *sb = prepare(db, b.sql);
  long n = 0;
  int ok = sa && sb;
  for (int k = 0; ok && k < 2; k++) {
    sqlite3_stmt *st = k ? sb : sa;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)req);
    sqlite3_bind_text(st, 2, safe ? "safe" : "fast", -1, SQLITE_STATIC);
    if (batch) sqlite3_bind_int64(st, 3, batch);
  }
  while (ok) {
    int ra = sqlite3_step(sa), rb = sqlite3_step(sb);
    if (ra == SQLITE_DONE && rb == SQLITE_DONE) break;
    n++;
    if (ra != SQLITE_ROW || rb != SQLITE_ROW) {
      ok = failf("%s vs %s (%s) mask=%" PRIu64 " %s batch=%u, blob %ld: steps %d/%d: %s",
                 m->name, stored, when, req, safe ? "safe" : "fast", batch, n, ra, rb,
                 sqlite3_errmsg(db));
      break;
    }
    mp_view va, vb;
    const char *why = "";
    if (!mp_view_open(&va, sqlite3_column_blob(sa, 0), (size_t)sqlite3_column_bytes(sa, 0), 0, &why) ||
        !mp_view_open(&vb, sqlite3_column_blob(sb, 0), (size_t)sqlite3_column_bytes(sb, 0), 0, &why) ||
        !same_records(&va, &vb, &why))
      ok = failf("%s vs %s (%s) mask=%" PRIu64 " %s batch=%u, blob %ld: %s", m->name, stored,
                 when, req, safe ? "safe" : "fast", batch, n, why);
  }
  tally(ok);
  sqlite3_finalize(sa);
  sqlite3_finalize(sb);
  blob_read_free(&a);
  blob_read_free(&b);
}

/* All combinations of a few masks, both modes and per row / batches of 3
 * and 1000 (level 1), or (level 0, for the huge rows) three of them with
 * small batches: a batch of many huge rows is slow to allocate and copy. */
static void compare_stored(sqlite3 *db, const model *m, const char *stored, const char *when,
                           int level) {
  uint64_t masks[MAX_MASKS];
  masks_or_few(m, 1, masks);
  static const uint32_t sizes[] = {0, 3, 1000};
  if (!level) {
    compare_models(db, m, stored, masks[0], 0, 0, when);
    compare_models(db, m, stored, masks[0], 1, 3, when);
    compare_models(db, m, stored, masks[2], 0, 7, when);
    return;
  }
  for (int k = 0; k < 3; k++)
    for (int j = 0; j < 3; j++)
      for (int safe = 0; safe < 2; safe++)
        compare_models(db, m, stored, masks[k], safe, sizes[j], when);
}

/* Changes through the source's triggers: inserts, updates, a key update
 * and deletes. */
static int change_source(sqlite3 *db, const char *table) {
  char *sql = sqlite3_mprintf(
      "INSERT INTO \"%w\" VALUES(100001, 5, 2.5, 'new row', x'0102', 1);"
      "INSERT INTO \"%w\" VALUES(100002, NULL, NULL, NULL, NULL, NULL);"
      "UPDATE \"%w\" SET s = s || ' (changed)', n = n / 2 WHERE id %% 10 = 0;"
      "UPDATE \"%w\" SET id = 200000 + id WHERE id IN (5, 17);"
      "UPDATE \"%w\" SET b = NULL, x = -0.0 WHERE id = 3;"
      "DELETE FROM \"%w\" WHERE id IN (7, 8, 100002);",
      table, table, table, table, table, table);
  int ok = sql && exec(db, sql);
  sqlite3_free(sql);
  return ok;
}

/*
 * Stored model round trip: a model with materialize = stored over the same
 * source reads back what the packing model reads (and what the source
 * holds), per row and in batches, before and after the source changes.
 */
static void test_stored(sqlite3 *db, const model *m, const model *small) {
  long before = n_passed + n_failed;
  uint64_t few[MAX_MASKS];
  masks_or_few(m, 1, few);
  model ms, sms;
  own_model(&ms, "m_stored", "src");
  own_model(&sms, "m_small_stored", "src_small");
  int ok = create_model(db, "m_stored", "src", 1) &&
           create_model(db, "m_small_stored", "src_small", 1);
  if (ok) {
    compare_stored(db, m, "m_stored", "as created", 0);
    compare_stored(db, small, "m_small_stored", "as created", 1);
    /* Stored records copied whole may keep a clear ASCII flag. */
    blob_read r = model_read(&ms, "m_stored", "stored", 0, 0);
    r.ascii_hint = 1;
    run_blob_pass(db, &r, few[0], 1);
    blob_read_free(&r);
    r = model_read(&ms, "m_stored", "stored", 100, 0);
    r.ascii_hint = 1;
    run_blob_pass(db, &r, few[2], 0);
    blob_read_free(&r);
    for (int k = 0; k < 2; k++) {
      r = model_read(&sms, "m_small_stored", "stored", k ? 7 : 0, 0);
      r.ascii_hint = 1;
      run_blob_passes(db, &r, 0);
      blob_read_free(&r);
    }
    ok = change_source(db, "src") && change_source(db, "src_small");
  }
  if (ok) {
    compare_stored(db, m, "m_stored", "after changes", 0);
    compare_stored(db, small, "m_small_stored", "after changes", 1);
    blob_read r = model_read(&sms, "m_small_stored", "stored, changed", 3, 0);
    r.ascii_hint = 1;
    run_blob_passes(db, &r, 1);
    blob_read_free(&r);
  }
  tally(ok);
  model_free(&ms);
  model_free(&sms);
  printf("stored model: %ld checks\n", n_passed + n_failed - before);
}

static void test_generated(const char *ext) {
  sqlite3 *db = open_with_extension(":memory:", SQLITE_OPEN_READWRITE, ext);
  model m;
  if (!db) {
    tally(0);
    return;
  }
  model small;
  own_model(&m, "m", "src");
  own_model(&small, "m_small", "src_small");
  int ok = exec(db, SRC_DDL) && fill_source(db, NROWS) && create_model(db, "m", "src", 0) &&
           exec(db, SMALL_DDL) && create_model(db, "m_small", "src_small", 0);
  char *json = ok ? layout_json(db, "m", mp_all_fields(m.nfield)) : NULL;
  tally(json && check_declared_fields(db, &m, json));
  sqlite3_free(json);
  if (ok) {
    check_model(db, &m, 1);
    check_model(db, &small, 0);
    test_batches(db, &m, "m", 0);
    test_batches(db, &small, "m_small", 2);
    test_empty_batch(db, &m);
    test_query(db, &m, &small);
    test_stored(db, &m, &small); /* last: it changes src */
  }
  model_free(&m);
  model_free(&small);
  sqlite3_close(db);
}

/* ------------------------------------------------- models in a database */

/* Field list and reference query of a stored model, from its layout. */
static int load_model(sqlite3 *db, const char *name, model *m) {
  memset(m, 0, sizeof *m);
  m->name = sqlite3_mprintf("%s", name);
  m->from_file = 1;
  char *json = layout_json(db, name, 0);
  sqlite3_stmt *st = json ? prepare(db,
      "SELECT json_extract(value,'$.name'), json_extract(value,'$.type'),"
      " json_extract(value,'$.column'), json_extract(value,'$.pk')"
      " FROM json_each(?1, '$.fields') ORDER BY CAST(key AS INTEGER)") : NULL;
  if (!st) {
    sqlite3_free(json);
    return 0;
  }
  sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
  while (sqlite3_step(st) == SQLITE_ROW && m->nfield < MP_MAX_FIELDS) {
    if (sqlite3_column_int(st, 3)) m->pk = m->nfield;
    model_add(m, (const char *)sqlite3_column_text(st, 0),
              (const char *)sqlite3_column_text(st, 2),
              type_code((const char *)sqlite3_column_text(st, 1)));
  }
  sqlite3_finalize(st);
  sqlite3_free(json);
  char *cols = sqlite3_mprintf("\"%w\"", m->f[0].name);
  for (int i = 1; cols && i < m->nfield; i++) {
    char *more = sqlite3_mprintf("%s, \"%w\"", cols, m->f[i].name);
    sqlite3_free(cols);
    cols = more;
  }
  m->ref_sql = sqlite3_mprintf("SELECT %s FROM \"%w\" ORDER BY \"%w\"", cols,
                               name, m->f[m->pk].name);
  sqlite3_free(cols);
  return m->nfield > 0;
}

static void test_database(const char *ext, const char *path) {
  sqlite3 *db = open_with_extension(path, SQLITE_OPEN_READONLY, ext);
  int nmodel = 0;
  if (!db) {
    tally(0);
    return;
  }
  sqlite3_stmt *st = prepare(db,
      "SELECT name FROM sqlite_schema WHERE type = 'table'"
      " AND sql LIKE 'CREATE VIRTUAL TABLE%USING modelpack%' ORDER BY name");
  while (st && sqlite3_step(st) == SQLITE_ROW) {
    model m;
    nmodel++;
    if (load_model(db, (const char *)sqlite3_column_text(st, 0), &m)) {
      check_model(db, &m, 0);
      test_batches(db, &m, m.name, 1);
      test_empty_batch(db, &m);
    }
    else
      tally(failf("cannot read the layout of model %s", m.name));
    model_free(&m);
  }
  sqlite3_finalize(st);
  if (nmodel == 0) printf("note: %s declares no modelpack model\n", path);
  sqlite3_close(db);
}

/* --------------------------------------------------------------- validator */

/*
 * The acceptance rules of docs/FORMAT.md, restated as plainly as possible
 * (one field at a time, 64-bit arithmetic, no bit tricks) so that it and
 * mp_view_open() are unlikely to share a mistake.
 */
static int ref_valid(const uint8_t *b, size_t len, uint64_t fp) {
  if (len < 48 || memcmp(b, "MPAK", 4) != 0) return 0;
  if (mp_rd16(b + 4) != 1 || (mp_rd16(b + 6) & ~7u) != 0) return 0;
  uint64_t count = mp_rd32(b + 8), rs = mp_rd32(b + 12), heap = mp_rd32(b + 40);
  uint64_t mask = mp_rd64(b + 24), var = mp_rd64(b + 32);
  if (mp_rd32(b + 44) != 0 || mask == 0 || (var & ~mask) != 0) return 0;
  uint64_t loaded = 0;
  for (int i = 0; i < 64; i++) loaded += (mask >> i) & 1;
  if (rs != 8 + 8 * loaded || count == 0) return 0;
  if (fp != 0 && mp_rd64(b + 16) != fp) return 0;
  if (48 + count * rs + heap != (uint64_t)len) return 0;
  const uint8_t *hp = b + 48 + count * rs;
  for (uint64_t r = 0; r < count; r++) {
    const uint8_t *rec = b + 48 + r * rs;
    uint64_t nulls = mp_rd64(rec);
    if ((nulls & ~mask) != 0) return 0;
    for (int i = 0, k = 0; i < 64; i++) {
      if (!((mask >> i) & 1)) continue;
      const uint8_t *slot = rec + 8 + 8 * k++;
      if ((nulls >> i) & 1) {
        if (mp_rd64(slot) != 0) return 0;
      } else if ((var >> i) & 1) {
        uint64_t off = mp_rd32(slot), n = mp_rd32(slot + 4);
        if (off + n + 1 > heap || hp[off + n] != 0) return 0;
      }
    }
  }
  return 1;
}

static volatile uint64_t sink; /* keeps the reads of accepted blobs alive */

/* Read every value of an accepted blob through the getters; every pointer
 * they return must lie inside the blob. */
static int walk(const mp_view *v, const uint8_t *blob, size_t len) {
  uintptr_t lo = (uintptr_t)blob, hi = (uintptr_t)(blob + len);
  for (uint32_t r = 0; r < v->count; r++) {
    const uint8_t *rec = mp_record(v, r);
    if ((uintptr_t)rec < lo + MP_HEADER_SIZE || (uintptr_t)(rec + v->record_size) > hi)
      return 0;
    for (int i = 0; i < MP_MAX_FIELDS; i++) {
      if (!mp_is_loaded(v, i)) continue;
      if (!((v->varmask >> i) & 1) || mp_is_null(v, r, i)) {
        double d = mp_get_double(v, r, i);
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits); /* a cast of inf or NaN is UB */
        sink += (uint64_t)mp_get_int64(v, r, i) + bits;
        continue;
      }
      uint32_t n;
      const uint8_t *p = mp_get_bytes(v, r, i, &n);
      if ((uintptr_t)p < (uintptr_t)v->heap || (uintptr_t)p + n >= hi || p[n] != 0)
        return 0;
      for (uint32_t k = 0; k < n; k++) sink += p[k];
    }
  }
  return 1;
}

typedef struct fuzz_stats {
  long tried, accepted;
} fuzz_stats;

static fuzz_stats stats;

/* One mutant, with and without an expected fingerprint. */
static int probe(const uint8_t *src, size_t len, uint64_t fp, const char *what,
                 long a, long b) {
  uint8_t *copy = malloc(len ? len : 1);
  int ok = 1;
  if (!copy) abort();
  if (len) memcpy(copy, src, len);
  uint64_t fps[2] = {0, fp};
  for (int k = 0; k < 2; k++) {
    mp_view v;
    const char *why = "accepted";
    int got = mp_view_open(&v, copy, len, fps[k], &why);
    int want = ref_valid(copy, len, fps[k]);
    stats.tried++;
    stats.accepted += got;
    if (got != want)
      ok = failf("mutant %s(%ld, %ld), %zu bytes, fp %s: mp_view_open=%d (%s), rules say %d",
                 what, a, b, len, k ? "expected" : "any", got, why, want);
    else if (got && !walk(&v, copy, len))
      ok = failf("mutant %s(%ld, %ld): accepted, but a getter points outside the blob",
                 what, a, b);
  }
  free(copy);
  return ok;
}

static void fuzz_truncate(const bytes *b, uint64_t fp) {
  for (size_t n = 0; n < b->n; n++) tally(probe(b->p, n, fp, "truncate", (long)n, 0));
  uint8_t *longer = calloc(b->n + 16, 1);
  if (!longer) abort();
  memcpy(longer, b->p, b->n);
  for (size_t extra = 1; extra <= 16; extra++)
    tally(probe(longer, b->n + extra, fp, "extend", (long)extra, 0));
  free(longer);
}

/* Every value of every byte: the whole header and, for small blobs, the
 * records and heap too. */
static void fuzz_every_byte(const bytes *b, uint64_t fp) {
  uint8_t *m = malloc(b->n);
  if (!m) abort();
  for (size_t pos = 0; pos < b->n; pos++) {
    memcpy(m, b->p, b->n);
    for (int val = 0; val < 256; val++) {
      if (val == b->p[pos]) continue;
      m[pos] = (uint8_t)val;
      tally(probe(m, b->n, fp, "byte", (long)pos, val));
    }
  }
  free(m);
}

/* Heap references at and past the edge, and wrapping ones. */
static void fuzz_heap_refs(const bytes *b, uint64_t fp) {
  static const uint32_t vals[] = {0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0,
                                  0xFFFFFFFE, 0xFFFFFFFF};
  mp_view v;
  if (!mp_view_open(&v, b->p, b->n, 0, NULL)) return;
  uint8_t *m = malloc(b->n);
  if (!m) abort();
  for (uint32_t r = 0; r < v.count; r++)
    for (int i = 0; i < 64; i++) {
      if (!((v.varmask >> i) & 1)) continue;
      size_t slot = MP_HEADER_SIZE + (size_t)r * v.record_size + mp_slot_offset(v.mask, i);
      uint32_t edge[] = {v.heap_size, v.heap_size - 1, v.heap_size + 1};
      for (int x = 0; x < 10; x++)
        for (int y = 0; y < 10; y++) {
          memcpy(m, b->p, b->n);
          mp_wr32(m + slot, x < 7 ? vals[x] : edge[x - 7]);
          mp_wr32(m + slot + 4, y < 7 ? vals[y] : edge[y - 7]);
          tally(probe(m, b->n, fp, "heapref", (long)slot, x * 10 + y));
        }
    }
  free(m);
}

/* Counts whose count * record_size wraps to the real body size in 32 bits,
 * and heap sizes that would make a 32-bit length sum come out right. */
static void fuzz_counts(const bytes *b, uint64_t fp) {
  uint8_t *m = malloc(b->n);
  if (!m) abort();
  uint32_t count = mp_rd32(b->p + MP_H_COUNT), rs = mp_rd32(b->p + MP_H_RECORD_SIZE);
  uint32_t step = rs ? (uint32_t)(((uint64_t)1 << 32) >> mp_lowest_bit(rs)) : 0;
  uint32_t counts[] = {count + step, count + 2 * step, count - step, 0xFFFFFFFF,
                       0x80000000, 0x10000000, count + 1, count * 2};
  for (int k = 0; k < 8; k++) {
    memcpy(m, b->p, b->n);
    mp_wr32(m + MP_H_COUNT, counts[k]);
    tally(probe(m, b->n, fp, "count", (long)counts[k], 0));
    /* Heap size chosen so that 48 + count*rs + heap == len modulo 2^32. */
    uint32_t body32 = counts[k] * rs;
    mp_wr32(m + MP_H_HEAP_SIZE, (uint32_t)b->n - MP_HEADER_SIZE - body32);
    tally(probe(m, b->n, fp, "count+heap", (long)counts[k], 1));
  }
  free(m);
}

static void fuzz_random(const bytes *b, uint64_t fp, int n) {
  uint8_t *m = calloc(b->n + 8, 1);
  if (!m) abort();
  for (int t = 0; t < n; t++) {
    memcpy(m, b->p, b->n);
    int k = 1 + (int)rnd_below(8);
    for (int j = 0; j < k; j++) {
      static const uint8_t special[] = {0x00, 0xFF, 0x80, 0x7F, 0x01};
      size_t pos = (size_t)rnd_below(b->n);
      m[pos] = rnd_below(2) ? special[rnd_below(5)] : (uint8_t)rnd();
    }
    size_t len = b->n;
    if (rnd_below(10) == 0) len = (size_t)rnd_below(b->n + 8); /* bytes past n stay 0 */
    tally(probe(m, len, fp, "random", t, k));
  }
  free(m);
}

/* A forged record: NULL bits and heap references mostly, not always, sane. */
static void forge_record(uint8_t *rec, uint64_t mask, uint64_t var,
                         uint32_t heap) {
  uint64_t nulls = rnd() & mask;
  if (rnd_below(20) == 0) nulls |= (uint64_t)1 << rnd_below(64);
  mp_wr64(rec, nulls);
  int k = 0;
  for (int i = 0; i < 64; i++) {
    if (!((mask >> i) & 1)) continue;
    uint8_t *slot = rec + 8 + 8 * k++;
    if ((nulls >> i) & 1) {
      mp_wr64(slot, rnd_below(20) == 0 ? rnd() : 0);
    } else if ((var >> i) & 1) {
      uint32_t off = (uint32_t)rnd_below(heap + 2);
      mp_wr32(slot, off);
      mp_wr32(slot + 4, (uint32_t)rnd_below(heap + 2 - off));
    } else {
      mp_wr64(slot, rnd());
    }
  }
}

/* Self-consistent headers over random records, so mutants get past the
 * header checks and exercise the per-record ones. */
static void fuzz_forged(int n) {
  for (int t = 0; t < n; t++) {
    uint64_t mask = 0;
    int nbits = 1 + (int)rnd_below(8);
    for (int j = 0; j < nbits; j++) mask |= (uint64_t)1 << (rnd_below(3) ? rnd_below(8) : rnd_below(64));
    uint64_t var = rnd() & mask;
    uint32_t count = 1 + (uint32_t)rnd_below(3), heap = (uint32_t)rnd_below(40);
    uint32_t rs = mp_record_size(mask);
    size_t len = MP_HEADER_SIZE + (size_t)count * rs + heap;
    uint8_t *b = calloc(len, 1);
    if (!b) abort();
    memcpy(b, MP_MAGIC, 4);
    mp_wr16(b + MP_H_VERSION, MP_LAYOUT_VERSION);
    mp_wr16(b + MP_H_FLAGS, (uint16_t)(rnd_below(10) ? rnd_below(8) : rnd()));
    mp_wr32(b + MP_H_COUNT, count);
    mp_wr32(b + MP_H_RECORD_SIZE, rs);
    mp_wr64(b + MP_H_FINGERPRINT, rnd());
    mp_wr64(b + MP_H_MASK, mask);
    mp_wr64(b + MP_H_VARMASK, var);
    mp_wr32(b + MP_H_HEAP_SIZE, heap);
    for (uint32_t r = 0; r < count; r++) forge_record(b + MP_HEADER_SIZE + r * rs, mask, var, heap);
    for (uint32_t h = 0; h < heap; h++) b[len - heap + h] = rnd_below(3) ? 0 : (uint8_t)rnd();
    tally(probe(b, len, mp_rd64(b + MP_H_FINGERPRINT), "forged", t, (long)mask));
    free(b);
  }
}

/* ---- the valid blobs the mutants start from ---- */

static const char VAL_SQL[] =
    "CREATE TABLE v(id INTEGER PRIMARY KEY, a TEXT, n INTEGER, b BLOB, x REAL);"
    "INSERT INTO v VALUES(1, 'h\xc3\xa9llo', 42, x'00ff10', 1.5),"
    " (2, NULL, -1, x'', NULL), (3, '', 7, x'0102', 2.5);"
    "CREATE VIRTUAL TABLE vm USING modelpack(source='v', id INTEGER PRIMARY KEY,"
    " a TEXT, n INTEGER, b BLOB, x REAL);";

static int fetch_blob(sqlite3 *db, const char *sql, bytes *out) {
  sqlite3_stmt *st = prepare(db, sql);
  int ok = st && sqlite3_step(st) == SQLITE_ROW &&
           sqlite3_column_type(st, 0) == SQLITE_BLOB;
  if (ok)
    bytes_put(out, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
  else
    failf("%s: %s", sql, sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return ok;
}

/* A batch by hand, as FORMAT.md describes it: the rows' records end to end
 * under one header, their heaps concatenated, heap offsets shifted. */
static int make_batch(bytes *rows, int n, bytes *out) {
  uint8_t hdr[MP_HEADER_SIZE];
  mp_view v[8];
  uint32_t heap = 0;
  for (int r = 0; r < n; r++) {
    if (!mp_view_open(&v[r], rows[r].p, rows[r].n, 0, NULL)) return 0;
    heap += v[r].heap_size;
  }
  memcpy(hdr, rows[0].p, MP_HEADER_SIZE);
  mp_wr16(hdr + MP_H_FLAGS, (uint16_t)(v[0].flags | MP_FLAG_BATCH));
  mp_wr32(hdr + MP_H_COUNT, (uint32_t)n);
  mp_wr32(hdr + MP_H_HEAP_SIZE, heap);
  bytes_put(out, hdr, sizeof hdr);
  uint32_t base = 0;
  for (int r = 0; r < n; r++) {
    size_t at = out->n;
    bytes_put(out, v[r].records, v[r].record_size);
    for (int i = 0; i < 64; i++)
      if (((v[r].varmask >> i) & 1) && !mp_is_null(&v[r], 0, i)) {
        uint8_t *slot = out->p + at + mp_slot_offset(v[r].mask, i);
        mp_wr32(slot, mp_rd32(slot) + base);
      }
    base += v[r].heap_size;
  }
  for (int r = 0; r < n; r++) bytes_put(out, v[r].heap, v[r].heap_size);
  return 1;
}

/* Record r of the batch must decode exactly like row r on its own. */
static int check_batch(bytes *rows, int n, const bytes *batch) {
  mp_view bv, rv;
  const char *why = "";
  if (!mp_view_open(&bv, batch->p, batch->n, 0, &why))
    return failf("hand-made batch refused: %s", why);
  if (bv.count != (uint32_t)n || !(bv.flags & MP_FLAG_BATCH))
    return failf("hand-made batch: count %u flags 0x%x", bv.count, bv.flags);
  for (int r = 0; r < n; r++) {
    mp_view_open(&rv, rows[r].p, rows[r].n, 0, NULL);
    for (int i = 0; i < 64; i++) {
      if (!mp_is_loaded(&rv, i)) continue;
      if (mp_is_null(&bv, (uint32_t)r, i) != mp_is_null(&rv, 0, i))
        return failf("batch record %d field %d: NULL bit differs from its row", r, i);
      if (mp_is_null(&rv, 0, i)) continue;
      uint32_t bn = 0, rn = 0;
      if ((rv.varmask >> i) & 1) {
        const uint8_t *bp = mp_get_bytes(&bv, (uint32_t)r, i, &bn);
        const uint8_t *rp = mp_get_bytes(&rv, 0, i, &rn);
        if (bn != rn || memcmp(bp, rp, rn) != 0)
          return failf("batch record %d field %d differs from its row", r, i);
      } else if (mp_get_int64(&bv, (uint32_t)r, i) != mp_get_int64(&rv, 0, i)) {
        return failf("batch record %d field %d differs from its row", r, i);
      }
    }
  }
  return 1;
}

static void fuzz_blob(const char *label, const bytes *b) {
  mp_view v;
  long before = stats.tried, acc = stats.accepted;
  if (!mp_view_open(&v, b->p, b->n, 0, NULL)) {
    tally(failf("validator seed blob %s is not valid", label));
    return;
  }
  fuzz_truncate(b, v.fingerprint);
  fuzz_every_byte(b, v.fingerprint);
  fuzz_heap_refs(b, v.fingerprint);
  fuzz_counts(b, v.fingerprint);
  fuzz_random(b, v.fingerprint, 20000);
  printf("validator %s (%zu bytes): %ld probes, %ld accepted\n", label, b->n,
         stats.tried - before, stats.accepted - acc);
}

static void test_validator(const char *ext) {
  sqlite3 *db = open_with_extension(":memory:", SQLITE_OPEN_READWRITE, ext);
  bytes rows[3] = {{0}}, deferred = {0}, batch = {0}, real = {0}, real2 = {0};
  int ok = db && exec(db, VAL_SQL);
  for (int r = 0; ok && r < 3; r++) {
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT packed FROM vm WHERE id = %d", r + 1);
    ok = fetch_blob(db, sql, &rows[r]);
  }
  ok = ok && fetch_blob(db, "SELECT packed FROM vm WHERE id = 1 AND mask = "
                            "modelpack_mask('vm', 'id,a,x')", &deferred);
  ok = ok && make_batch(rows, 3, &batch);
  tally(ok && check_batch(rows, 3, &batch));
  /* Batches as the extension emits them: all three rows in one blob, and
   * the first two of a deferred-mask read in batches of 2. */
  ok = ok && fetch_blob(db, "SELECT packed FROM vm WHERE batch = 3", &real);
  tally(ok && check_batch(rows, 3, &real));
  ok = ok && fetch_blob(db, "SELECT packed FROM vm WHERE batch = 2 AND mask = "
                            "modelpack_mask('vm', 'id,a,b') ORDER BY id", &real2);
  if (ok) {
    fuzz_blob("row", &rows[0]);
    fuzz_blob("deferred", &deferred);
    fuzz_blob("batch", &batch);
    fuzz_blob("real batch", &real);
    fuzz_blob("real deferred batch", &real2);
    long before = stats.tried, acc = stats.accepted;
    fuzz_forged(30000);
    printf("validator forged headers: %ld probes, %ld accepted\n",
           stats.tried - before, stats.accepted - acc);
  }
  for (int r = 0; r < 3; r++) free(rows[r].p);
  free(deferred.p);
  free(batch.p);
  free(real.p);
  free(real2.p);
  sqlite3_close(db);
}

/* --------------------------------------------------------------------- main */

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s <extension-path-without-.so> [<database-file>]\n", argv[0]);
    return 2;
  }
  const char *seed = getenv("MODELPACK_TEST_SEED");
  rng_state = seed ? strtoull(seed, NULL, 0) : 20240601;
  printf("seed %" PRIu64 "\n", rng_state);
  if (argc == 3)
    test_database(argv[1], argv[2]);
  else
    test_generated(argv[1]);
  test_validator(argv[1]);
  printf("%ld passed, %ld failed\n", n_passed, n_failed);
  return n_failed ? 1 : 0;
}
