/*
 * plan.c -- xBestIndex for model tables: decide what the source query does.
 *
 * Constraints on fields, ORDER BY and LIMIT/OFFSET are turned into SQL that
 * is appended to `SELECT <fields> FROM <source>`, so the source's own
 * indexes serve them.  The clause travels to xFilter in idxStr (and shows in
 * EXPLAIN QUERY PLAN), prefixed with the fields the statement reads by
 * name and the fields with a pushed IS [NOT] NULL: "<hex>:<hex>;<clause>".  Hidden-column arguments
 * (mask, mode, unpack) always come first in argv, flagged in idxNum.
 */
#include <stdlib.h>
#include <string.h>

#include "mp_util.h"
#include "mp_vtab.h"

typedef struct plan {
  mp_vtab *vt;
  sqlite3_index_info *info;
  mp_str where, tail;
  int argc;          /* next argvIndex - 1 */
  int all_consumed;  /* every constraint handled exactly by the source */
  int pk_eq;         /* equality on the primary key */
  int field_eq;      /* equality on some other field */
  int range;
  int non_pk;        /* something pushed is on a field other than the key */
  uint64_t retested; /* fields with a pushed IS [NOT] NULL */
} plan;

static const char *op_sql(unsigned char op, int *has_arg) {
  *has_arg = 1;
  switch (op) {
    case SQLITE_INDEX_CONSTRAINT_EQ: return "=";
    case SQLITE_INDEX_CONSTRAINT_GT: return ">";
    case SQLITE_INDEX_CONSTRAINT_LE: return "<=";
    case SQLITE_INDEX_CONSTRAINT_LT: return "<";
    case SQLITE_INDEX_CONSTRAINT_GE: return ">=";
    case SQLITE_INDEX_CONSTRAINT_NE: return "<>";
    case SQLITE_INDEX_CONSTRAINT_IS: return " IS ";
    case SQLITE_INDEX_CONSTRAINT_ISNOT: return " IS NOT ";
    case SQLITE_INDEX_CONSTRAINT_LIKE: return " LIKE ";
    case SQLITE_INDEX_CONSTRAINT_GLOB: return " GLOB ";
    case SQLITE_INDEX_CONSTRAINT_ISNULL: *has_arg = 0; return " IS NULL";
    case SQLITE_INDEX_CONSTRAINT_ISNOTNULL: *has_arg = 0; return " IS NOT NULL";
    default: return NULL;
  }
}

/* Field index for a constraint or ORDER BY column, or -1. */
static int field_of(const mp_model *m, int col) {
  if (col == -1) return m->fields[m->pk].type == MP_INTEGER ? m->pk : -1;
  return col >= 0 && col < m->nfield ? col : -1;
}

static void use_arg(plan *p, int i, int omit) {
  p->info->aConstraintUsage[i].argvIndex = ++p->argc;
  p->info->aConstraintUsage[i].omit = (unsigned char)omit;
}

static void push_constraint(plan *p, int i, int f) {
  const struct sqlite3_index_constraint *c = &p->info->aConstraint[i];
  const mp_model *m = p->vt->m;
  int has_arg;
  const char *op = op_sql(c->op, &has_arg);
  if (!op) {
    p->all_consumed = 0;
    return;
  }
  mp_str_printf(&p->where, "%ss.\"%w\"%s%s", p->where.n ? " AND " : "WHERE ",
                m->fields[f].column, op, has_arg ? "?" : "");
  const char *coll = sqlite3_vtab_collation(p->info, i);
  int is_cmp = has_arg && c->op != SQLITE_INDEX_CONSTRAINT_LIKE &&
               c->op != SQLITE_INDEX_CONSTRAINT_GLOB;
  /* Force the collation SQLite chose, whatever the source column declares
   * (a NOCASE column would otherwise compare its own way). */
  if (is_cmp) mp_str_printf(&p->where, " COLLATE \"%w\"", coll ? coll : "BINARY");
  if (has_arg) use_arg(p, i, 1);
  else p->info->aConstraintUsage[i].omit = 1;
  if (f != m->pk) p->non_pk = 1;
  /* SQLite re-tests these itself, whatever omit says (see cursor.c). */
  if (c->op == SQLITE_INDEX_CONSTRAINT_ISNULL || c->op == SQLITE_INDEX_CONSTRAINT_ISNOTNULL)
    p->retested |= (uint64_t)1 << f;
  if (c->op == SQLITE_INDEX_CONSTRAINT_EQ || c->op == SQLITE_INDEX_CONSTRAINT_IS)
    (f == m->pk ? (p->pk_eq = 1) : (p->field_eq = 1));
  else
    p->range = 1;
}

/* Hidden-column arguments must be usable equalities, or the plan is void. */
static int take_hidden(plan *p, int *flags) {
  const sqlite3_index_info *info = p->info;
  const int hidden_flag[] = {0, MP_PLAN_MASK, MP_PLAN_MODE, MP_PLAN_UNPACK, MP_PLAN_BATCH};
  int where[5] = {-1, -1, -1, -1, -1};
  for (int i = 0; i < info->nConstraint; i++) {
    int h = info->aConstraint[i].iColumn - p->vt->m->nfield;
    if (h <= MP_COL_PACKED || h > MP_COL_BATCH) continue;
    if (info->aConstraint[i].op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    if (!info->aConstraint[i].usable) return SQLITE_CONSTRAINT;
    where[h] = i;
  }
  for (int h = MP_COL_MASK; h <= MP_COL_BATCH; h++) {
    if (where[h] < 0) continue;
    *flags |= hidden_flag[h];
    use_arg(p, where[h], 1);
  }
  return SQLITE_OK;
}

static void push_order(plan *p) {
  sqlite3_index_info *info = p->info;
  const mp_model *m = p->vt->m;
  for (int i = 0; i < info->nOrderBy; i++)
    if (field_of(m, info->aOrderBy[i].iColumn) < 0) return;
  for (int i = 0; i < info->nOrderBy; i++) {
    int f = field_of(m, info->aOrderBy[i].iColumn);
    if (f != m->pk) p->non_pk = 1;
    mp_str_printf(&p->tail, "%ss.\"%w\"%s%s", i ? ", " : " ORDER BY ",
                  m->fields[f].column, " COLLATE BINARY",
                  info->aOrderBy[i].desc ? " DESC" : "");
  }
  if (info->nOrderBy) info->orderByConsumed = 1;
}

/* LIMIT/OFFSET only when the source computes exactly the rows SQLite
 * would: every constraint pushed and the order (if any) pushed too. */
static void push_limit(plan *p) {
  sqlite3_index_info *info = p->info;
  int lim = -1, off = -1;
  for (int i = 0; i < info->nConstraint; i++) {
    if (!info->aConstraint[i].usable) continue;
    if (info->aConstraint[i].op == SQLITE_INDEX_CONSTRAINT_LIMIT) lim = i;
    if (info->aConstraint[i].op == SQLITE_INDEX_CONSTRAINT_OFFSET) off = i;
  }
  if (lim < 0 || !p->all_consumed || (info->nOrderBy && !info->orderByConsumed))
    return;
  mp_str_cat(&p->tail, " LIMIT ?");
  use_arg(p, lim, 1);
  if (off >= 0) {
    mp_str_cat(&p->tail, " OFFSET ?");
    use_arg(p, off, 1);
  }
}

static void plan_source(plan *p, int flags) {
  sqlite3_index_info *info = p->info;
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *c = &info->aConstraint[i];
    if (c->op == SQLITE_INDEX_CONSTRAINT_LIMIT ||
        c->op == SQLITE_INDEX_CONSTRAINT_OFFSET ||
        info->aConstraintUsage[i].argvIndex)
      continue;
    int f = field_of(p->vt->m, c->iColumn);
    if (f < 0 || !c->usable) {
      p->all_consumed = 0;
      continue;
    }
    push_constraint(p, i, f);
  }
  push_order(p);
  /* With batches, LIMIT counts blobs, not source rows. */
  if (!(flags & MP_PLAN_BATCH)) push_limit(p);
}

static void plan_cost(plan *p, int flags) {
  sqlite3_index_info *info = p->info;
  if (flags & MP_PLAN_UNPACK) {
    info->estimatedCost = 10;
    info->estimatedRows = 10;
  } else if (p->pk_eq) {
    info->estimatedCost = 5;
    info->estimatedRows = 1;
    info->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
  } else if (p->field_eq) {
    info->estimatedCost = 100;
    info->estimatedRows = 10;
  } else if (p->range) {
    info->estimatedCost = 10000;
    info->estimatedRows = 10000;
  } else {
    info->estimatedCost = 1000000;
    info->estimatedRows = 1000000;
  }
}

/* Fields the statement reads through their own columns. */
static uint64_t fields_used(const mp_model *m, sqlite3_uint64 used) {
  uint64_t f = (uint64_t)used & mp_all_fields(m->nfield);
  /* The primary key gives the rowid; bit 63 stands for column 63 and
   * every later one. */
  f |= (uint64_t)1 << m->pk;
  if (m->nfield == 64 && (used >> 63)) f |= (uint64_t)1 << 63;
  return f;
}

/*
 * How the source will run the pushed WHERE and ORDER BY, as an SQL comment
 * appended to the clause, e.g. "source: SEARCH s USING INTEGER PRIMARY KEY
 * (rowid=?)": EXPLAIN QUERY PLAN on the model then shows whether the
 * source's index is used.  *sorts says whether the source needs a sorter,
 * which decides how rows are packed (see vtab.c).
 */
static char *source_plan(mp_vtab *vt, const char *where, const char *order,
                         int *sorts) {
  char *sql = sqlite3_mprintf("EXPLAIN QUERY PLAN SELECT 1 FROM %s AS s %s%s",
                              vt->m->source_sql, where, order);
  sqlite3_stmt *st = NULL;
  mp_str s = {0};
  *sorts = 1; /* unless the plan says otherwise */
  if (sql && sqlite3_prepare_v2(vt->db, sql, -1, &st, NULL) == SQLITE_OK) {
    *sorts = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *detail = (const char *)sqlite3_column_text(st, 3);
      if (!detail || strstr(detail, "*/")) continue;
      if (strstr(detail, "TEMP B-TREE")) *sorts = 1;
      mp_str_printf(&s, "%s%s", s.n ? "; " : " /* source: ", detail);
    }
  }
  if (s.n) mp_str_cat(&s, " */");
  sqlite3_finalize(st);
  sqlite3_free(sql);
  return mp_str_finish(&s);
}

int mp_plan(mp_vtab *vt, sqlite3_index_info *info) {
  plan p;
  int flags = 0;
  memset(&p, 0, sizeof p);
  p.vt = vt;
  p.info = info;
  p.all_consumed = 1;
  int rc = take_hidden(&p, &flags);
  if (rc != SQLITE_OK) return rc;
  /* Unpacking reads the blob, not the source: SQLite checks the rest. */
  if (!(flags & MP_PLAN_UNPACK)) plan_source(&p, flags);
  plan_cost(&p, flags);
  int packed_col = vt->m->nfield + MP_COL_PACKED;
  if (packed_col < 63 && !((info->colUsed >> packed_col) & 1)) flags |= MP_PLAN_NOPACK;
  if (!p.non_pk && p.all_consumed) flags |= MP_PLAN_PKONLY;
  if (p.where.n) flags |= MP_PLAN_HASWHERE;
  int sorts = 0;
  char *note = p.where.n || info->orderByConsumed
                   ? source_plan(vt, p.where.z ? p.where.z : "", p.tail.z ? p.tail.z : "", &sorts)
                   : NULL;
  if (info->orderByConsumed && sorts) flags |= MP_PLAN_SORTED;
  char *idx = sqlite3_mprintf("%llx:%llx;%s%s%s",
                              (unsigned long long)fields_used(vt->m, info->colUsed),
                              (unsigned long long)p.retested,
                              p.where.z ? p.where.z : "", p.tail.z ? p.tail.z : "",
                              note ? note : "");
  sqlite3_free(note);
  int oom = p.where.oom || p.tail.oom || !idx;
  sqlite3_free(p.where.z);
  sqlite3_free(p.tail.z);
  if (oom) {
    sqlite3_free(idx);
    return SQLITE_NOMEM;
  }
  info->idxNum = flags;
  info->idxStr = idx;
  info->needToFreeIdxStr = 1;
  return SQLITE_OK;
}

uint64_t mp_plan_fields(const char *idx, const char **clause, uint64_t *retested) {
  char *end;
  uint64_t f = strtoull(idx ? idx : "", &end, 16);
  *retested = *end == ':' ? strtoull(end + 1, &end, 16) : 0;
  *clause = *end == ';' ? end + 1 : "";
  return f;
}
