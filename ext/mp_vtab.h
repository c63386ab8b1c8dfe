/*
 * mp_vtab.h -- the model virtual table's objects, shared by vtab.c (the
 * module), plan.c (xBestIndex: what to push into the source query) and
 * source.c (the SQL run against the source, and its statement cache).
 */
#ifndef MP_VTAB_H
#define MP_VTAB_H

#include "mp_internal.h"

/* Hidden columns follow the fields: field count + these offsets. */
#define MP_COL_PACKED 0
#define MP_COL_MASK 1
#define MP_COL_MODE 2
#define MP_COL_UNPACK 3

/* idxNum bits: which hidden-column arguments come first in argv. */
#define MP_PLAN_MASK 0x1
#define MP_PLAN_MODE 0x2
#define MP_PLAN_UNPACK 0x4
#define MP_PLAN_NOPACK 0x8 /* the statement never reads packed */
#define MP_PLAN_SORTED 0x10 /* the source query sorts (ORDER BY pushed) */

#define MP_STMT_CACHE 4

typedef struct mp_cached {
  char *sql;
  sqlite3_stmt *stmt;
} mp_cached;

typedef struct mp_vtab {
  sqlite3_vtab base;
  sqlite3 *db;
  mp_registry *reg;
  char *schema;
  mp_model *m;
  mp_cached cache[MP_STMT_CACHE]; /* idle source statements, newest first */
  int depth; /* > 0 while a source statement steps */
} mp_vtab;

/* plan.c */
int mp_plan(mp_vtab *vt, sqlite3_index_info *info);
/* The idxStr is "<hex fields read>;<SQL clause>"; split it. */
uint64_t mp_plan_fields(const char *idx, const char **clause);

/* source.c */
int mp_source_check(sqlite3 *db, const char *schema, mp_model *m, char **err);
int mp_source_stmt(mp_vtab *vt, uint64_t packed, uint64_t extra,
                   const char *clause, sqlite3_stmt **out, char **sql_out);
void mp_source_release(mp_vtab *vt, char *sql, sqlite3_stmt *stmt);
void mp_source_clear(mp_vtab *vt);

#endif
