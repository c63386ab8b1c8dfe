/*
 * reader.c -- step a statement and pack its rows into blobs.
 *
 * Model tables and modelpack_query both read through an mp_reader: each
 * mp_reader_fill() steps the statement until the blob holds `capacity`
 * records (1 for per-row blobs, N for batches) or the rows run out.  How a
 * row becomes a record depends on the statement:
 *   MP_READ_FN      the statement packs its own rows (modelpack_pack_row);
 *   MP_READ_FN_BATCH  likewise, from its WHERE clause, returning a row only
 *                   when a batch is full (no per-row return to us);
 *   MP_READ_COLS    the loaded fields are result columns (colidx);
 *   MP_READ_STORED  column 0 is a stored record, column 1 why some of its
 *                   fields are not safe, column 2 which; the record is
 *                   sliced to the mask.
 */
#include <string.h>

#include "mp_internal.h"

int mp_reader_config(mp_reader *r, const mp_model *m, uint64_t mask, int safe,
                     uint32_t capacity, int batch) {
  mp_packer *p = &r->packer;
  int flags = (safe ? MP_FLAG_SAFE : 0) | (batch ? MP_FLAG_BATCH : 0);
  r->done = 0;
  if (r->ready && p->m == m && p->mask == mask && p->safe == safe &&
      p->capacity == capacity && p->flags == flags) {
    mp_packer_reset(p);
    return SQLITE_OK;
  }
  mp_reader_free(r);
  int rc = mp_packer_init(p, m, mask, safe, capacity, batch);
  r->ready = rc == SQLITE_OK;
  /* What every stored record of this model must look like. */
  r->stored_mask = mp_all_fields(m->nfield);
  r->stored_fp = mp_fingerprint(m->names, m->types, m->nfield, r->stored_mask);
  r->stored_varmask = 0;
  for (int i = 0; i < m->nfield; i++)
    if (m->types[i] == MP_TEXT || m->types[i] == MP_BLOB) r->stored_varmask |= (uint64_t)1 << i;
  return rc;
}

void mp_reader_free(mp_reader *r) {
  if (r->ready) mp_packer_free(&r->packer);
  r->ready = 0;
  for (int k = 0; k < MP_MAX_FIELDS; k++) {
    sqlite3_value_free(r->kept[k]);
    r->kept[k] = NULL;
  }
}

/* Keep the first row's values of the columns a batch row still shows. */
static int keep_first_row(mp_reader *r) {
  for (int k = 0; k < r->nkeep; k++) {
    sqlite3_value_free(r->kept[k]);
    r->kept[k] = sqlite3_value_dup(sqlite3_column_value(r->stmt, r->keepcol[k]));
    if (!r->kept[k]) return SQLITE_NOMEM;
  }
  return SQLITE_OK;
}

static int pack_columns(mp_reader *r, char **err) {
  mp_packer *p = &r->packer;
  for (int j = 0; j < p->nloaded; j++)
    r->vals[j] = sqlite3_column_value(r->stmt, r->colidx[j]);
  return mp_pack_values(p, r->vals, err);
}

static int stored_damaged(mp_reader *r, const char *why, char **err) {
  const mp_model *m = r->packer.m;
  *err = sqlite3_mprintf("modelpack: %s: damaged stored record (%s); run modelpack_rebuild('%s')",
                         m->name, why, m->name);
  return SQLITE_CORRUPT;
}

/* The error safe packing gave the first unsafe field this read loads:
 * mp_error holds one line per unsafe field, in field order. */
static char *unsafe_reason(mp_reader *r, uint64_t unsafe) {
  const char *why = (const char *)sqlite3_column_text(r->stmt, 1);
  uint64_t hit = unsafe & r->packer.mask;
  uint64_t first = hit & (~hit + 1); /* lowest unsafe field loaded */
  int line = mp_popcount64(unsafe & (first - 1));
  while (why && line-- > 0) {
    why = strchr(why, '\n');
    if (why) why++;
  }
  if (!why) return sqlite3_mprintf("modelpack: %s: stored record failed safe packing", r->packer.m->name);
  const char *end = strchr(why, '\n');
  return sqlite3_mprintf("%.*s", end ? (int)(end - why) : (int)strlen(why), why);
}

static int pack_stored(mp_reader *r, char **err) {
  mp_packer *p = &r->packer;
  sqlite3_value *v = sqlite3_column_value(r->stmt, 0);
  mp_view view;
  const char *why = "not a blob";
  /* The shadow table is part of the database file: trust nothing in it. */
  if (sqlite3_value_type(v) != SQLITE_BLOB ||
      !mp_view_open(&view, sqlite3_value_blob(v), (size_t)sqlite3_value_bytes(v), r->stored_fp, &why))
    return stored_damaged(r, why, err);
  if (view.count != 1 || view.mask != r->stored_mask || view.varmask != r->stored_varmask)
    return stored_damaged(r, "not one full record of this model", err);
  uint64_t unsafe = (uint64_t)sqlite3_column_int64(r->stmt, 2);
  if (p->safe && (unsafe & p->mask)) {
    *err = unsafe_reason(r, unsafe);
    return SQLITE_CONSTRAINT;
  }
  return mp_pack_slice(p, &view, 0);
}

/* One more row into the blob: SQLITE_ROW, SQLITE_DONE or an error. */
static int add_row(mp_reader *r, char **err) {
  /* Re-entering while stepping means the source reads this model back. */
  if (r->depth && *r->depth > 0) {
    *err = sqlite3_mprintf("modelpack: %s: the source reads the model itself (recursion)",
                           r->packer.m->name);
    return SQLITE_ERROR;
  }
  if (r->depth) (*r->depth)++;
  uint32_t before = r->packer.count;
  int rc = sqlite3_step(r->stmt);
  if (r->depth) (*r->depth)--;
  if (rc == SQLITE_DONE) return rc;
  if (rc != SQLITE_ROW) {
    /* A packing error raised inside the statement already says it all. */
    if (r->packer.failed) *err = sqlite3_mprintf("%s", sqlite3_errmsg(sqlite3_db_handle(r->stmt)));
    return rc;
  }
  if (r->how == MP_READ_COLS) rc = pack_columns(r, err);
  else if (r->how == MP_READ_STORED) rc = pack_stored(r, err);
  else rc = r->packer.count == before + 1 ? SQLITE_OK : SQLITE_INTERNAL;
  if (rc == SQLITE_OK && before == 0) rc = keep_first_row(r);
  return rc == SQLITE_OK ? SQLITE_ROW : rc;
}

/* The statement packs rows until a batch is full, then returns one row. */
static int fill_in_statement(mp_reader *r, char **err) {
  if (r->depth && *r->depth > 0) return add_row(r, err); /* reports the recursion */
  if (r->depth) (*r->depth)++;
  int rc = sqlite3_step(r->stmt);
  if (r->depth) (*r->depth)--;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE && r->packer.failed)
    *err = sqlite3_mprintf("%s", sqlite3_errmsg(sqlite3_db_handle(r->stmt)));
  return rc;
}

int mp_reader_fill(mp_reader *r, char **err) {
  mp_packer *p = &r->packer;
  int rc = SQLITE_ROW;
  *err = NULL;
  mp_packer_reset(p);
  p->failed = 0;
  /* Stepping a finished statement would run it again from the start. */
  if (r->done) return SQLITE_DONE;
  if (r->how == MP_READ_FN_BATCH) rc = fill_in_statement(r, err);
  else
    while (p->count < p->capacity && (rc = add_row(r, err)) == SQLITE_ROW) {
    }
  if (rc == SQLITE_DONE) r->done = 1;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
  if (!p->count) return SQLITE_DONE;
  r->blob = mp_packer_blob(p, &r->blob_len);
  return SQLITE_ROW;
}
