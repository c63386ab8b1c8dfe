/*
 * source.c -- the SQL a model table runs against its source.
 *
 * mp_source_check() verifies at CREATE that the source exists and has every
 * field's column.  mp_source_stmt() builds
 *   SELECT <packed fields>, <other fields read> FROM <source> AS s <clause>
 * Columns are always written s."name": a bare "name" that the source lacks
 * would silently become a string literal (SQLite's double-quote fallback).
 * and hands out a prepared statement for it, reusing an idle one from the
 * table's small cache when the same SQL ran before (repeated gets and
 * nested-loop joins then skip the prepare).
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

/* Column 0 packs the mask's fields (the packer arrives as a bound pointer);
 * then every field the query reads by name, in field order. */
static char *build_sql(const mp_model *m, uint64_t packed, uint64_t extra,
                       const char *clause) {
  mp_str s = {0};
  const char *sep = "";
  mp_str_cat(&s, "SELECT ");
  if (packed) {
    mp_str_cat(&s, MP_PACK_FN "(?");
    for (int i = 0; i < m->nfield; i++)
      if ((packed >> i) & 1) mp_str_printf(&s, ", s.\"%w\"", m->fields[i].column);
    mp_str_cat(&s, ")");
    sep = ", ";
  }
  for (int i = 0; i < m->nfield; i++) {
    if (!((extra >> i) & 1)) continue;
    mp_str_printf(&s, "%ss.\"%w\"", sep, m->fields[i].column);
    sep = ", ";
  }
  mp_str_printf(&s, " FROM %s AS s %s", m->source_sql, clause);
  return mp_str_finish(&s);
}

int mp_source_stmt(mp_vtab *vt, uint64_t packed, uint64_t extra,
                   const char *clause, sqlite3_stmt **out, char **sql_out) {
  char *sql = build_sql(vt->m, packed, extra, clause);
  if (!sql) return SQLITE_NOMEM;
  for (int i = 0; i < MP_STMT_CACHE; i++) {
    if (!vt->cache[i].sql || strcmp(vt->cache[i].sql, sql) != 0) continue;
    *out = vt->cache[i].stmt;
    sqlite3_free(vt->cache[i].sql);
    memmove(&vt->cache[i], &vt->cache[i + 1],
            sizeof(mp_cached) * (size_t)(MP_STMT_CACHE - 1 - i));
    vt->cache[MP_STMT_CACHE - 1].sql = NULL;
    vt->cache[MP_STMT_CACHE - 1].stmt = NULL;
    *sql_out = sql;
    return SQLITE_OK;
  }
  int rc = sqlite3_prepare_v3(vt->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
  if (rc != SQLITE_OK) {
    vt->base.zErrMsg = sqlite3_mprintf("modelpack: %s: cannot read source %s: %s",
                                       vt->m->name, vt->m->source,
                                       sqlite3_errmsg(vt->db));
    sqlite3_free(sql);
    return rc;
  }
  *sql_out = sql;
  return SQLITE_OK;
}

void mp_source_release(mp_vtab *vt, char *sql, sqlite3_stmt *stmt) {
  if (!stmt) {
    sqlite3_free(sql);
    return;
  }
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  /* Newest first; the oldest falls off the end. */
  mp_cached *last = &vt->cache[MP_STMT_CACHE - 1];
  sqlite3_finalize(last->stmt);
  sqlite3_free(last->sql);
  memmove(&vt->cache[1], &vt->cache[0], sizeof(mp_cached) * (MP_STMT_CACHE - 1));
  vt->cache[0].sql = sql;
  vt->cache[0].stmt = stmt;
}

void mp_source_clear(mp_vtab *vt) {
  for (int i = 0; i < MP_STMT_CACHE; i++) {
    sqlite3_finalize(vt->cache[i].stmt);
    sqlite3_free(vt->cache[i].sql);
    vt->cache[i].stmt = NULL;
    vt->cache[i].sql = NULL;
  }
}
