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
#define MP_COL_BATCH 4

/* idxNum bits: which hidden-column arguments come first in argv. */
#define MP_PLAN_MASK 0x1
#define MP_PLAN_MODE 0x2
#define MP_PLAN_UNPACK 0x4
#define MP_PLAN_NOPACK 0x8 /* the statement never reads packed */
#define MP_PLAN_SORTED 0x10 /* the source query sorts (ORDER BY pushed) */
#define MP_PLAN_BATCH 0x20  /* a batch-size argument follows mask and mode */
#define MP_PLAN_PKONLY 0x40 /* every pushed term is on the primary key */
#define MP_PLAN_HASWHERE 0x80 /* the source query has a WHERE clause */

typedef struct mp_vtab {
  sqlite3_vtab base;
  sqlite3 *db;
  mp_registry *reg;
  char *schema;
  mp_model *m;
  mp_stmt_cache cache; /* idle source statements */
  int depth; /* > 0 while a source statement steps */
} mp_vtab;

/* cursor.c: the read side of the module. */
int mp_cursor_open(sqlite3_vtab *p, sqlite3_vtab_cursor **out);
int mp_cursor_close(sqlite3_vtab_cursor *cur);
int mp_cursor_filter(sqlite3_vtab_cursor *cur, int flags, const char *idx, int argc,
                     sqlite3_value **argv);
int mp_cursor_next(sqlite3_vtab_cursor *cur);
int mp_cursor_eof(sqlite3_vtab_cursor *cur);
int mp_cursor_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int i);
int mp_cursor_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid);

/* plan.c */
int mp_plan(mp_vtab *vt, sqlite3_index_info *info);
/* The idxStr is "<hex fields read>:<hex fields with IS [NOT] NULL>;<SQL clause>". */
uint64_t mp_plan_fields(const char *idx, const char **clause, uint64_t *retested);

/* source.c */
int mp_source_check(sqlite3 *db, const char *schema, mp_model *m, char **err);

#endif
