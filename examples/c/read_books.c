/*
 * read_books.c -- reading modelpack rows from C, start to finish.
 *
 *   read_books <extension-path-without-.so> [database]
 *
 * Loads the extension, makes sure there is a `book` model (creating a small
 * book_rows table and the model if the database has none; without a
 * database argument everything lives in memory), then reads id, title and
 * price only, two ways:
 *
 *   1. In batches -- the recommended fast path: one blob holds up to 1000
 *      records, so SQLite hands over one value per 1000 rows instead of one
 *      per row, the blob is validated once, and the records sit end to end
 *      in memory like an array of structs:
 *
 *        SELECT packed FROM book
 *        WHERE batch = 1000 AND mask = modelpack_mask('book', 'id,title,price')
 *
 *   2. One row per blob, the same query without `batch = 1000`: simpler when
 *      a row at a time is all you want (WHERE id = ?, small results).
 *
 * Each blob is validated with mp_view_open() against the fingerprint this
 * program computes from the layout it was written for, and its records are
 * printed twice: once through the portable getters of include/modelpack.h,
 * once by laying a C struct over the records, which is what the fixed,
 * 8-byte aligned layout is for (little-endian hosts only, checked at run
 * time).  The getters and the struct work the same on a per-row blob (a
 * batch of one) and on a batch.
 *
 * Build and run: make build/example_c && ./build/example_c ./modelpack
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "../../include/modelpack.h"

/* The model as this program knows it: the same names, types and order as
 * the CREATE VIRTUAL TABLE below.  The fingerprint is computed from it, so a
 * database whose `book` model differs is refused instead of misread. */
enum { F_ID, F_TITLE, F_PRICE, F_IN_PRINT, N_FIELDS };
static const char *const FIELD_NAMES[N_FIELDS] = {"id", "title", "price", "in_print"};
static const unsigned char FIELD_TYPES[N_FIELDS] = {MP_INTEGER, MP_TEXT, MP_REAL,
                                                    MP_BOOLEAN};

static const char CREATE_SQL[] =
    "CREATE TABLE book_rows(id INTEGER PRIMARY KEY, title TEXT NOT NULL,"
    "                       price REAL, in_print INTEGER);"
    "INSERT INTO book_rows VALUES"
    " (1, 'Pride and Prejudice', 9.99, 1),"
    " (2, 'Cien a\xc3\xb1os de soledad', 14.5, 1),"
    " (3, 'The Mythical Man-Month', NULL, 0),"
    " (4, 'foobar_4', 0.5, 1);"
    "CREATE VIRTUAL TABLE book USING modelpack("
    "  source   = 'book_rows',"
    "  id       INTEGER PRIMARY KEY,"
    "  title    TEXT NOT NULL,"
    "  price    REAL,"
    "  in_print BOOLEAN);";

/* Records per batch: 1000 keeps a blob of rows like these well under a
 * megabyte -- big enough that the per-row overhead of a SQLite value is
 * gone, small enough to stay in cache -- and memory stays at about one
 * batch whatever the size of the result. */
static const char BATCH_QUERY[] =
    "SELECT packed FROM book"
    " WHERE batch = 1000 AND mask = modelpack_mask('book', 'id,title,price')";

static const char ROW_QUERY[] =
    "SELECT packed FROM book WHERE mask = modelpack_mask('book', 'id,title,price')";

/* The record for that mask, slot for slot: a 64-bit null bitmap, then one
 * 8-byte slot per loaded field in declaration order (in_print is deferred,
 * so it has none).  TEXT is an (offset, length) pair into the heap. */
struct book_record {
  uint64_t nulls;
  int64_t id;
  uint32_t title_off, title_len;
  double price;
};
_Static_assert(sizeof(struct book_record) == 32, "one bitmap + three 8-byte slots");

/* ---- setup ---- */

static sqlite3 *open_database(const char *path, const char *extension) {
  sqlite3 *db = NULL;
  char *err = NULL;
  if (sqlite3_open(path, &db) != SQLITE_OK) {
    fprintf(stderr, "cannot open %s: %s\n", path, sqlite3_errmsg(db));
    sqlite3_close(db);
    return NULL;
  }
  /* Loading is off by default; the C API switch does not enable the SQL
   * load_extension() function, only this call. */
  sqlite3_enable_load_extension(db, 1);
  if (sqlite3_load_extension(db, extension, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "cannot load %s: %s\n", extension, err);
    sqlite3_free(err);
    sqlite3_close(db);
    return NULL;
  }
  return db;
}

static int has_book_model(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  int found = 0;
  if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_schema WHERE name = 'book'", -1,
                         &st, NULL) == SQLITE_OK)
    found = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return found;
}

static int ensure_books(sqlite3 *db) {
  char *err = NULL;
  if (has_book_model(db)) return 1;
  if (sqlite3_exec(db, CREATE_SQL, NULL, NULL, &err) == SQLITE_OK) return 1;
  fprintf(stderr, "cannot create the book model: %s\n", err);
  sqlite3_free(err);
  return 0;
}

/* ---- reading with the getters: works on any host ---- */

/* Record r of a validated blob (r < v->count; 0 for a per-row blob). */
static void print_with_getters(const mp_view *v, uint32_t r) {
  uint32_t len;
  const uint8_t *title = mp_get_bytes(v, r, F_TITLE, &len);
  printf("  getters: id=%-3lld title=%-28.*s", (long long)mp_get_int64(v, r, F_ID),
         (int)len, (const char *)title);
  if (mp_is_null(v, r, F_PRICE))
    printf(" price=NULL\n");
  else
    printf(" price=%.2f\n", mp_get_double(v, r, F_PRICE));
}

/* ---- reading through a struct overlay: little-endian hosts only ---- */

static int host_is_little_endian(void) {
  const uint16_t one = 1;
  uint8_t first;
  memcpy(&first, &one, 1);
  return first == 1;
}

/* The struct must match what the extension says the record is. */
static int struct_matches(const mp_view *v) {
  return v->record_size == sizeof(struct book_record) &&
         mp_slot_offset(v->mask, F_ID) == offsetof(struct book_record, id) &&
         mp_slot_offset(v->mask, F_TITLE) == offsetof(struct book_record, title_off) &&
         mp_slot_offset(v->mask, F_PRICE) == offsetof(struct book_record, price);
}

/* Records start at byte 48 and are multiples of 8 bytes, so every record
 * is 8-byte aligned whenever the blob is, and a batch's records form an
 * array: records[0 .. count-1].  SQLite promises no alignment for blob
 * pointers: copy into malloc'ed memory (aligned for any type) when the
 * pointer is not aligned.  The blob has passed mp_view_open(), so every
 * title offset and length is known to lie inside the heap. */
static void print_with_overlay(const uint8_t *blob, size_t len, const mp_view *v) {
  uint8_t *copy = NULL;
  if ((uintptr_t)blob % _Alignof(struct book_record) != 0) {
    if (!(copy = malloc(len))) return;
    memcpy(copy, blob, len);
    blob = copy;
  }
  const struct book_record *records = (const struct book_record *)(blob + MP_HEADER_SIZE);
  const uint8_t *heap = blob + MP_HEADER_SIZE + (size_t)v->count * v->record_size;
  for (uint32_t i = 0; i < v->count; i++) {
    const struct book_record *r = &records[i];
    const char *title = (const char *)heap + r->title_off; /* NUL-terminated */
    printf("  struct:  id=%-3lld title=%-28.*s", (long long)r->id, (int)r->title_len, title);
    if (r->nulls & ((uint64_t)1 << F_PRICE))
      printf(" price=NULL\n");
    else
      printf(" price=%.2f\n", r->price);
  }
  free(copy);
}

/* ---- the queries ---- */

/*
 * Runs `query` and prints every record of every blob it returns.  The loop
 * is the same for batches and for one row per blob: validate the blob once,
 * then walk its v.count records (always 1 without `batch = N`).
 */
static int read_books(sqlite3 *db, const char *query) {
  const uint64_t mask = (1u << F_ID) | (1u << F_TITLE) | (1u << F_PRICE);
  const uint64_t fingerprint = mp_fingerprint(FIELD_NAMES, FIELD_TYPES, N_FIELDS, mask);
  int overlay = host_is_little_endian(), rc;
  long nblob = 0, nrec = 0;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, query, -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "%s\n", sqlite3_errmsg(db));
    return 0;
  }
  printf("%s\nlayout fingerprint %016llx, record %u bytes\n", query,
         (unsigned long long)fingerprint, mp_record_size(mask));
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    mp_view v;
    const char *why = NULL;
    const uint8_t *blob = sqlite3_column_blob(st, 0);
    size_t len = (size_t)sqlite3_column_bytes(st, 0);
    /* Nothing in the blob is trusted until mp_view_open() accepts it; it
     * checks every record of a batch, once, before any is read. */
    if (!mp_view_open(&v, blob, len, fingerprint, &why)) {
      fprintf(stderr, "refused a blob: %s\n", why);
      sqlite3_finalize(st);
      return 0;
    }
    nblob++;
    nrec += v.count;
    if (v.flags & MP_FLAG_BATCH) printf(" batch %ld: %u records\n", nblob, v.count);
    for (uint32_t r = 0; r < v.count; r++) print_with_getters(&v, r);
    if (overlay && struct_matches(&v)) print_with_overlay(blob, len, &v);
  }
  if (!overlay) printf("(big-endian host: struct overlay skipped, getters only)\n");
  if (rc != SQLITE_DONE) fprintf(stderr, "%s\n", sqlite3_errmsg(db));
  else printf("%ld records in %ld blob%s\n\n", nrec, nblob, nblob == 1 ? "" : "s");
  sqlite3_finalize(st);
  return rc == SQLITE_DONE;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s <extension-path-without-.so> [database]\n", argv[0]);
    return 2;
  }
  sqlite3 *db = open_database(argc == 3 ? argv[2] : ":memory:", argv[1]);
  if (!db) return 1;
  /* Batches first: the way to read many rows. */
  int ok = ensure_books(db) && read_books(db, BATCH_QUERY) && read_books(db, ROW_QUERY);
  sqlite3_close(db);
  return ok ? 0 : 1;
}
