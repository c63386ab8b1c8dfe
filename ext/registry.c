/*
 * registry.c -- the models of one connection, found by name.
 *
 * Each connection that loads modelpack gets one registry (owned by the
 * module, freed when the connection closes).  A model table registers its
 * parsed model when SQLite connects it; SQL functions such as
 * modelpack_get('book', ...) look models up here, resolving names the way
 * SQL does (temp, then main, then attached databases).  Run-time hook flags
 * (modelpack_hooks) live in the entry, so they survive a schema reload.
 *
 * A registry is only touched under its connection's mutex (from inside SQL
 * statements on that connection), so it needs no lock of its own.
 */
#include <string.h>

#include "mp_internal.h"
#include "mp_util.h"

struct mp_registry {
  mp_entry **e;
  int n, alloc;
};

mp_registry *mp_registry_new(void) {
  mp_registry *r = sqlite3_malloc(sizeof *r);
  if (r) memset(r, 0, sizeof *r);
  return r;
}

static void entry_free(mp_entry *e) {
  mp_model_unref(e->model);
  sqlite3_free(e->schema);
  sqlite3_free(e->name);
  sqlite3_free(e);
}

void mp_registry_free(void *p) {
  mp_registry *r = p;
  if (!r) return;
  for (int i = 0; i < r->n; i++) entry_free(r->e[i]);
  sqlite3_free(r->e);
  sqlite3_free(r);
}

static int find_index(const mp_registry *r, const char *schema,
                      const char *name) {
  for (int i = 0; i < r->n; i++)
    if (mp_stricmp(r->e[i]->schema, schema) == 0 &&
        mp_stricmp(r->e[i]->name, name) == 0)
      return i;
  return -1;
}

mp_entry *mp_registry_get(mp_registry *r, const char *schema,
                          const char *name) {
  int i = find_index(r, schema, name);
  return i >= 0 ? r->e[i] : NULL;
}

int mp_registry_attach(mp_registry *r, const char *schema, mp_model *m) {
  int i = find_index(r, schema, m->name);
  mp_entry *e;
  if (i >= 0) {
    e = r->e[i];
    mp_model_unref(e->model);
  } else {
    if (r->n == r->alloc) {
      int a = r->alloc ? r->alloc * 2 : 8;
      mp_entry **ne = sqlite3_realloc64(r->e, sizeof(*ne) * (size_t)a);
      if (!ne) return SQLITE_NOMEM;
      r->e = ne;
      r->alloc = a;
    }
    e = sqlite3_malloc(sizeof *e);
    if (!e) return SQLITE_NOMEM;
    memset(e, 0, sizeof *e);
    e->schema = mp_strdup(schema);
    e->name = mp_strdup(m->name);
    if (!e->schema || !e->name) {
      entry_free(e);
      return SQLITE_NOMEM;
    }
    r->e[r->n++] = e;
  }
  e->model = m;
  m->refs++;
  return SQLITE_OK;
}

void mp_registry_detach(mp_registry *r, const char *schema, mp_model *m,
                        int destroyed) {
  int i = find_index(r, schema, m->name);
  if (i < 0) return;
  mp_entry *e = r->e[i];
  if (e->model == m) {
    mp_model_unref(m);
    e->model = NULL;
  }
  if (destroyed) {
    entry_free(e);
    r->e[i] = r->e[--r->n];
  }
}

void mp_registry_rename(mp_registry *r, const char *schema, mp_model *m,
                        const char *newname) {
  int i = find_index(r, schema, m->name);
  char *a = mp_strdup(newname), *b = mp_strdup(newname);
  if (!a || !b || i < 0) {
    sqlite3_free(a);
    sqlite3_free(b);
    return;
  }
  sqlite3_free(r->e[i]->name);
  r->e[i]->name = a;
  sqlite3_free(m->name);
  m->name = b;
}

enum { ABSENT = 0, EXISTS = 1, NOMEM = -1 };

/* Does schema.name exist?  Preparing a read of it also makes SQLite
 * connect the virtual table, which registers its model.  Running out of
 * memory is neither answer: it must reach the caller as SQLITE_NOMEM. */
static int table_exists(sqlite3 *db, const char *schema, const char *name) {
  char *sql = sqlite3_mprintf("SELECT 1 FROM \"%w\".\"%w\"", schema, name);
  sqlite3_stmt *st = NULL;
  if (!sql) return NOMEM;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  sqlite3_free(sql);
  sqlite3_finalize(st);
  if (rc == SQLITE_NOMEM) return NOMEM;
  return rc == SQLITE_OK ? EXISTS : ABSENT;
}

/* EXISTS (with *out the entry, or NULL for a table that is not a model),
 * ABSENT, or NOMEM. */
static int lookup(mp_registry *r, sqlite3 *db, const char *schema,
                  const char *name, mp_entry **out) {
  int i = find_index(r, schema, name);
  if (i >= 0 && r->e[i]->model) {
    *out = r->e[i];
    return EXISTS;
  }
  int found = table_exists(db, schema, name);
  if (found != EXISTS) return found;
  i = find_index(r, schema, name);
  *out = i >= 0 && r->e[i]->model ? r->e[i] : NULL;
  return EXISTS;
}

/* Schemas in SQL's resolution order: temp, main, then attached. */
static int search_attached(mp_registry *r, sqlite3 *db, const char *name,
                           mp_entry **out) {
  sqlite3_stmt *st = NULL;
  int found = ABSENT;
  int rc = sqlite3_prepare_v2(db, "PRAGMA database_list", -1, &st, NULL);
  if (rc != SQLITE_OK) return rc == SQLITE_NOMEM ? NOMEM : ABSENT;
  while (found == ABSENT && sqlite3_step(st) == SQLITE_ROW) {
    const char *schema = (const char *)sqlite3_column_text(st, 1);
    if (!schema || !mp_stricmp(schema, "main") || !mp_stricmp(schema, "temp"))
      continue;
    found = lookup(r, db, schema, name, out);
  }
  sqlite3_finalize(st);
  return found;
}

int mp_registry_find(mp_registry *r, sqlite3 *db, const char *spec,
                     mp_entry **out, char **err) {
  const char *dot = strchr(spec, '.');
  int found;
  *out = NULL;
  if (dot) {
    char *schema = sqlite3_mprintf("%.*s", (int)(dot - spec), spec);
    if (!schema) return SQLITE_NOMEM;
    found = lookup(r, db, schema, dot + 1, out);
    sqlite3_free(schema);
  } else {
    found = lookup(r, db, "temp", spec, out);
    if (found == ABSENT) found = lookup(r, db, "main", spec, out);
    if (found == ABSENT) found = search_attached(r, db, spec, out);
  }
  if (found == NOMEM) return SQLITE_NOMEM;
  if (*out) return SQLITE_OK;
  *err = found ? sqlite3_mprintf("%s is not a modelpack model", spec)
               : sqlite3_mprintf("no such model: %s", spec);
  return SQLITE_ERROR;
}
