/*
 * cursor.c -- reading a model table: xOpen ... xClose.
 *
 * xFilter picks how rows are packed and builds the source statement
 * (plan.c decided what to push, source.c writes the SQL):
 *   - the source does not sort: the statement packs each row itself
 *     (MP_READ_FN), handing values to the packer without a
 *     sqlite3_column_* call per field;
 *   - it sorts: rows are packed from its result columns (MP_READ_COLS),
 *     since a sorter evaluates the select list ahead of returning rows;
 *   - a stored model read only by primary key: stored records are sliced
 *     (MP_READ_STORED);
 *   - the query never reads `packed`: nothing is packed.
 * Rows come out one per blob, or `batch` records per blob.  The fast/safe
 * choice uses the hooks in force when the cursor opened (query start).
 */
#include <string.h>

#include "mp_util.h"
#include "mp_vtab.h"

#define MP_NOPACK (-1)

typedef struct mp_cursor {
  sqlite3_vtab_cursor base;
  mp_reader rd;  /* rd.stmt: the source statement */
  char *sql;     /* its text, the statement cache's key */
  int how;       /* MP_READ_* or MP_NOPACK */
  uint32_t batch; /* records per blob; 0 = one row per blob, no BATCH flag */
  uint64_t mask;
  int safe;
  int colmap[MP_MAX_FIELDS]; /* field -> statement column, or -1 */
  int keep_of[MP_MAX_FIELDS]; /* batch rows: field -> rd.kept index, or -1 */
  int eof;
  sqlite3_int64 rowno;
  unsigned snap_hooks; /* run-time hooks when the query started */
  uint64_t snap_setattr;
  sqlite3_value *ublob; /* unpack: the blob being read back */
  mp_view view;
  uint32_t rec;
} mp_cursor;

static int set_error(mp_vtab *vt, char *msg) {
  sqlite3_free(vt->base.zErrMsg);
  vt->base.zErrMsg = msg;
  return msg ? SQLITE_ERROR : SQLITE_NOMEM;
}

int mp_cursor_open(sqlite3_vtab *p, sqlite3_vtab_cursor **out) {
  mp_vtab *vt = (mp_vtab *)p;
  mp_cursor *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  c->eof = 1;
  mp_entry *e = mp_registry_get(vt->reg, vt->schema, vt->m->name);
  if (e) {
    c->snap_hooks = e->hooks;
    c->snap_setattr = e->setattr;
  }
  *out = &c->base;
  return SQLITE_OK;
}

static void cursor_reset(mp_cursor *c) {
  mp_vtab *vt = (mp_vtab *)c->base.pVtab;
  mp_cache_give(&vt->cache, c->sql, c->rd.stmt);
  c->sql = NULL;
  c->rd.stmt = NULL;
  sqlite3_value_free(c->ublob);
  c->ublob = NULL;
  c->eof = 1;
}

int mp_cursor_close(sqlite3_vtab_cursor *cur) {
  mp_cursor *c = (mp_cursor *)cur;
  cursor_reset(c);
  mp_reader_free(&c->rd);
  sqlite3_free(c);
  return SQLITE_OK;
}

/* A read that packs nothing: plain steps, still guarded against recursion. */
static int step_plain(mp_cursor *c, mp_vtab *vt) {
  if (vt->depth > 0)
    return set_error(vt, sqlite3_mprintf(
        "modelpack: %s: the source reads the model itself (recursion)", vt->m->name));
  vt->depth++;
  int rc = sqlite3_step(c->rd.stmt);
  vt->depth--;
  return rc;
}

static int cursor_step(mp_cursor *c) {
  mp_vtab *vt = (mp_vtab *)c->base.pVtab;
  char *err = NULL;
  int rc;
  if (c->ublob) {
    c->eof = ++c->rec >= c->view.count;
    return SQLITE_OK;
  }
  rc = c->how == MP_NOPACK ? step_plain(c, vt) : mp_reader_fill(&c->rd, &err);
  if (rc == SQLITE_ROW) {
    c->rowno++;
    return SQLITE_OK;
  }
  c->eof = 1;
  if (rc == SQLITE_DONE) return SQLITE_OK;
  if (vt->base.zErrMsg && !err) return rc; /* step_plain said why */
  if (!err)
    err = sqlite3_mprintf("modelpack: %s: reading %s: %s", vt->m->name,
                          c->how == MP_READ_STORED ? "stored records" : vt->m->source,
                          sqlite3_errmsg(vt->db));
  set_error(vt, err);
  return rc == SQLITE_NOMEM ? rc : SQLITE_ERROR;
}

int mp_cursor_next(sqlite3_vtab_cursor *cur) { return cursor_step((mp_cursor *)cur); }

int mp_cursor_eof(sqlite3_vtab_cursor *cur) { return ((mp_cursor *)cur)->eof; }

static int start_unpack(mp_cursor *c, sqlite3_value *blob) {
  mp_vtab *vt = (mp_vtab *)c->base.pVtab;
  char *err = NULL;
  c->ublob = sqlite3_value_dup(blob);
  if (!c->ublob) return SQLITE_NOMEM;
  if (mp_blob_open(vt->m, c->ublob, &c->view, &err) != SQLITE_OK) return set_error(vt, err);
  c->mask = c->view.mask;
  c->safe = (c->view.flags & MP_FLAG_SAFE) != 0;
  c->rec = 0;
  c->eof = 0;
  return SQLITE_OK;
}

static int choose_how(mp_vtab *vt, int flags, uint64_t extra, uint64_t mask, uint32_t batch) {
  mp_model *m = vt->m;
  /* Batches are counted in packed records, even when nobody reads them. */
  if ((flags & MP_PLAN_NOPACK) && !batch) return MP_NOPACK;
  /* Slicing a few fields out of a full stored record costs more than
   * packing them from the source (bench/): stored records serve masks
   * that load at least half of the fields. */
  int state = (m->stored || batch) ? mp_source_state(vt->db, vt->schema, m) : 0;
  if (state == MP_SRC_UNKNOWN) state = 0; /* take neither shortcut */
  /* Stored records are trusted only while their triggers keep them
   * current: after the source was dropped, renamed or replaced, rows are
   * packed from whatever the source now is (or fail to be, clearly). */
  if (m->stored && (state & MP_SRC_TRIGGERS) && (flags & MP_PLAN_PKONLY) &&
      !(extra & ~((uint64_t)1 << m->pk)) && 2 * mp_popcount64(mask) >= m->nfield)
    return MP_READ_STORED;
  if (flags & MP_PLAN_SORTED) return MP_READ_COLS;
  /* A batch over a plain scan of a table packs inside the source
   * statement, which then returns once per batch.  The packing call must
   * be the statement's only condition: a view's own WHERE could be merged
   * in and tested after it. */
  if (batch && !(flags & MP_PLAN_HASWHERE) && (state & MP_SRC_TABLE))
    return MP_READ_FN_BATCH;
  return MP_READ_FN;
}

/* Statement columns: packed fields (COLS) or the packer call / stored
 * record (FN, STORED) come first, then every field the query reads. */
static void map_columns(mp_cursor *c, const mp_model *m, uint64_t extra) {
  int col = c->how == MP_READ_COLS   ? c->rd.packer.nloaded
            : c->how == MP_READ_FN   ? 1
            : c->how == MP_READ_FN_BATCH ? 1
            : c->how == MP_READ_STORED ? 3
                                       : 0;
  for (int j = 0; c->how == MP_READ_COLS && j < c->rd.packer.nloaded; j++) c->rd.colidx[j] = j;
  for (int i = 0; i < m->nfield; i++) c->colmap[i] = (extra >> i) & 1 ? col++ : -1;
}

/*
 * A batch row has no field values of its own, so reading a field column
 * of one is an error -- which is also how a WHERE term the source could
 * not take is refused rather than applied to whole batches.  But SQLite
 * re-tests a pushed IS NULL / IS NOT NULL itself, whatever omit says: the
 * batch's first row passed those in the source, so such fields show its
 * values.
 */
static void keep_constrained(mp_cursor *c, const mp_model *m, uint64_t retested) {
  c->rd.nkeep = 0;
  if (!c->batch) return;
  for (int i = 0; i < m->nfield; i++) {
    c->keep_of[i] = -1;
    if (!((retested >> i) & 1)) continue;
    c->keep_of[i] = c->rd.nkeep;
    c->rd.keepcol[c->rd.nkeep++] = c->colmap[i];
  }
}

static int start_source(mp_cursor *c, int flags, const char *idx, sqlite3_value **argv,
                        int argi, int argc) {
  mp_vtab *vt = (mp_vtab *)c->base.pVtab;
  const mp_model *m = vt->m;
  const char *clause;
  uint64_t retested;
  uint64_t extra = mp_plan_fields(idx, &clause, &retested);
  int rc = SQLITE_OK, bind = 1;
  c->how = choose_how(vt, flags, extra, c->mask, c->batch);
  if (c->how != MP_NOPACK)
    rc = mp_reader_config(&c->rd, m, c->mask, c->safe, c->batch ? c->batch : 1, c->batch > 0);
  if (rc != SQLITE_OK) return rc;
  c->sql = mp_source_sql(m, c->how, c->how == MP_NOPACK ? 0 : c->mask, extra, clause);
  if (!c->sql) return SQLITE_NOMEM;
  rc = mp_cache_take(&vt->cache, vt->db, c->sql, &c->rd.stmt);
  if (rc != SQLITE_OK)
    return set_error(vt, sqlite3_mprintf("modelpack: %s: cannot read %s: %s", m->name,
                                         c->how == MP_READ_STORED ? "stored records" : m->source,
                                         sqlite3_errmsg(vt->db)));
  c->rd.how = c->how;
  c->rd.depth = &vt->depth;
  map_columns(c, m, extra);
  keep_constrained(c, m, retested & extra);
  if (c->how == MP_READ_FN || c->how == MP_READ_FN_BATCH)
    rc = sqlite3_bind_pointer(c->rd.stmt, bind++, &c->rd.packer, MP_PACKER_PTR, NULL);
  for (int k = argi; k < argc && rc == SQLITE_OK; k++)
    rc = sqlite3_bind_value(c->rd.stmt, bind++, argv[k]);
  if (rc != SQLITE_OK) return rc;
  /* rowno runs on across xFilter calls (IN and OR lookups): batch numbers stay unique. */
  c->eof = 0;
  return cursor_step(c);
}

int mp_cursor_filter(sqlite3_vtab_cursor *cur, int flags, const char *idx, int argc,
                     sqlite3_value **argv) {
  mp_cursor *c = (mp_cursor *)cur;
  mp_vtab *vt = (mp_vtab *)cur->pVtab;
  const mp_model *m = vt->m;
  int argi = 0, mode = MP_MODE_AUTO, unpack = -1;
  char *err = NULL;
  cursor_reset(c);
  c->mask = mp_all_fields(m->nfield);
  c->batch = 0;
  if (flags & MP_PLAN_MASK) mp_arg_mask(m, argv[argi++], &c->mask, &err);
  if (!err && (flags & MP_PLAN_MODE)) mp_arg_mode(m, argv[argi++], &mode, &err);
  if (!err && (flags & MP_PLAN_UNPACK)) unpack = argi++;
  if (!err && (flags & MP_PLAN_BATCH)) mp_arg_batch(m, argv[argi++], &c->batch, &err);
  if (err) return set_error(vt, err);
  if (unpack >= 0) return start_unpack(c, argv[unpack]);
  mp_entry snap = {0};
  snap.hooks = c->snap_hooks;
  snap.setattr = c->snap_setattr;
  c->safe = mode == MP_MODE_SAFE || (mode == MP_MODE_AUTO && mp_auto_is_safe(m, &snap, c->mask));
  return start_source(c, flags, idx, argv, argi, argc);
}

static int batch_field(mp_cursor *c, sqlite3_context *ctx, const mp_model *m, int i) {
  if (c->keep_of[i] >= 0) {
    sqlite3_result_value(ctx, c->rd.kept[c->keep_of[i]]);
    return SQLITE_OK;
  }
  char *msg = sqlite3_mprintf(
      "modelpack: %s: a batch row has no value for field %s; select packed only, and filter "
      "with conditions the source can take (=, <, LIKE, IS NULL, ...) or use modelpack_query",
      m->name, m->fields[i].name);
  sqlite3_result_error(ctx, msg ? msg : "modelpack: out of memory", -1);
  sqlite3_free(msg);
  return SQLITE_ERROR;
}

int mp_cursor_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int i) {
  mp_cursor *c = (mp_cursor *)cur;
  const mp_model *m = ((mp_vtab *)cur->pVtab)->m;
  if (i < m->nfield) {
    if (c->ublob) mp_result_field(ctx, m, &c->view, c->rec, i);
    else if (c->batch) return batch_field(c, ctx, m, i);
    else if (c->colmap[i] >= 0)
      sqlite3_result_value(ctx, sqlite3_column_value(c->rd.stmt, c->colmap[i]));
    return SQLITE_OK;
  }
  switch (i - m->nfield) {
    case MP_COL_PACKED:
      /* Copied: the buffer is packed over by the next row. */
      if (!c->ublob && c->how != MP_NOPACK)
        sqlite3_result_blob64(ctx, c->rd.blob, c->rd.blob_len, SQLITE_TRANSIENT);
      break;
    case MP_COL_MASK:
      sqlite3_result_int64(ctx, (sqlite3_int64)c->mask);
      break;
    case MP_COL_MODE:
      sqlite3_result_text(ctx, c->safe ? "safe" : "fast", -1, SQLITE_STATIC);
      break;
    case MP_COL_BATCH:
      if (c->batch) sqlite3_result_int64(ctx, c->batch);
      break;
    default:
      break;
  }
  return SQLITE_OK;
}

int mp_cursor_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  mp_cursor *c = (mp_cursor *)cur;
  const mp_model *m = ((mp_vtab *)cur->pVtab)->m;
  int pk = m->pk;
  if (c->ublob) *rowid = m->types[pk] == MP_INTEGER ? mp_get_int64(&c->view, c->rec, pk) : c->rec;
  else if (c->batch || m->types[pk] != MP_INTEGER || c->colmap[pk] < 0) *rowid = c->rowno;
  else *rowid = sqlite3_column_int64(c->rd.stmt, c->colmap[pk]);
  return SQLITE_OK;
}
