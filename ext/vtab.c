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

/* An unqualified source of a non-temp model lives in the model's schema. */
static int default_schema(mp_model *m, const char *schema) {
  if (m->stored) {
    m->shadow_sql = sqlite3_mprintf("\"%w\".\"%w_packed\"", schema, m->name);
    if (!m->shadow_sql) return SQLITE_NOMEM;
  }
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
  if (rc == SQLITE_OK && create && m->stored) rc = mp_stored_create(db, argv[1], m, err);
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
  if (destroyed && vt->m->stored) mp_stored_drop(vt->db, vt->schema, vt->m);
  mp_stored_close(vt->m); /* before the connection can close */
  mp_cache_clear(&vt->cache);
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
  /* The shadow table and triggers are named after the model. */
  if (vt->m->stored) {
    sqlite3_free(p->zErrMsg);
    p->zErrMsg = sqlite3_mprintf("modelpack: %s: a stored model cannot be renamed "
                                 "(drop it and declare it again)", vt->m->name);
    return SQLITE_ERROR;
  }
  mp_registry_rename(vt->reg, vt->schema, vt->m, newname);
  return SQLITE_OK;
}

static int vt_best_index(sqlite3_vtab *p, sqlite3_index_info *info) {
  return mp_plan((mp_vtab *)p, info);
}

static sqlite3_module model_module = {
    .iVersion = 3,
    .xCreate = vt_create,
    .xConnect = vt_connect,
    .xBestIndex = vt_best_index,
    .xDisconnect = vt_disconnect,
    .xDestroy = vt_destroy,
    .xOpen = mp_cursor_open,
    .xClose = mp_cursor_close,
    .xFilter = mp_cursor_filter,
    .xNext = mp_cursor_next,
    .xEof = mp_cursor_eof,
    .xColumn = mp_cursor_column,
    .xRowid = mp_cursor_rowid,
    .xRename = vt_rename,
    .xShadowName = mp_stored_shadow_name,
};

int mp_register_vtab(sqlite3 *db, mp_registry *r) {
  /* Removing the module also runs its destructor on the registry. */
  if (!r) return sqlite3_create_module(db, "modelpack", NULL, NULL);
  return sqlite3_create_module_v2(db, "modelpack", &model_module, r,
                                  mp_registry_free);
}
