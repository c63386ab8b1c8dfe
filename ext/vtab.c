/*
 * vtab.c -- the `modelpack` virtual table module: one table per model.
 *
 * CREATE VIRTUAL TABLE book USING modelpack(source=..., fields...) declares
 * a model; its columns are the fields plus hidden packed/mask/mode/unpack.
 * A read runs one SQL statement on the source (built by plan.c and
 * source.c); when the query reads `packed`, that statement packs each row
 * itself by calling the packer (pack.c) as its first result column, which
 * hands the values over without a sqlite3_column_* call per field.
 * The fast/safe choice is made when the query opens its cursor, from the
 * hooks in force at that moment (hooks.c).
 */
#include <string.h>

#include "mp_util.h"
#include "mp_vtab.h"

typedef struct mp_cursor {
  sqlite3_vtab_cursor base;
  sqlite3_stmt *stmt; /* source statement, or NULL when unpacking */
  char *sql;          /* its text, the statement cache's key */
  mp_packer packer;
  int packer_ready;
  int reads_packed;
  int sorted;        /* source statement sorts: rows are packed ahead */
  uint64_t mask;
  int safe;
  int colmap[MP_MAX_FIELDS]; /* field -> statement column, or -1 */
  int eof;
  sqlite3_int64 rowno;
  unsigned snap_hooks; /* run-time hooks when the query started */
  uint64_t snap_setattr;
  sqlite3_value *ublob; /* unpack: the blob being read back */
  mp_view view;
  uint32_t rec;
} mp_cursor;

static int set_error(sqlite3_vtab *vt, char *msg) {
  sqlite3_free(vt->zErrMsg);
  vt->zErrMsg = msg;
  return msg ? SQLITE_ERROR : SQLITE_NOMEM;
}

/* An unqualified source of a non-temp model lives in the model's schema. */
static int default_schema(mp_model *m, const char *schema) {
  if (m->source_schema || mp_stricmp(schema, "temp") == 0) return SQLITE_OK;
  char *sql = sqlite3_mprintf("\"%w\".\"%w\"", schema, m->source);
  m->source_schema = mp_strdup(schema);
  if (!sql || !m->source_schema) {
    sqlite3_free(sql);
    return SQLITE_NOMEM;
  }
  sqlite3_free(m->source_sql);
  m->source_sql = sql;
  return SQLITE_OK;
}

static int vt_init(sqlite3 *db, void *aux, int argc, const char *const *argv,
                   sqlite3_vtab **out, char **err, int create) {
  mp_model *m = NULL;
  int rc = mp_decl_parse(argv[2], argc, argv, &m, err);
  if (rc == SQLITE_OK) rc = default_schema(m, argv[1]);
  if (rc == SQLITE_OK && create) rc = mp_source_check(db, argv[1], m, err);
  char *schema_sql = rc == SQLITE_OK ? mp_decl_schema_sql(m) : NULL;
  if (rc == SQLITE_OK && !schema_sql) rc = SQLITE_NOMEM;
  if (rc == SQLITE_OK) rc = sqlite3_declare_vtab(db, schema_sql);
  sqlite3_free(schema_sql);
  /* It reads another table by name: never from a view or trigger. */
  if (rc == SQLITE_OK) rc = sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  mp_vtab *vt = rc == SQLITE_OK ? sqlite3_malloc(sizeof *vt) : NULL;
  if (rc == SQLITE_OK && !vt) rc = SQLITE_NOMEM;
  if (rc == SQLITE_OK) {
    memset(vt, 0, sizeof *vt);
    vt->db = db;
    vt->reg = aux;
    vt->m = m;
    vt->schema = mp_strdup(argv[1]);
    rc = vt->schema ? mp_registry_attach(aux, argv[1], m) : SQLITE_NOMEM;
    if (rc != SQLITE_OK) {
      sqlite3_free(vt->schema);
      sqlite3_free(vt);
    }
  }
  if (rc != SQLITE_OK) {
    mp_model_unref(m);
    return rc;
  }
  *out = &vt->base;
  return SQLITE_OK;
}

static int vt_create(sqlite3 *db, void *aux, int argc, const char *const *argv,
                     sqlite3_vtab **out, char **err) {
  return vt_init(db, aux, argc, argv, out, err, 1);
}

static int vt_connect(sqlite3 *db, void *aux, int argc,
                      const char *const *argv, sqlite3_vtab **out, char **err) {
  return vt_init(db, aux, argc, argv, out, err, 0);
}

static void vt_free(mp_vtab *vt, int destroyed) {
  mp_source_clear(vt);
  mp_registry_detach(vt->reg, vt->schema, vt->m, destroyed);
  mp_model_unref(vt->m);
  sqlite3_free(vt->schema);
  sqlite3_free(vt);
}

static int vt_disconnect(sqlite3_vtab *p) {
  vt_free((mp_vtab *)p, 0);
  return SQLITE_OK;
}

static int vt_destroy(sqlite3_vtab *p) {
  vt_free((mp_vtab *)p, 1);
  return SQLITE_OK;
}

static int vt_rename(sqlite3_vtab *p, const char *newname) {
  mp_vtab *vt = (mp_vtab *)p;
  mp_registry_rename(vt->reg, vt->schema, vt->m, newname);
  return SQLITE_OK;
}

static int vt_best_index(sqlite3_vtab *p, sqlite3_index_info *info) {
  return mp_plan((mp_vtab *)p, info);
}

static int vt_open(sqlite3_vtab *p, sqlite3_vtab_cursor **out) {
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
  mp_source_release(vt, c->sql, c->stmt);
  c->sql = NULL;
  c->stmt = NULL;
  sqlite3_value_free(c->ublob);
  c->ublob = NULL;
  c->eof = 1;
}

static int vt_close(sqlite3_vtab_cursor *cur) {
  mp_cursor *c = (mp_cursor *)cur;
  cursor_reset(c);
  if (c->packer_ready) mp_packer_free(&c->packer);
  sqlite3_free(c);
  return SQLITE_OK;
}

static int cursor_step(mp_cursor *c) {
  mp_vtab *vt = (mp_vtab *)c->base.pVtab;
  if (c->ublob) {
    c->eof = ++c->rec >= c->view.count;
    return SQLITE_OK;
  }
  /* Re-entering while stepping means the source reads this model back. */
  if (vt->depth > 0)
    return set_error(&vt->base, sqlite3_mprintf(
        "modelpack: %s: source %s reads the model itself (recursion)",
        vt->m->name, vt->m->source));
  vt->depth++;
  int rc = sqlite3_step(c->stmt);
  vt->depth--;
  if (rc == SQLITE_ROW) {
    c->rowno++;
    return SQLITE_OK;
  }
  c->eof = 1;
  if (rc == SQLITE_DONE) return SQLITE_OK;
  /* A packing error already names model, field and row. */
  if (c->packer_ready && c->packer.failed)
    return set_error(&vt->base, sqlite3_mprintf("%s", sqlite3_errmsg(vt->db)));
  return set_error(&vt->base, sqlite3_mprintf("modelpack: %s: reading source %s: %s",
                                              vt->m->name, vt->m->source,
                                              sqlite3_errmsg(vt->db)));
}

static int vt_next(sqlite3_vtab_cursor *cur) {
  return cursor_step((mp_cursor *)cur);
}

static int vt_eof(sqlite3_vtab_cursor *cur) { return ((mp_cursor *)cur)->eof; }

/* Read the mask and mode arguments; returns an error message or NULL. */
static char *read_args(mp_cursor *c, const mp_model *m, int flags,
                       sqlite3_value **argv, int *argi, int *mode) {
  char *err = NULL;
  c->mask = mp_all_fields(m->nfield);
  *mode = 0;
  if (flags & MP_PLAN_MASK) {
    sqlite3_value *v = argv[(*argi)++];
    /* The column is INTEGER: '3' means 3, as it would for a table. */
    if (sqlite3_value_numeric_type(v) == SQLITE_INTEGER)
      mp_mask_check(m, sqlite3_value_int64(v), &c->mask, &err);
    else
      err = sqlite3_mprintf("modelpack: %s: mask must be an integer (see modelpack_mask())", m->name);
    if (err) return err;
  }
  if (flags & MP_PLAN_MODE) {
    const char *s = (const char *)sqlite3_value_text(argv[(*argi)++]);
    if (s && mp_stricmp(s, "fast") == 0) *mode = 1;
    else if (s && mp_stricmp(s, "safe") == 0) *mode = 2;
    else if (!s || mp_stricmp(s, "auto") != 0)
      return sqlite3_mprintf("modelpack: %s: mode must be 'fast', 'safe' or 'auto', not '%s'",
                             m->name, s ? s : "NULL");
  }
  return NULL;
}

static int start_unpack(mp_cursor *c, sqlite3_value *blob) {
  mp_vtab *vt = (mp_vtab *)c->base.pVtab;
  char *err = NULL;
  c->ublob = sqlite3_value_dup(blob);
  if (!c->ublob) return SQLITE_NOMEM;
  if (mp_blob_open(vt->m, c->ublob, &c->view, &err) != SQLITE_OK)
    return set_error(&vt->base, err);
  c->mask = c->view.mask;
  c->safe = (c->view.flags & MP_FLAG_SAFE) != 0;
  c->rec = 0;
  c->eof = 0;
  return SQLITE_OK;
}

static int prepare_packer(mp_cursor *c, const mp_model *m) {
  if (c->packer_ready && c->packer.mask == c->mask && c->packer.safe == c->safe) {
    mp_packer_reset(&c->packer);
    return SQLITE_OK;
  }
  if (c->packer_ready) mp_packer_free(&c->packer);
  c->packer_ready = 0;
  int rc = mp_packer_init(&c->packer, m, c->mask, c->safe, 1);
  c->packer_ready = rc == SQLITE_OK;
  return rc;
}

static int start_source(mp_cursor *c, int flags, const char *idx,
                        sqlite3_value **argv, int argi, int argc) {
  mp_vtab *vt = (mp_vtab *)c->base.pVtab;
  const mp_model *m = vt->m;
  const char *clause;
  uint64_t extra = mp_plan_fields(idx, &clause);
  c->reads_packed = !(flags & MP_PLAN_NOPACK);
  c->sorted = (flags & MP_PLAN_SORTED) != 0;
  uint64_t packed = c->reads_packed ? c->mask : 0;
  int rc = mp_source_stmt(vt, packed, extra, clause, &c->stmt, &c->sql);
  if (rc != SQLITE_OK) return rc;
  /* Column 0 is the packed record when packing; then the fields read. */
  int col = c->reads_packed, bind = 1;
  for (int i = 0; i < m->nfield; i++) c->colmap[i] = (extra >> i) & 1 ? col++ : -1;
  if (c->reads_packed) {
    rc = prepare_packer(c, m);
    if (rc == SQLITE_OK)
      rc = sqlite3_bind_pointer(c->stmt, bind++, &c->packer, MP_PACKER_PTR, NULL);
  }
  for (int k = argi; k < argc && rc == SQLITE_OK; k++)
    rc = sqlite3_bind_value(c->stmt, bind++, argv[k]);
  if (rc != SQLITE_OK) return rc;
  c->rowno = 0;
  c->eof = 0;
  return cursor_step(c);
}

static int vt_filter(sqlite3_vtab_cursor *cur, int flags, const char *idx,
                     int argc, sqlite3_value **argv) {
  mp_cursor *c = (mp_cursor *)cur;
  mp_vtab *vt = (mp_vtab *)cur->pVtab;
  int argi = 0, mode;
  cursor_reset(c);
  char *err = read_args(c, vt->m, flags, argv, &argi, &mode);
  if (err) return set_error(&vt->base, err);
  if (flags & MP_PLAN_UNPACK) return start_unpack(c, argv[argi]);
  mp_entry snap = {0};
  snap.hooks = c->snap_hooks;
  snap.setattr = c->snap_setattr;
  c->safe = mode == 2 || (mode == 0 && mp_auto_is_safe(vt->m, &snap, c->mask));
  return start_source(c, flags, idx, argv, argi, argc);
}

/*
 * Without a sorter the source statement packs each row just before
 * returning it, so the packer's buffer holds this row: copy from there.
 * A sorting statement packs ahead of time, so take its stored column.
 * Either way copy the bytes (result_value would reallocate per row).
 */
static void column_packed(mp_cursor *c, sqlite3_context *ctx) {
  const void *blob;
  size_t len;
  if (c->sorted) {
    sqlite3_value *v = sqlite3_column_value(c->stmt, 0);
    blob = sqlite3_value_blob(v);
    len = (size_t)sqlite3_value_bytes(v);
  } else {
    blob = c->packer.buf;
    len = c->packer.blob_len;
  }
  sqlite3_result_blob64(ctx, blob, len, SQLITE_TRANSIENT);
}

static int vt_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int i) {
  mp_cursor *c = (mp_cursor *)cur;
  const mp_model *m = ((mp_vtab *)cur->pVtab)->m;
  if (i < m->nfield) {
    if (c->ublob) mp_result_field(ctx, m, &c->view, c->rec, i);
    else if (c->colmap[i] >= 0)
      sqlite3_result_value(ctx, sqlite3_column_value(c->stmt, c->colmap[i]));
    return SQLITE_OK;
  }
  switch (i - m->nfield) {
    case MP_COL_PACKED:
      if (!c->ublob && c->reads_packed) column_packed(c, ctx);
      return SQLITE_OK;
    case MP_COL_MASK:
      sqlite3_result_int64(ctx, (sqlite3_int64)c->mask);
      return SQLITE_OK;
    case MP_COL_MODE:
      sqlite3_result_text(ctx, c->safe ? "safe" : "fast", -1, SQLITE_STATIC);
      return SQLITE_OK;
    default:
      return SQLITE_OK;
  }
}

static int vt_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  mp_cursor *c = (mp_cursor *)cur;
  const mp_model *m = ((mp_vtab *)cur->pVtab)->m;
  int pk = m->pk;
  if (m->fields[pk].type != MP_INTEGER) *rowid = c->ublob ? c->rec : c->rowno;
  else if (c->ublob) *rowid = mp_get_int64(&c->view, c->rec, pk);
  else *rowid = sqlite3_column_int64(c->stmt, c->colmap[pk]);
  return SQLITE_OK;
}

static sqlite3_module model_module = {
    .iVersion = 1,
    .xCreate = vt_create,
    .xConnect = vt_connect,
    .xBestIndex = vt_best_index,
    .xDisconnect = vt_disconnect,
    .xDestroy = vt_destroy,
    .xOpen = vt_open,
    .xClose = vt_close,
    .xFilter = vt_filter,
    .xNext = vt_next,
    .xEof = vt_eof,
    .xColumn = vt_column,
    .xRowid = vt_rowid,
    .xRename = vt_rename,
};

int mp_register_vtab(sqlite3 *db, mp_registry *r) {
  return sqlite3_create_module_v2(db, "modelpack", &model_module, r,
                                  mp_registry_free);
}
