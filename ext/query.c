/*
 * query.c -- modelpack_query(model, sql, p1, ...): any SELECT packed into a
 * model's layout.
 *
 * An eponymous table-valued function: it runs one read-only statement
 * (Django's compiled SQL, raw(), joins, views), matches result columns to
 * the model's fields by name and packs each row -- or each batch -- with
 * the same reader and packer as the model tables.  It runs SQL text, so it
 * is SQLITE_DIRECTONLY.
 */
#include <stdlib.h>
#include <string.h>

#include "mp_util.h"
#include "mp_internal.h"

/* Every parameter is a hidden column, declared when the table connects:
 * 999 of them cost over a millisecond per connection, 100 a tenth. */
#define Q_MAX_PARAMS 100
enum { Q_PACKED, Q_MODEL, Q_SQL, Q_P1 };
/* Catches a 101st positional argument, which would otherwise land in mask. */
#define Q_OVERFLOW (Q_P1 + Q_MAX_PARAMS)
#define Q_MASK (Q_OVERFLOW + 1)
#define Q_MODE (Q_MASK + 1)
#define Q_BATCH (Q_MASK + 2)

/* idxNum bits for the optional hidden arguments, which follow model, sql. */
#define QF_MASK 1
#define QF_MODE 2
#define QF_BATCH 4

typedef struct q_vtab {
  sqlite3_vtab base;
  sqlite3 *db;
  mp_registry *reg;
  mp_stmt_cache cache;
  int preparing; /* inside prepare_query: a nested xBestIndex is our own SQL's */
  int nested;    /* the SQL being prepared uses modelpack_query itself */
} q_vtab;

typedef struct q_cursor {
  sqlite3_vtab_cursor base;
  mp_reader rd;
  char *sql;
  mp_model *m;
  uint64_t mask;
  int safe;
  uint32_t batch;
  int eof;
  int nocache; /* finalize the statement after use instead of caching it */
  sqlite3_int64 rowno;
  sqlite3_value *kept[Q_MAX_PARAMS]; /* p<k> values SQLite re-tests, see keep_params */
} q_cursor;

static int q_error(q_vtab *vt, char *msg) {
  sqlite3_free(vt->base.zErrMsg);
  vt->base.zErrMsg = msg;
  return msg ? SQLITE_ERROR : SQLITE_NOMEM;
}

static char *schema_sql(void) {
  mp_str s = {0};
  mp_str_cat(&s, "CREATE TABLE x(packed BLOB, model HIDDEN, sql HIDDEN");
  for (int i = 1; i <= Q_MAX_PARAMS; i++) mp_str_printf(&s, ", p%d HIDDEN", i);
  mp_str_cat(&s, ", too_many_parameters HIDDEN, mask INTEGER HIDDEN, mode TEXT HIDDEN, batch INTEGER HIDDEN)");
  return mp_str_finish(&s);
}

static int q_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                     sqlite3_vtab **out, char **err) {
  char *sql = schema_sql();
  int rc = sql ? sqlite3_declare_vtab(db, sql) : SQLITE_NOMEM;
  sqlite3_free(sql);
  /* It runs SQL text it is given: direct use only. */
  if (rc == SQLITE_OK) rc = sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  if (rc != SQLITE_OK) return rc;
  q_vtab *vt = sqlite3_malloc(sizeof *vt);
  if (!vt) return SQLITE_NOMEM;
  memset(vt, 0, sizeof *vt);
  vt->db = db;
  vt->reg = aux;
  *out = &vt->base;
  return SQLITE_OK;
}

static int q_disconnect(sqlite3_vtab *p) {
  q_vtab *vt = (q_vtab *)p;
  mp_cache_clear(&vt->cache);
  sqlite3_free(vt);
  return SQLITE_OK;
}

/* argv: model, sql, [mask], [mode], [batch], then parameters; idxStr
 * lists the parameter numbers in that order. */
static int q_best_index(sqlite3_vtab *p, sqlite3_index_info *info) {
  if (((q_vtab *)p)->preparing) ((q_vtab *)p)->nested = 1;
  int at[Q_BATCH + 1];
  int n = 0, flags = 0;
  mp_str params = {0};
  for (int i = 0; i <= Q_BATCH; i++) at[i] = -1;
  for (int i = 0; i < info->nConstraint; i++) {
    int col = info->aConstraint[i].iColumn;
    if (col < Q_MODEL || info->aConstraint[i].op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    if (!info->aConstraint[i].usable) return SQLITE_CONSTRAINT;
    at[col] = i;
  }
  if (at[Q_OVERFLOW] >= 0)
    return q_error((q_vtab *)p, sqlite3_mprintf("modelpack_query takes at most %d parameters",
                                                Q_MAX_PARAMS));
  if (at[Q_MODEL] < 0 || at[Q_SQL] < 0) {
    return q_error((q_vtab *)p, sqlite3_mprintf(
        "modelpack_query needs a model and a SELECT: modelpack_query('book', 'SELECT ...', ...)"));
  }
  const int order[] = {Q_MODEL, Q_SQL, Q_MASK, Q_MODE, Q_BATCH};
  const int flag[] = {0, 0, QF_MASK, QF_MODE, QF_BATCH};
  for (int k = 0; k < 5; k++) {
    if (at[order[k]] < 0) continue;
    info->aConstraintUsage[at[order[k]]].argvIndex = ++n;
    info->aConstraintUsage[at[order[k]]].omit = 1;
    flags |= flag[k];
  }
  for (int col = Q_P1; col < Q_OVERFLOW; col++) {
    if (at[col] < 0) continue;
    info->aConstraintUsage[at[col]].argvIndex = ++n;
    info->aConstraintUsage[at[col]].omit = 1;
    mp_str_printf(&params, "%s%d", params.n ? "," : "", col - Q_P1 + 1);
  }
  char *idx = mp_str_finish(&params);
  if (!idx) return SQLITE_NOMEM;
  info->idxNum = flags;
  info->idxStr = idx;
  info->needToFreeIdxStr = 1;
  info->estimatedCost = 1000;
  info->estimatedRows = 1000;
  return SQLITE_OK;
}

static int q_open(sqlite3_vtab *p, sqlite3_vtab_cursor **out) {
  q_cursor *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  c->eof = 1;
  *out = &c->base;
  return SQLITE_OK;
}

static void q_reset(q_cursor *c) {
  q_vtab *vt = (q_vtab *)c->base.pVtab;
  for (int k = 0; k < Q_MAX_PARAMS; k++) {
    sqlite3_value_free(c->kept[k]);
    c->kept[k] = NULL;
  }
  /* A statement that uses modelpack_query itself keeps this very table
   * connected: cached here, it would keep the connection from ever closing. */
  if (c->nocache) {
    sqlite3_finalize(c->rd.stmt);
    sqlite3_free(c->sql);
  } else {
    mp_cache_give(&vt->cache, c->sql, c->rd.stmt); /* takes both */
  }
  c->nocache = 0;
  c->sql = NULL;
  c->rd.stmt = NULL;
  mp_model_unref(c->m);
  c->m = NULL;
  c->eof = 1;
}

static int q_close(sqlite3_vtab_cursor *cur) {
  q_cursor *c = (q_cursor *)cur;
  q_reset(c);
  mp_reader_free(&c->rd);
  sqlite3_free(c);
  return SQLITE_OK;
}

/* Skip white space, comments and (when `semis`) semicolons. */
static const char *skip_blank(const char *z, int semis) {
  for (;;) {
    while (*z == ' ' || *z == '\t' || *z == '\n' || *z == '\r' || *z == '\f' ||
           (semis && *z == ';'))
      z++;
    if (z[0] == '-' && z[1] == '-') {
      while (*z && *z != '\n') z++;
    } else if (z[0] == '/' && z[1] == '*') {
      const char *end = strstr(z + 2, "*/");
      z = end ? end + 2 : z + strlen(z);
    } else {
      return z;
    }
  }
}

/* Does the text open with this keyword (after blanks and comments)? */
static const char *keyword(const char *z, const char *word) {
  size_t n = strlen(word);
  z = skip_blank(z, 0);
  if (sqlite3_strnicmp(z, word, (int)n) != 0) return NULL;
  char c = z[n];
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
    return NULL;
  return z + n;
}

/*
 * A PRAGMA can act while it is merely prepared (PRAGMA cache_size = 1
 * takes effect before any step), and so can EXPLAIN PRAGMA: refuse both
 * from the text, before SQLite sees it.  Everything else is refused, if
 * need be, after the prepare, where that is still harmless.
 */
static const char *refused_by_text(const char *sql) {
  if (keyword(sql, "EXPLAIN")) return "EXPLAIN is not a query to pack";
  if (keyword(sql, "PRAGMA")) return "a PRAGMA is not a query to pack";
  return NULL;
}

/* Prepare (or reuse) the statement and check it only reads. */
static char *prepare_query(q_cursor *c, q_vtab *vt, const char *sql) {
  const mp_model *m = c->m;
  c->rd.stmt = mp_cache_find(&vt->cache, sql);
  if (c->rd.stmt) return NULL;
  const char *tail = NULL;
  const char *why = refused_by_text(sql);
  if (why) return sqlite3_mprintf("modelpack: %s: query refused: %s", m->name, why);
  vt->preparing++;
  vt->nested = 0;
  int rc = sqlite3_prepare_v3(vt->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->rd.stmt, &tail);
  vt->preparing--;
  c->nocache = vt->nested;
  if (rc != SQLITE_OK)
    return sqlite3_mprintf("modelpack: %s: query: %s", m->name, sqlite3_errmsg(vt->db));
  /* Never prepare what follows: it could act while being prepared. */
  if (!c->rd.stmt) why = "the SQL holds no statement";
  else if (*skip_blank(tail, 1)) why = "more than one statement";
  else if (sqlite3_stmt_isexplain(c->rd.stmt)) why = "EXPLAIN is not a query to pack";
  else if (!sqlite3_stmt_readonly(c->rd.stmt)) why = "the statement writes (only read-only SELECT statements are allowed)";
  else if (sqlite3_column_count(c->rd.stmt) == 0) why = "the statement returns no columns";
  if (!why) return NULL;
  sqlite3_finalize(c->rd.stmt);
  c->rd.stmt = NULL;
  return sqlite3_mprintf("modelpack: %s: query refused: %s", m->name, why);
}

/* Bind p<k> values; idx lists their numbers in argv order. */
static char *bind_params(q_cursor *c, const char *idx, sqlite3_value **argv) {
  int nparam = sqlite3_bind_parameter_count(c->rd.stmt);
  while (idx && *idx) {
    char *end;
    long k = strtol(idx, &end, 10);
    if (k > nparam)
      return sqlite3_mprintf("modelpack: %s: query has %d parameter%s, got p%ld", c->m->name,
                             nparam, nparam == 1 ? "" : "s", k);
    if (sqlite3_bind_value(c->rd.stmt, (int)k, *argv++) != SQLITE_OK) return NULL;
    idx = *end == ',' ? end + 1 : end;
  }
  return NULL;
}

/*
 * SQLite skips re-testing a constraint marked omit only for the first 16
 * arguments (where.c keeps the omit flags in a 16-bit mask); every later
 * argument, p<k> = value, it tests against xColumn on each row.  Keep those
 * values for q_column so the test passes.  A NULL there can never pass
 * (NULL = NULL is not true) and would silently drop every row: refuse it.
 * `pos` is the 1-based argv position of the first parameter.
 */
static int keep_params(q_cursor *c, const char *idx, sqlite3_value **argv, int pos,
                       char **err) {
  for (; idx && *idx; argv++, pos++) {
    char *end;
    long k = strtol(idx, &end, 10);
    idx = *end == ',' ? end + 1 : end;
    if (pos <= 16 || k < 1 || k > Q_MAX_PARAMS) continue;
    if (sqlite3_value_type(*argv) == SQLITE_NULL) {
      *err = sqlite3_mprintf("modelpack: %s: query parameter p%ld is NULL: SQLite re-tests "
                             "arguments after the 16th of modelpack_query and drops the row "
                             "when one is NULL; put NULL parameters first or write NULL in "
                             "the SQL", c->m->name, k);
      return SQLITE_ERROR;
    }
    c->kept[k - 1] = sqlite3_value_dup(*argv);
    if (!c->kept[k - 1]) return SQLITE_NOMEM;
  }
  return SQLITE_OK;
}

static int field_for_column(const mp_model *m, const char *name) {
  for (int i = 0; name && i < m->nfield; i++)
    if (mp_stricmp(m->fields[i].column, name) == 0) return i;
  return name ? mp_model_field(m, name) : -1;
}

/* Match result columns to fields: fills *present and the column of each
 * field; an extra column is an error only when packing safely. */
static char *match_columns(q_cursor *c, int safe, uint64_t *present, int *col_of) {
  const mp_model *m = c->m;
  int n = sqlite3_column_count(c->rd.stmt);
  *present = 0;
  for (int i = 0; i < n; i++) {
    const char *name = sqlite3_column_name(c->rd.stmt, i);
    int f = field_for_column(m, name);
    if (f >= 0 && !((*present >> f) & 1)) {
      *present |= (uint64_t)1 << f;
      col_of[f] = i;
    } else if (safe) {
      return sqlite3_mprintf("modelpack: %s: result column %s %s (safe packing refuses extra columns)",
                             m->name, name ? name : "?",
                             f >= 0 ? "repeats a field already matched" : "matches no field");
    }
  }
  if (!((*present >> m->pk) & 1))
    return sqlite3_mprintf("modelpack: %s: the query has no column for the primary key %s",
                           m->name, m->fields[m->pk].name);
  return NULL;
}

static char *start_query(q_cursor *c, const mp_entry *e, int mode, const char *idx,
                         sqlite3_value **params) {
  int col_of[MP_MAX_FIELDS];
  uint64_t present;
  char *err = bind_params(c, idx, params);
  if (err) return err;
  /* Auto: decided now, at the query's start, on the mask asked for. */
  c->safe = mode == MP_MODE_SAFE || (mode == MP_MODE_AUTO && mp_auto_is_safe(c->m, e, c->mask));
  err = match_columns(c, c->safe, &present, col_of);
  if (err) return err;
  c->mask &= present;
  c->mask |= (uint64_t)1 << c->m->pk;
  if (mode == MP_MODE_AUTO) c->safe = mp_auto_is_safe(c->m, e, c->mask);
  int rc = mp_reader_config(&c->rd, c->m, c->mask, c->safe, c->batch ? c->batch : 1, c->batch > 0);
  if (rc != SQLITE_OK) return NULL;
  c->rd.how = MP_READ_COLS;
  for (int j = 0; j < c->rd.packer.nloaded; j++) c->rd.colidx[j] = col_of[c->rd.packer.loaded[j]];
  return NULL;
}

static int q_step(q_cursor *c) {
  q_vtab *vt = (q_vtab *)c->base.pVtab;
  char *err = NULL;
  int rc = mp_reader_fill(&c->rd, &err);
  if (rc == SQLITE_ROW) {
    c->rowno++;
    return SQLITE_OK;
  }
  c->eof = 1;
  if (rc == SQLITE_DONE) return SQLITE_OK;
  if (!err) err = sqlite3_mprintf("modelpack: %s: query: %s", c->m->name, sqlite3_errmsg(vt->db));
  q_error(vt, err);
  return rc == SQLITE_NOMEM ? rc : SQLITE_ERROR;
}

static int q_filter(sqlite3_vtab_cursor *cur, int flags, const char *idx, int argc,
                    sqlite3_value **argv) {
  q_cursor *c = (q_cursor *)cur;
  q_vtab *vt = (q_vtab *)cur->pVtab;
  const char *name = (const char *)sqlite3_value_text(argv[0]);
  const char *sql = (const char *)sqlite3_value_text(argv[1]);
  int argi = 2, mode = MP_MODE_AUTO;
  mp_entry *e = NULL;
  char *err = NULL;
  q_reset(c);
  if (!name || !sql)
    return q_error(vt, sqlite3_mprintf("modelpack_query: the model and the SQL must be text"));
  int found = mp_registry_find(vt->reg, vt->db, name, &e, &err);
  if (found == SQLITE_NOMEM && !err) return SQLITE_NOMEM;
  if (found != SQLITE_OK) {
    char *msg = sqlite3_mprintf("modelpack: %s", err ? err : "out of memory");
    sqlite3_free(err);
    return q_error(vt, msg);
  }
  c->m = e->model;
  c->m->refs++;
  c->mask = mp_all_fields(c->m->nfield);
  c->batch = 0;
  if (flags & QF_MASK) mp_arg_mask(c->m, argv[argi++], &c->mask, &err);
  if (!err && (flags & QF_MODE)) mp_arg_mode(c->m, argv[argi++], &mode, &err);
  if (!err && (flags & QF_BATCH)) mp_arg_batch(c->m, argv[argi++], &c->batch, &err);
  if (!err) err = prepare_query(c, vt, sql);
  if (!err && c->rd.stmt) {
    c->sql = mp_strdup(sql);
    err = start_query(c, e, mode, idx, argv + argi);
  }
  int rc = SQLITE_OK;
  if (!err && c->sql) rc = keep_params(c, idx, argv + argi, argi + 1, &err);
  if (err) return q_error(vt, err);
  if (!c->sql || !c->rd.ready || rc != SQLITE_OK) return SQLITE_NOMEM;
  c->eof = 0;
  c->rowno = 0;
  return q_step(c);
}

static int q_next(sqlite3_vtab_cursor *cur) { return q_step((q_cursor *)cur); }

static int q_eof(sqlite3_vtab_cursor *cur) { return ((q_cursor *)cur)->eof; }

static int q_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col) {
  q_cursor *c = (q_cursor *)cur;
  if (col == Q_PACKED) sqlite3_result_blob64(ctx, c->rd.blob, c->rd.blob_len, SQLITE_TRANSIENT);
  else if (col == Q_MASK) sqlite3_result_int64(ctx, (sqlite3_int64)c->mask);
  else if (col == Q_MODE) sqlite3_result_text(ctx, c->safe ? "safe" : "fast", -1, SQLITE_STATIC);
  else if (col == Q_BATCH && c->batch) sqlite3_result_int64(ctx, c->batch);
  else if (col >= Q_P1 && col < Q_OVERFLOW && c->kept[col - Q_P1])
    sqlite3_result_value(ctx, c->kept[col - Q_P1]);
  return SQLITE_OK;
}

static int q_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  *rowid = ((q_cursor *)cur)->rowno;
  return SQLITE_OK;
}

static sqlite3_module query_module = {
    .iVersion = 1,
    .xConnect = q_connect,
    .xBestIndex = q_best_index,
    .xDisconnect = q_disconnect,
    .xOpen = q_open,
    .xClose = q_close,
    .xFilter = q_filter,
    .xNext = q_next,
    .xEof = q_eof,
    .xColumn = q_column,
    .xRowid = q_rowid,
};

int mp_register_query(sqlite3 *db, mp_registry *r) {
  return sqlite3_create_module(db, "modelpack_query", r ? &query_module : NULL, r);
}
