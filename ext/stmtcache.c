/*
 * stmtcache.c -- a few idle prepared statements, keyed by their SQL text.
 *
 * Model tables and modelpack_query run the same SQL again and again (a get
 * by primary key, a nested-loop join, an ORM's repeated query); taking an
 * idle statement from here skips the prepare.  A statement in use is owned
 * by its cursor and comes back, reset, when the cursor is done with it.
 */
#include <string.h>

#include "mp_internal.h"

sqlite3_stmt *mp_cache_find(mp_stmt_cache *c, const char *sql) {
  for (int i = 0; i < MP_STMT_CACHE; i++) {
    if (!c->sql[i] || strcmp(c->sql[i], sql) != 0) continue;
    sqlite3_stmt *st = c->stmt[i];
    sqlite3_free(c->sql[i]);
    /* Close the gap, keeping newest first. */
    for (int k = i; k + 1 < MP_STMT_CACHE; k++) {
      c->sql[k] = c->sql[k + 1];
      c->stmt[k] = c->stmt[k + 1];
    }
    c->sql[MP_STMT_CACHE - 1] = NULL;
    c->stmt[MP_STMT_CACHE - 1] = NULL;
    return st;
  }
  return NULL;
}

int mp_cache_take(mp_stmt_cache *c, sqlite3 *db, const char *sql,
                  sqlite3_stmt **out) {
  *out = mp_cache_find(c, sql);
  if (*out) return SQLITE_OK;
  return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
}

void mp_cache_give(mp_stmt_cache *c, char *sql, sqlite3_stmt *stmt) {
  if (!stmt || !sql) {
    sqlite3_finalize(stmt);
    sqlite3_free(sql);
    return;
  }
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  /* Newest first; the oldest falls off the end. */
  sqlite3_finalize(c->stmt[MP_STMT_CACHE - 1]);
  sqlite3_free(c->sql[MP_STMT_CACHE - 1]);
  for (int k = MP_STMT_CACHE - 1; k > 0; k--) {
    c->sql[k] = c->sql[k - 1];
    c->stmt[k] = c->stmt[k - 1];
  }
  c->sql[0] = sql;
  c->stmt[0] = stmt;
}

void mp_cache_clear(mp_stmt_cache *c) {
  for (int i = 0; i < MP_STMT_CACHE; i++) {
    sqlite3_finalize(c->stmt[i]);
    sqlite3_free(c->sql[i]);
    c->stmt[i] = NULL;
    c->sql[i] = NULL;
  }
}
