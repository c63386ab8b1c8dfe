/*
 * stored.c -- materialize = stored: every source row kept pre-packed.
 *
 * A stored model owns a shadow table <model>_packed(<pk>, mp_record,
 * mp_error) and three triggers on its source that keep it current by
 * calling modelpack_store(model, values...) and modelpack_unstore(model,
 * pk).  Those functions write the shadow table with statements of their
 * own, run while the trigger executes: that is what lets defensive mode
 * (which makes shadow tables read-only to SQL compiled outside a running
 * statement) protect the table without breaking writes to the source.
 * A record is stored safe-packed where its values pass safe packing and
 * fast-packed where not; mp_unsafe has a bit for each field that did not
 * pass and mp_error says why, so a safe read that loads none of those
 * fields still succeeds.
 */
#include <string.h>

#include "mp_internal.h"
#include "mp_util.h"

static int exec(sqlite3 *db, char *sql, char **err) {
  if (!sql) return SQLITE_NOMEM;
  int rc = sqlite3_exec(db, sql, NULL, NULL, err);
  sqlite3_free(sql);
  return rc;
}

/* One of the model's two write statements, prepared on first use. */
static int write_stmt(sqlite3 *db, mp_model *m, int del, sqlite3_stmt **out) {
  sqlite3_stmt **slot = del ? &m->unstore_stmt : &m->store_stmt;
  if (!*slot) {
    char *sql = del ? sqlite3_mprintf("DELETE FROM %s WHERE \"%w\" = ?", m->shadow_sql,
                                      m->fields[m->pk].column)
                    : sqlite3_mprintf("INSERT OR REPLACE INTO %s VALUES(?, ?, ?, ?)", m->shadow_sql);
    int rc = sql ? sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL)
                 : SQLITE_NOMEM;
    sqlite3_free(sql);
    if (rc != SQLITE_OK) return rc;
  }
  *out = *slot;
  return SQLITE_OK;
}

static int run(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Store one row given as the values of every field, in field order:
 * safe-packed where the values pass, fast where not, and which did not. */
static int store_row(sqlite3 *db, mp_model *m, sqlite3_value **vals) {
  mp_packer p;
  sqlite3_stmt *st;
  char *err = NULL;
  memset(&p, 0, sizeof p);
  int rc = write_stmt(db, m, 0, &st);
  if (rc == SQLITE_OK) rc = mp_packer_init(&p, m, mp_all_fields(m->nfield), 1, 1, 0);
  p.collect = 1;
  if (rc == SQLITE_OK) rc = mp_pack_values(&p, vals, &err);
  if (rc == SQLITE_OK) {
    size_t len;
    const uint8_t *blob = mp_packer_blob(&p, &len);
    sqlite3_bind_value(st, 1, vals[m->pk]);
    sqlite3_bind_blob64(st, 2, blob, len, SQLITE_STATIC);
    if (p.why) sqlite3_bind_text(st, 3, p.why, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)p.unsafe);
    rc = run(st);
  }
  sqlite3_free(err);
  mp_packer_free(&p);
  return rc;
}

static int unstore_row(sqlite3 *db, mp_model *m, sqlite3_value *pk) {
  sqlite3_stmt *st;
  int rc = write_stmt(db, m, 1, &st);
  if (rc == SQLITE_OK) {
    sqlite3_bind_value(st, 1, pk);
    rc = run(st);
  }
  return rc;
}

/* The source row with this key, ready to step (prepared once per model). */
static int row_stmt(sqlite3 *db, mp_model *m, sqlite3_value *pk, sqlite3_stmt **out) {
  if (!m->row_stmt) {
    char *clause = sqlite3_mprintf("WHERE s.\"%w\" = ?1", m->fields[m->pk].column);
    char *sql = clause ? mp_source_sql(m, MP_READ_COLS, mp_all_fields(m->nfield), 0, clause)
                       : NULL;
    int rc = sql ? sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &m->row_stmt, NULL)
                 : SQLITE_NOMEM;
    sqlite3_free(clause);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) return rc;
  }
  *out = m->row_stmt;
  return sqlite3_bind_value(m->row_stmt, 1, pk);
}

/*
 * Make the stored record of one key match the source: packed from the
 * source's row when there is one, removed when there is none.  The trigger
 * functions pass values, but only the key is used: whoever calls them --
 * our triggers, or a hostile trigger in a database file, or SQL typed by
 * hand -- can only bring a record in line with its row, never forge one.
 */
static int sync_row(sqlite3 *db, mp_model *m, sqlite3_value *pk) {
  sqlite3_value *vals[MP_MAX_FIELDS];
  sqlite3_stmt *st = NULL;
  int rc = row_stmt(db, m, pk, &st);
  if (rc != SQLITE_OK) return rc;
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    for (int i = 0; i < m->nfield; i++) vals[i] = sqlite3_column_value(st, i);
    rc = store_row(db, m, vals);
  } else if (step == SQLITE_DONE) {
    rc = unstore_row(db, m, pk);
  } else {
    rc = step;
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

static void write_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv, int del) {
  mp_model *m = mp_fn_model(ctx, argv[0], NULL);
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  if (!m) return;
  if (!m->stored || argc - 1 != (del ? 1 : m->nfield)) {
    char *msg = sqlite3_mprintf("modelpack: %s: %s is for the triggers of stored models", m->name,
                                del ? "modelpack_unstore" : "modelpack_store");
    mp_fn_error(ctx, SQLITE_ERROR, msg);
    return;
  }
  int rc = sync_row(db, m, del ? argv[1] : argv[1 + m->pk]);
  if ((rc & 0xff) == SQLITE_NOMEM) {
    /* Not a database error: sqlite3_errmsg would describe an older call. */
    sqlite3_result_error_nomem(ctx);
  } else if (rc != SQLITE_OK) {
    char *msg = sqlite3_mprintf("modelpack: %s: updating stored records: %s", m->name,
                                sqlite3_errmsg(db));
    mp_fn_error(ctx, rc, msg);
  }
}

static void fn_store(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  write_fn(ctx, argc, argv, 0);
}

static void fn_unstore(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  write_fn(ctx, argc, argv, 1);
}

/* ---- shadow table and triggers ---- */

static void call(mp_str *s, const char *fn, const char *schema, const mp_model *m,
                 const char *row, int all, const char *when) {
  mp_str_printf(s, "SELECT %s('%q.%q'", fn, schema, m->name);
  for (int i = 0; i < m->nfield; i++)
    if (all || i == m->pk) mp_str_printf(s, ", %s.\"%w\"", row, m->fields[i].column);
  mp_str_printf(s, ")%s;", when);
}

static char *trigger_sql(const mp_model *m, const char *schema, const char *event) {
  mp_str s = {0};
  /* A temp trigger may watch another schema's table; others only their own. */
  if (mp_stricmp(schema, "temp") == 0)
    mp_str_printf(&s, "CREATE TEMP TRIGGER \"%w_mp_%s\" AFTER %s ON %s BEGIN ", m->name, event,
                  event, m->source_sql);
  else
    mp_str_printf(&s, "CREATE TRIGGER \"%w\".\"%w_mp_%s\" AFTER %s ON \"%w\" BEGIN ", schema,
                  m->name, event, event, m->source);
  /* Both functions sync a key from the source (sync_row), so an UPDATE
   * that keeps the key needs only the second call. */
  char *key_moved = NULL;
  if (strcmp(event, "update") == 0) {
    const char *pk = m->fields[m->pk].column;
    key_moved = sqlite3_mprintf(" WHERE old.\"%w\" IS NOT new.\"%w\"", pk, pk);
    if (!key_moved) {
      sqlite3_free(mp_str_finish(&s));
      return NULL;
    }
  }
  if (strcmp(event, "insert") != 0)
    call(&s, "modelpack_unstore", schema, m, "old", 0, key_moved ? key_moved : "");
  if (strcmp(event, "delete") != 0) call(&s, "modelpack_store", schema, m, "new", 1, "");
  sqlite3_free(key_moved);
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

int mp_stored_rebuild(sqlite3 *db, mp_model *m, sqlite3_int64 *rows, char **err) {
  sqlite3_value *vals[MP_MAX_FIELDS];
  sqlite3_int64 n = 0;
  int rc = exec(db, sqlite3_mprintf("DELETE FROM %s", m->shadow_sql), err);
  char *sql = rc == SQLITE_OK ? mp_source_sql(m, MP_READ_COLS, mp_all_fields(m->nfield), 0, "")
                              : NULL;
  sqlite3_stmt *st = NULL;
  if (rc == SQLITE_OK) rc = sql ? sqlite3_prepare_v2(db, sql, -1, &st, NULL) : SQLITE_NOMEM;
  sqlite3_free(sql);
  while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    for (int i = 0; i < m->nfield; i++) vals[i] = sqlite3_column_value(st, i);
    rc = store_row(db, m, vals);
    n++;
  }
  if (rc == SQLITE_OK) rc = sqlite3_finalize(st);
  else sqlite3_finalize(st);
  /* A memory failure is reported as such, not as the last error text. */
  if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_NOMEM && err && !*err)
    *err = sqlite3_mprintf("%s", sqlite3_errmsg(db));
  if (rows) *rows = n;
  return rc;
}

int mp_stored_create(sqlite3 *db, const char *schema, mp_model *m, char **err) {
  static const char *const events[] = {"insert", "update", "delete"};
  const mp_field *pk = &m->fields[m->pk];
  int rc = source_is_table(db, m, schema, err);
  if (rc != SQLITE_OK) return rc;
  rc = exec(db, sqlite3_mprintf("CREATE TABLE %s(\"%w\" %s PRIMARY KEY, mp_record BLOB NOT NULL, "
                                "mp_error TEXT, mp_unsafe INTEGER NOT NULL)", m->shadow_sql, pk->column,
                                pk->type == MP_INTEGER ? "INTEGER" : ""), err);
  for (int i = 0; i < 3 && rc == SQLITE_OK; i++)
    rc = exec(db, trigger_sql(m, schema, events[i]), err);
  if (rc == SQLITE_OK) rc = mp_stored_rebuild(db, m, NULL, err);
  return rc;
}

void mp_stored_close(mp_model *m) {
  sqlite3_finalize(m->store_stmt);
  sqlite3_finalize(m->unstore_stmt);
  sqlite3_finalize(m->state_stmt);
  sqlite3_finalize(m->row_stmt);
  m->store_stmt = m->unstore_stmt = m->state_stmt = m->row_stmt = NULL;
}

void mp_stored_drop(sqlite3 *db, const char *schema, mp_model *m) {
  static const char *const events[] = {"insert", "update", "delete"};
  mp_stored_close(m);
  for (int i = 0; i < 3; i++)
    exec(db, sqlite3_mprintf("DROP TRIGGER IF EXISTS \"%w\".\"%w_mp_%s\"", schema, m->name,
                             events[i]), NULL);
  exec(db, sqlite3_mprintf("DROP TABLE IF EXISTS %s", m->shadow_sql), NULL);
}

int mp_stored_shadow_name(const char *suffix) { return sqlite3_stricmp(suffix, "packed") == 0; }

/*
 * SAVEPOINT, ROLLBACK TO and RELEASE for the rebuild, prepared before it
 * starts: once a rebuild has failed for lack of memory, preparing the
 * rollback could fail the same way and leave the partial table.
 */
static int savepoint_prepare(sqlite3 *db, sqlite3_stmt **sp) {
  static const char *const sql[3] = {"SAVEPOINT modelpack_rebuild",
                                     "ROLLBACK TO modelpack_rebuild",
                                     "RELEASE modelpack_rebuild"};
  for (int i = 0; i < 3; i++) {
    int rc = sqlite3_prepare_v2(db, sql[i], -1, &sp[i], NULL);
    if (rc != SQLITE_OK) return rc;
  }
  return SQLITE_OK;
}

static void fn_rebuild(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  mp_entry *e = NULL;
  mp_model *m = mp_fn_model(ctx, argv[0], &e);
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  sqlite3_int64 rows = 0;
  char *err = NULL;
  if (!m) return;
  if (!m->stored) {
    err = sqlite3_mprintf("modelpack: %s: not a stored model (materialize = stored)", m->name);
    mp_fn_error(ctx, SQLITE_ERROR, err);
    return;
  }
  /* Rebuilt records nobody keeps current would be wrong by the next write. */
  int state = mp_source_state(db, e->schema, m);
  if (state == MP_SRC_UNKNOWN) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  if (!(state & MP_SRC_TRIGGERS)) {
    err = sqlite3_mprintf("modelpack: %s: the triggers that keep its records current are not "
                          "on %s any more (the source was dropped, renamed or replaced): drop "
                          "the model and declare it again", m->name, m->source);
    mp_fn_error(ctx, SQLITE_ERROR, err);
    return;
  }
  /*
   * The DELETE and the inserts are statements of their own: from a plain
   * SELECT nothing else would make them one transaction, and a failure
   * half-way would leave (and commit) a partial shadow table.  SQLite
   * refuses a savepoint while a writing statement runs; that statement's
   * own journal then undoes ours with it if it fails.
   */
  sqlite3_stmt *sp[3] = {NULL, NULL, NULL};
  int rc = savepoint_prepare(db, sp);
  if (rc == SQLITE_OK) {
    int in_sp = run(sp[0]) == SQLITE_OK;
    rc = mp_stored_rebuild(db, m, &rows, &err);
    if (in_sp && rc != SQLITE_OK) run(sp[1]);
    if (in_sp) {
      int rel = run(sp[2]);
      if (rc == SQLITE_OK) rc = rel;
    }
  }
  for (int i = 0; i < 3; i++) sqlite3_finalize(sp[i]);
  if ((rc & 0xff) == SQLITE_NOMEM && !err) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  if (rc != SQLITE_OK) {
    char *msg = sqlite3_mprintf("modelpack: %s: rebuild failed: %s", m->name,
                                err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    mp_fn_error(ctx, rc, msg);
    return;
  }
  sqlite3_result_int64(ctx, rows);
}

/*
 * The trigger functions write: not innocuous, so with trusted_schema=OFF
 * no schema (a hostile one included) can make them run, and stored models
 * then refuse source writes rather than go stale.  Not direct-only either,
 * since their whole purpose is to run from triggers; each only brings one
 * key's record in line with the source (sync_row).  Deterministic (the same
 * row stores the same record) also makes SQLite apply the trusted_schema
 * rule to them in CHECK constraints, which it skips for non-deterministic
 * functions up to 3.49.  Rebuilding rewrites the shadow table on request:
 * never from a view or trigger.
 */
static const mp_fn_def functions[] = {
    {"modelpack_store", -1, SQLITE_DETERMINISTIC, fn_store, 1},
    {"modelpack_unstore", 2, SQLITE_DETERMINISTIC, fn_unstore, 1},
    {"modelpack_rebuild", 1, SQLITE_DIRECTONLY | SQLITE_DETERMINISTIC, fn_rebuild, 1},
};

int mp_register_stored(sqlite3 *db, mp_registry *r) {
  return mp_create_functions(db, functions, sizeof functions / sizeof functions[0], r);
}
