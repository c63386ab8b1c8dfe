/*
 * stored.c -- materialize = stored: every source row kept pre-packed.
 *
 * A stored model owns a shadow table <model>_packed(<pk>, mp_record,
 * mp_error) and three triggers on its source that keep it current.  The
 * triggers call modelpack_record(spec, values...) and
 * modelpack_record_error(spec, values...): pure functions that rebuild the
 * model from `spec` (a compact description written into the trigger), so
 * they need no lookup by name and are safe in a schema (innocuous).
 * A record is stored safe-packed when its values pass safe packing, and
 * fast-packed otherwise, with the reason in mp_error.
 */
#include <stdlib.h>
#include <string.h>

#include "mp_internal.h"
#include "mp_util.h"

/* ---- spec: "<nfield> <pk> <len>:<model> then <type><notnull><len>:<name>..." ---- */

static char *spec_of(const mp_model *m) {
  mp_str s = {0};
  mp_str_printf(&s, "%d %d %d:%s", m->nfield, m->pk, (int)strlen(m->name), m->name);
  for (int i = 0; i < m->nfield; i++)
    mp_str_printf(&s, " %d%d%d:%s", m->fields[i].type, m->fields[i].notnull,
                  (int)strlen(m->fields[i].name), m->fields[i].name);
  return mp_str_finish(&s);
}

/* "<len>:<text>" at *z into a new string; NULL if malformed. */
static char *take_counted(const char **z) {
  char *end;
  long n = strtol(*z, &end, 10);
  if (end == *z || *end != ':' || n < 0 || (size_t)n > strlen(end + 1)) return NULL;
  char *out = sqlite3_mprintf("%.*s", (int)n, end + 1);
  *z = end + 1 + n;
  return out;
}

static mp_model *model_from_spec(const char *z) {
  char *end;
  int n = (int)strtol(z, &end, 10), pk = (int)strtol(end, &end, 10);
  if (n < 1 || n > MP_MAX_FIELDS || pk < 0 || pk >= n || *end != ' ') return NULL;
  z = end + 1;
  mp_model *m = mp_model_new(take_counted(&z), n);
  if (!m) return NULL;
  m->pk = pk;
  for (int i = 0; i < n; i++) {
    mp_field *f = &m->fields[i];
    if (z[0] != ' ' || z[1] < '1' || z[1] > '5' || (z[2] != '0' && z[2] != '1')) break;
    f->type = (unsigned char)(z[1] - '0');
    f->notnull = z[2] == '1';
    z += 3;
    f->name = take_counted(&z);
    if (!f->name) break;
    f->column = mp_strdup(f->name);
    m->nfield++;
  }
  if (m->nfield != n || *z || mp_model_finish(m) != SQLITE_OK) {
    mp_model_unref(m);
    return NULL;
  }
  return m;
}

static void spec_release(void *p) { mp_model_unref(p); }

static mp_model *spec_arg(sqlite3_context *ctx, sqlite3_value *v) {
  mp_model *m = sqlite3_get_auxdata(ctx, 0);
  if (m) {
    m->refs++;
    return m;
  }
  const char *z = (const char *)sqlite3_value_text(v);
  m = z ? model_from_spec(z) : NULL;
  if (!m) {
    sqlite3_result_error(ctx, "modelpack: malformed model spec in a stored-model trigger", -1);
    return NULL;
  }
  /* The caller holds its own reference: SQLite may drop the cache at once. */
  m->refs++;
  sqlite3_set_auxdata(ctx, 0, m, spec_release);
  return m;
}

/* Pack the row in full, safe when it can be; *err says why it could not. */
static int pack_record(mp_model *m, sqlite3_value **vals, mp_packer *p, char **err) {
  uint64_t all = mp_all_fields(m->nfield);
  int rc = mp_packer_init(p, m, all, 1, 1, 0);
  if (rc == SQLITE_OK) rc = mp_pack_values(p, vals, err);
  if (rc != SQLITE_CONSTRAINT) return rc;
  mp_packer_free(p);
  rc = mp_packer_init(p, m, all, 0, 1, 0);
  if (rc == SQLITE_OK) {
    char *ignored = NULL;
    rc = mp_pack_values(p, vals, &ignored);
    sqlite3_free(ignored);
  }
  return rc;
}

static void record_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv, int want_error) {
  mp_model *m = spec_arg(ctx, argv[0]);
  mp_packer p;
  char *err = NULL;
  if (!m) return;
  if (argc - 1 != m->nfield) {
    sqlite3_result_error(ctx, "modelpack: stored-model trigger passes the wrong number of values", -1);
    mp_model_unref(m);
    return;
  }
  memset(&p, 0, sizeof p);
  int rc = pack_record(m, argv + 1, &p, &err);
  if (rc != SQLITE_OK) {
    mp_fn_error(ctx, rc, err);
  } else if (want_error) {
    if (err) sqlite3_result_text(ctx, err, -1, sqlite3_free);
    err = NULL;
  } else {
    size_t len;
    const uint8_t *blob = mp_packer_blob(&p, &len);
    sqlite3_result_blob64(ctx, blob, len, SQLITE_TRANSIENT);
  }
  sqlite3_free(err);
  mp_packer_free(&p);
  mp_model_unref(m);
}

static void fn_record(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  record_fn(ctx, argc, argv, 0);
}

static void fn_record_error(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  record_fn(ctx, argc, argv, 1);
}

/* ---- shadow table and triggers ---- */

static int exec(sqlite3 *db, char *sql, char **err) {
  if (!sql) return SQLITE_NOMEM;
  int rc = sqlite3_exec(db, sql, NULL, NULL, err);
  sqlite3_free(sql);
  return rc;
}

/* "modelpack_record(spec, <prefix>."c1", ...)" for one row alias. */
static void record_call(mp_str *s, const char *fn, const char *spec, const mp_model *m,
                        const char *row) {
  mp_str_printf(s, "%s(%Q", fn, spec);
  for (int i = 0; i < m->nfield; i++) mp_str_printf(s, ", %s.\"%w\"", row, m->fields[i].column);
  mp_str_cat(s, ")");
}

/* INSERT OR REPLACE INTO shadow SELECT/VALUES for row alias `row`. */
static void store_row(mp_str *s, const char *spec, const mp_model *m, const char *row) {
  mp_str_printf(s, "INSERT OR REPLACE INTO \"%w_packed\" VALUES(%s.\"%w\", ", m->name, row,
                m->fields[m->pk].column);
  record_call(s, "modelpack_record", spec, m, row);
  mp_str_cat(s, ", ");
  record_call(s, "modelpack_record_error", spec, m, row);
  mp_str_cat(s, ");");
}

static char *trigger_sql(const mp_model *m, const char *schema, const char *spec,
                         const char *event) {
  int temp = mp_stricmp(schema, "temp") == 0;
  const char *pk = m->fields[m->pk].column;
  mp_str s = {0};
  /* A temp trigger may watch another schema's table; others only their own. */
  if (temp)
    mp_str_printf(&s, "CREATE TEMP TRIGGER \"%w_mp_%s\" AFTER %s ON %s BEGIN ", m->name, event,
                  event, m->source_sql);
  else
    mp_str_printf(&s, "CREATE TRIGGER \"%w\".\"%w_mp_%s\" AFTER %s ON \"%w\" BEGIN ", schema,
                  m->name, event, event, m->source);
  if (strcmp(event, "insert") != 0)
    mp_str_printf(&s, "DELETE FROM \"%w_packed\" WHERE \"%w\" = old.\"%w\"; ", m->name, pk, pk);
  if (strcmp(event, "delete") != 0) store_row(&s, spec, m, "new");
  mp_str_cat(&s, " END");
  return mp_str_finish(&s);
}

static int source_is_table(sqlite3 *db, const mp_model *m, const char *schema, char **err) {
  const char *src_schema = m->source_schema ? m->source_schema : "main";
  if (mp_stricmp(schema, "temp") != 0 && mp_stricmp(src_schema, schema) != 0) {
    *err = sqlite3_mprintf("modelpack: %s: materialize = stored needs the source in the model's "
                           "schema (%s), or a temp model", m->name, schema);
    return SQLITE_ERROR;
  }
  char *sql = sqlite3_mprintf("SELECT type FROM \"%w\".sqlite_schema WHERE name = %Q COLLATE NOCASE",
                              src_schema, m->source);
  sqlite3_stmt *st = NULL;
  int rc = sql ? sqlite3_prepare_v2(db, sql, -1, &st, NULL) : SQLITE_NOMEM;
  sqlite3_free(sql);
  int is_table = rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
                 mp_stricmp((const char *)sqlite3_column_text(st, 0), "table") == 0;
  sqlite3_finalize(st);
  if (rc != SQLITE_OK) return rc;
  if (is_table) return SQLITE_OK;
  *err = sqlite3_mprintf("modelpack: %s: materialize = stored needs the source %s to be a table "
                         "(triggers keep the records current)", m->name, m->source);
  return SQLITE_ERROR;
}

int mp_stored_rebuild(sqlite3 *db, const mp_model *m, sqlite3_int64 *rows, char **err) {
  char *spec = spec_of(m);
  mp_str s = {0};
  if (!spec) return SQLITE_NOMEM;
  mp_str_printf(&s, "DELETE FROM %s; INSERT INTO %s SELECT s.\"%w\", ", m->shadow_sql,
                m->shadow_sql, m->fields[m->pk].column);
  record_call(&s, "modelpack_record", spec, m, "s");
  mp_str_cat(&s, ", ");
  record_call(&s, "modelpack_record_error", spec, m, "s");
  mp_str_printf(&s, " FROM %s AS s", m->source_sql);
  sqlite3_free(spec);
  int rc = exec(db, mp_str_finish(&s), err);
  if (rc == SQLITE_OK && rows) *rows = sqlite3_changes64(db);
  return rc;
}

int mp_stored_create(sqlite3 *db, const char *schema, const mp_model *m, char **err) {
  static const char *const events[] = {"insert", "update", "delete"};
  const mp_field *pk = &m->fields[m->pk];
  int rc = source_is_table(db, m, schema, err);
  if (rc != SQLITE_OK) return rc;
  rc = exec(db, sqlite3_mprintf("CREATE TABLE %s(\"%w\" %s PRIMARY KEY, mp_record BLOB NOT NULL, "
                                "mp_error TEXT)", m->shadow_sql, pk->column,
                                pk->type == MP_INTEGER ? "INTEGER" : ""), err);
  char *spec = rc == SQLITE_OK ? spec_of(m) : NULL;
  if (rc == SQLITE_OK && !spec) rc = SQLITE_NOMEM;
  for (int i = 0; i < 3 && rc == SQLITE_OK; i++)
    rc = exec(db, trigger_sql(m, schema, spec, events[i]), err);
  sqlite3_free(spec);
  if (rc == SQLITE_OK) rc = mp_stored_rebuild(db, m, NULL, err);
  return rc;
}

void mp_stored_drop(sqlite3 *db, const char *schema, const mp_model *m) {
  static const char *const events[] = {"insert", "update", "delete"};
  for (int i = 0; i < 3; i++)
    exec(db, sqlite3_mprintf("DROP TRIGGER IF EXISTS \"%w\".\"%w_mp_%s\"", schema, m->name,
                             events[i]), NULL);
  exec(db, sqlite3_mprintf("DROP TABLE IF EXISTS %s", m->shadow_sql), NULL);
}

int mp_stored_shadow_name(const char *suffix) { return sqlite3_stricmp(suffix, "packed") == 0; }

static void fn_rebuild(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  mp_model *m = mp_fn_model(ctx, argv[0], NULL);
  sqlite3_int64 rows = 0;
  char *err = NULL;
  if (!m) return;
  if (!m->stored) {
    err = sqlite3_mprintf("modelpack: %s: not a stored model (materialize = stored)", m->name);
    mp_fn_error(ctx, SQLITE_ERROR, err);
    return;
  }
  int rc = mp_stored_rebuild(sqlite3_context_db_handle(ctx), m, &rows, &err);
  if (rc != SQLITE_OK) {
    char *msg = sqlite3_mprintf("modelpack: %s: rebuild failed: %s", m->name, err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    mp_fn_error(ctx, rc, msg);
    return;
  }
  sqlite3_result_int64(ctx, rows);
}

int mp_register_stored(sqlite3 *db, mp_registry *r) {
  /* Pure functions of their arguments: usable from triggers in any schema. */
  int pure = SQLITE_UTF8 | SQLITE_INNOCUOUS | SQLITE_DETERMINISTIC;
  int rc = sqlite3_create_function(db, "modelpack_record", -1, pure, NULL, fn_record, NULL, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_function(db, "modelpack_record_error", -1, pure, NULL, fn_record_error,
                                 NULL, NULL);
  /* Writes the shadow table: never from a view or trigger. */
  if (rc == SQLITE_OK)
    rc = sqlite3_create_function(db, "modelpack_rebuild", 1, SQLITE_UTF8 | SQLITE_DIRECTONLY, r,
                                 fn_rebuild, NULL, NULL);
  return rc;
}
