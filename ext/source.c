/*
 * source.c -- the SQL a model table runs, and the check of its source.
 *
 * mp_source_check() verifies at CREATE that the source exists and has every
 * field's column.  mp_source_sql() writes the statement for one read:
 *   MP_READ_FN      SELECT modelpack_pack_row(?, <mask fields>), <fields read>
 *   MP_READ_FN_BATCH  SELECT 1 ... WHERE modelpack_pack_row(?, <mask fields>)
 *                   (batches with no WHERE of their own: a row per full batch)
 *   MP_READ_COLS    SELECT <mask fields>, <fields read>
 *   MP_READ_STORED  SELECT mp_record, mp_error, mp_unsafe, <fields read> FROM <shadow>
 *   (no packing)    SELECT <fields read>
 * always `FROM <source> AS s <clause>`.  Columns are written s."name": a
 * bare "name" that the source lacks would silently become a string literal
 * (SQLite's double-quote fallback).
 */
#include <string.h>

#include "mp_util.h"
#include "mp_vtab.h"

static int has_column(sqlite3_stmt *all, const char *col) {
  for (int i = 0; i < sqlite3_column_count(all); i++)
    if (mp_stricmp(sqlite3_column_name(all, i), col) == 0) return 1;
  return 0;
}

/* Columns outside SELECT * (rowid, hidden columns) need their own probe. */
static int probe_column(sqlite3 *db, const mp_model *m, const char *col) {
  char *sql = sqlite3_mprintf("SELECT s.\"%w\" FROM %s AS s", col, m->source_sql);
  sqlite3_stmt *st = NULL;
  if (!sql) return 0;
  int ok = sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK;
  sqlite3_finalize(st);
  sqlite3_free(sql);
  return ok;
}

int mp_source_check(sqlite3 *db, const char *schema, mp_model *m, char **err) {
  const char *src_schema = m->source_schema ? m->source_schema : schema;
  if (mp_stricmp(m->source, m->name) == 0 && mp_stricmp(src_schema, schema) == 0) {
    *err = sqlite3_mprintf("modelpack: %s: a model cannot be its own source", m->name);
    return SQLITE_ERROR;
  }
  char *sql = sqlite3_mprintf("SELECT * FROM %s", m->source_sql);
  sqlite3_stmt *all = NULL;
  if (!sql) return SQLITE_NOMEM;
  int rc = sqlite3_prepare_v2(db, sql, -1, &all, NULL);
  sqlite3_free(sql);
  if (rc != SQLITE_OK) {
    *err = sqlite3_mprintf("modelpack: %s: cannot read source %s: %s", m->name,
                           m->source, sqlite3_errmsg(db));
    return SQLITE_ERROR;
  }
  for (int i = 0; i < m->nfield && rc == SQLITE_OK; i++) {
    const char *col = m->fields[i].column;
    if (has_column(all, col) || probe_column(db, m, col)) continue;
    *err = sqlite3_mprintf("modelpack: %s: source %s has no column %s (field %s)",
                           m->name, m->source, col, m->fields[i].name);
    rc = SQLITE_ERROR;
  }
  sqlite3_finalize(all);
  return rc;
}

static void column_list(mp_str *s, const mp_model *m, uint64_t set, const char **sep) {
  for (int i = 0; i < m->nfield; i++) {
    if (!((set >> i) & 1)) continue;
    mp_str_printf(s, "%ss.\"%w\"", *sep, m->fields[i].column);
    *sep = ", ";
  }
}

char *mp_source_sql(const mp_model *m, int how, uint64_t packed, uint64_t extra,
                    const char *clause) {
  mp_str s = {0};
  const char *sep = "";
  const char *from = m->source_sql;
  mp_str_cat(&s, "SELECT ");
  if (how == MP_READ_FN_BATCH) {
    /* The packing call is the only WHERE term, so it sees every row. */
    mp_str_cat(&s, "1");
    mp_str_printf(&s, " FROM %s AS s WHERE " MP_PACK_FN "(?", from);
    sep = ", ";
    column_list(&s, m, packed, &sep);
    mp_str_printf(&s, ") %s", clause);
    return mp_str_finish(&s);
  }
  if (how == MP_READ_FN) {
    mp_str_cat(&s, MP_PACK_FN "(?");
    sep = ", ";
    column_list(&s, m, packed, &sep);
    mp_str_cat(&s, ")");
  } else if (how == MP_READ_COLS) {
    column_list(&s, m, packed, &sep);
  } else if (how == MP_READ_STORED) {
    mp_str_cat(&s, "s.mp_record, s.mp_error, s.mp_unsafe");
    sep = ", ";
    from = m->shadow_sql;
  }
  column_list(&s, m, extra, &sep);
  mp_str_printf(&s, " FROM %s AS s %s", from, clause);
  return mp_str_finish(&s);
}

/*
 * What the source is now: MP_SRC_TABLE when it is a plain table (not a view
 * or virtual table), MP_SRC_TRIGGERS when the stored model's three triggers
 * are on it.  Asked on every query, since the schema can change under a
 * connected model at any time (DROP, ALTER ... RENAME, a view in place of
 * the table): a stale answer would serve a view's rows in whole batches or
 * stored records nobody keeps current.  The statement is prepared once per
 * model; SQLite re-prepares it after a schema change.
 */
int mp_source_state(sqlite3 *db, const char *schema, mp_model *m) {
  if (!m->state_stmt) {
    char *sql = sqlite3_mprintf(
        "SELECT coalesce((SELECT type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%%' "
        "FROM \"%w\".sqlite_schema WHERE name = %Q COLLATE NOCASE), 0), "
        "(SELECT count(*) FROM \"%w\".sqlite_schema WHERE type = 'trigger' "
        "AND tbl_name = %Q COLLATE NOCASE "
        "AND name IN ('%q_mp_insert', '%q_mp_update', '%q_mp_delete') COLLATE NOCASE)",
        m->source_schema ? m->source_schema : "main", m->source, schema, m->source, m->name,
        m->name, m->name);
    int rc = sql ? sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &m->state_stmt, NULL)
                 : SQLITE_NOMEM;
    sqlite3_free(sql);
    if (rc != SQLITE_OK) return MP_SRC_UNKNOWN;
  }
  int state = MP_SRC_UNKNOWN;
  if (sqlite3_step(m->state_stmt) == SQLITE_ROW) {
    state = 0;
    if (sqlite3_column_int(m->state_stmt, 0)) state |= MP_SRC_TABLE;
    if (sqlite3_column_int(m->state_stmt, 1) == 3) state |= MP_SRC_TRIGGERS;
  }
  sqlite3_reset(m->state_stmt);
  return state;
}
