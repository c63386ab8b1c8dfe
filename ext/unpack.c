/*
 * unpack.c -- modelpack_unpack(model, blob): a blob back as rows.
 *
 * An eponymous table-valued function with a fixed shape, one row per
 * (record, loaded field): record, field, name, type, value.  It works for
 * any model without declaring anything; to get rows with the model's own
 * columns, use the model table's hidden column: WHERE unpack = :blob.
 */
#include <string.h>

#include "mp_internal.h"

enum { U_RECORD, U_FIELD, U_NAME, U_TYPE, U_VALUE, U_MODEL, U_BLOB };

typedef struct unpack_vtab {
  sqlite3_vtab base;
  sqlite3 *db;
  mp_registry *reg;
} unpack_vtab;

typedef struct unpack_cursor {
  sqlite3_vtab_cursor base;
  mp_model *m;
  sqlite3_value *blob;
  mp_view view;
  uint32_t rec;
  int field; /* current loaded field, or m->nfield at the end */
  sqlite3_int64 rowid;
} unpack_cursor;

static int u_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                     sqlite3_vtab **out, char **err) {
  int rc = sqlite3_declare_vtab(db,
      "CREATE TABLE x(record INTEGER, field INTEGER, name TEXT, type TEXT, "
      "value, model HIDDEN, blob HIDDEN)");
  /* It looks a model up by name (and may connect it): direct use only. */
  if (rc == SQLITE_OK) rc = sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  if (rc != SQLITE_OK) return rc;
  unpack_vtab *vt = sqlite3_malloc(sizeof *vt);
  if (!vt) return SQLITE_NOMEM;
  memset(vt, 0, sizeof *vt);
  vt->db = db;
  vt->reg = aux;
  *out = &vt->base;
  return SQLITE_OK;
}

static int u_disconnect(sqlite3_vtab *vt) {
  sqlite3_free(vt);
  return SQLITE_OK;
}

/* Both arguments are required: a plan without them is unusable. */
static int u_best_index(sqlite3_vtab *vt, sqlite3_index_info *info) {
  int at[2] = {-1, -1};
  for (int i = 0; i < info->nConstraint; i++) {
    int col = info->aConstraint[i].iColumn;
    if ((col != U_MODEL && col != U_BLOB) ||
        info->aConstraint[i].op != SQLITE_INDEX_CONSTRAINT_EQ)
      continue;
    if (!info->aConstraint[i].usable) return SQLITE_CONSTRAINT;
    at[col - U_MODEL] = i;
  }
  if (at[0] < 0 || at[1] < 0) {
    sqlite3_free(vt->zErrMsg);
    vt->zErrMsg = sqlite3_mprintf("modelpack_unpack needs two arguments: model and blob");
    return SQLITE_ERROR;
  }
  for (int k = 0; k < 2; k++) {
    info->aConstraintUsage[at[k]].argvIndex = k + 1;
    info->aConstraintUsage[at[k]].omit = 1;
  }
  info->estimatedCost = 10;
  info->estimatedRows = 10;
  return SQLITE_OK;
}

static int u_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out) {
  unpack_cursor *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  *out = &c->base;
  return SQLITE_OK;
}

static void u_reset(unpack_cursor *c) {
  mp_model_unref(c->m);
  sqlite3_value_free(c->blob);
  c->m = NULL;
  c->blob = NULL;
}

static int u_close(sqlite3_vtab_cursor *cur) {
  u_reset((unpack_cursor *)cur);
  sqlite3_free(cur);
  return SQLITE_OK;
}

/* Move to the next loaded field at or after `from`, across records. */
static void seek(unpack_cursor *c, int from) {
  for (;;) {
    while (from < c->m->nfield && !mp_is_loaded(&c->view, from)) from++;
    if (from < c->m->nfield || ++c->rec >= c->view.count) break;
    from = 0;
  }
  c->field = from;
  c->rowid++;
}

static int u_filter(sqlite3_vtab_cursor *cur, int idxNum, const char *idxStr,
                    int argc, sqlite3_value **argv) {
  unpack_cursor *c = (unpack_cursor *)cur;
  unpack_vtab *vt = (unpack_vtab *)cur->pVtab;
  const char *name = (const char *)sqlite3_value_text(argv[0]);
  mp_entry *e = NULL;
  char *err = NULL;
  u_reset(c);
  int rc = name ? mp_registry_find(vt->reg, vt->db, name, &e, &err) : SQLITE_ERROR;
  if (rc == SQLITE_OK) {
    c->m = e->model;
    c->m->refs++;
    c->blob = sqlite3_value_dup(argv[1]);
    rc = c->blob ? mp_blob_open(c->m, c->blob, &c->view, &err) : SQLITE_NOMEM;
  } else if (err) {
    char *msg = sqlite3_mprintf("modelpack: %s", err);
    sqlite3_free(err);
    err = msg;
  } else if (!name) {
    err = sqlite3_mprintf("modelpack: the model name must be text");
  }
  if (rc != SQLITE_OK) {
    u_reset(c);
    sqlite3_free(vt->base.zErrMsg);
    vt->base.zErrMsg = err;
    return rc;
  }
  c->rec = 0;
  c->rowid = 0;
  seek(c, 0);
  return SQLITE_OK;
}

static int u_next(sqlite3_vtab_cursor *cur) {
  unpack_cursor *c = (unpack_cursor *)cur;
  seek(c, c->field + 1);
  return SQLITE_OK;
}

static int u_eof(sqlite3_vtab_cursor *cur) {
  unpack_cursor *c = (unpack_cursor *)cur;
  return !c->m || c->rec >= c->view.count;
}

static int u_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col) {
  unpack_cursor *c = (unpack_cursor *)cur;
  switch (col) {
    case U_RECORD: sqlite3_result_int64(ctx, c->rec); break;
    case U_FIELD: sqlite3_result_int(ctx, c->field); break;
    case U_NAME:
      sqlite3_result_text(ctx, c->m->fields[c->field].name, -1, SQLITE_TRANSIENT);
      break;
    case U_TYPE:
      sqlite3_result_text(ctx, mp_type_name(c->m->types[c->field]), -1, SQLITE_STATIC);
      break;
    case U_VALUE: mp_result_field(ctx, c->m, &c->view, c->rec, c->field); break;
    case U_MODEL: sqlite3_result_text(ctx, c->m->name, -1, SQLITE_TRANSIENT); break;
    default: sqlite3_result_value(ctx, c->blob); break;
  }
  return SQLITE_OK;
}

static int u_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  *rowid = ((unpack_cursor *)cur)->rowid;
  return SQLITE_OK;
}

static sqlite3_module unpack_module = {
    .iVersion = 1,
    .xConnect = u_connect,
    .xBestIndex = u_best_index,
    .xDisconnect = u_disconnect,
    .xOpen = u_open,
    .xClose = u_close,
    .xFilter = u_filter,
    .xNext = u_next,
    .xEof = u_eof,
    .xColumn = u_column,
    .xRowid = u_rowid,
};

int mp_register_unpack(sqlite3 *db, mp_registry *r) {
  return sqlite3_create_module(db, "modelpack_unpack", r ? &unpack_module : NULL, r);
}
