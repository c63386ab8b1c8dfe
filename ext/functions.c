/*
 * functions.c -- scalar SQL functions: modelpack_version, _mask, _hooks,
 * _get, and the registration of every scalar function (modelpack_layout
 * and modelpack_json live in layout.c and json.c).
 *
 * Functions that take a model name look it up in the connection's registry
 * and may prepare a statement to connect it, so they are SQLITE_DIRECTONLY:
 * a view or trigger in an untrusted schema cannot call them.
 */
#include <string.h>

#include "mp_internal.h"

static void model_release(void *p) { mp_model_unref(p); }

/* The model named by argv[0]; cached on the statement while the argument
 * is constant.  On failure the error is already set on ctx. */
mp_model *mp_fn_model(sqlite3_context *ctx, sqlite3_value *arg, mp_entry **entry_out) {
  mp_model *m = entry_out ? NULL : sqlite3_get_auxdata(ctx, 0);
  if (m) return m;
  const char *name = (const char *)sqlite3_value_text(arg);
  mp_entry *e = NULL;
  char *err = NULL;
  if (!name) {
    sqlite3_result_error(ctx, "modelpack: the model name must be text", -1);
    return NULL;
  }
  int rc = mp_registry_find(sqlite3_user_data(ctx), sqlite3_context_db_handle(ctx), name, &e, &err);
  if (rc == SQLITE_NOMEM && !err) {
    sqlite3_result_error_nomem(ctx);
    return NULL;
  }
  if (rc != SQLITE_OK) {
    char *msg = sqlite3_mprintf("modelpack: %s", err ? err : "out of memory");
    sqlite3_result_error(ctx, msg ? msg : "modelpack: out of memory", -1);
    sqlite3_free(msg);
    sqlite3_free(err);
    return NULL;
  }
  if (entry_out) {
    *entry_out = e;
    return e->model;
  }
  e->model->refs++;
  sqlite3_set_auxdata(ctx, 0, e->model, model_release);
  /* Even if SQLite dropped the cache at once, the registry keeps it alive. */
  return e->model;
}

void mp_fn_error(sqlite3_context *ctx, int rc, char *err) {
  if (err)
    sqlite3_result_error(ctx, err, -1);
  else if (rc == SQLITE_NOMEM)
    sqlite3_result_error_nomem(ctx);
  else
    sqlite3_result_error_code(ctx, rc);
  sqlite3_free(err);
}

static void fn_version(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  sqlite3_result_text(ctx, MP_VERSION, -1, SQLITE_STATIC);
}

static void fn_mask(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  mp_model *m = mp_fn_model(ctx, argv[0], NULL);
  uint64_t mask = 0;
  char *err = NULL;
  if (!m) return;
  if (argc < 2 || sqlite3_value_type(argv[1]) == SQLITE_NULL) {
    sqlite3_result_int64(ctx, (sqlite3_int64)mp_all_fields(m->nfield));
    return;
  }
  const char *list = (const char *)sqlite3_value_text(argv[1]);
  int rc = list ? mp_mask_from_names(m, list, &mask, &err) : SQLITE_NOMEM;
  if (rc != SQLITE_OK) {
    mp_fn_error(ctx, rc, err);
    return;
  }
  sqlite3_result_int64(ctx, (sqlite3_int64)mask);
}

static void fn_hooks(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  mp_entry *e = NULL;
  mp_model *m = mp_fn_model(ctx, argv[0], &e);
  char *err = NULL;
  if (!m) return;
  if (argc > 1) {
    const char *spec = (const char *)sqlite3_value_text(argv[1]);
    unsigned hooks;
    uint64_t setattr;
    int rc = mp_hooks_parse(m, spec ? spec : "", &hooks, &setattr, &err);
    if (rc != SQLITE_OK) {
      mp_fn_error(ctx, rc, err);
      return;
    }
    e->hooks = hooks;
    e->setattr = setattr;
  }
  char *text = mp_hooks_format(m, m->hooks | e->hooks, m->setattr | e->setattr);
  if (!text) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  sqlite3_result_text(ctx, text, -1, sqlite3_free);
}

/* Field named by text, or given by index. */
static int field_arg(const mp_model *m, sqlite3_value *v, char **err) {
  int f = -1;
  if (sqlite3_value_type(v) == SQLITE_INTEGER) {
    sqlite3_int64 i = sqlite3_value_int64(v);
    f = i >= 0 && i < m->nfield ? (int)i : -1;
    if (f < 0)
      *err =
          sqlite3_mprintf("modelpack: %s: no field %lld (the model has %d)", m->name, i, m->nfield);
  } else {
    const char *name = (const char *)sqlite3_value_text(v);
    f = name ? mp_model_field(m, name) : -1;
    if (f < 0)
      *err = sqlite3_mprintf("modelpack: %s: no field named '%s'", m->name, name ? name : "");
  }
  return f;
}

static void fn_get(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  mp_model *m = mp_fn_model(ctx, argv[0], NULL);
  mp_view view;
  char *err = NULL;
  if (!m) return;
  int rc = mp_blob_open(m, argv[1], &view, &err);
  if (rc != SQLITE_OK) {
    mp_fn_error(ctx, rc, err);
    return;
  }
  int f = field_arg(m, argv[2], &err);
  if (f < 0) {
    mp_fn_error(ctx, SQLITE_ERROR, err);
    return;
  }
  sqlite3_int64 rec = argc > 3 ? sqlite3_value_int64(argv[3]) : 0;
  if (rec < 0 || rec >= view.count) {
    err = sqlite3_mprintf("modelpack: %s: record %lld out of range (the blob holds %u)", m->name,
                          rec, view.count);
    {
      mp_fn_error(ctx, SQLITE_ERROR, err);
      return;
    }
  }
  if (!mp_is_loaded(&view, f)) {
    err = sqlite3_mprintf("modelpack: %s: field %s is deferred in this blob", m->name,
                          m->fields[f].name);
    {
      mp_fn_error(ctx, SQLITE_ERROR, err);
      return;
    }
  }
  mp_result_field(ctx, m, &view, (uint32_t)rec, f);
}

int mp_create_functions(sqlite3 *db, const mp_fn_def *defs, size_t n, mp_registry *r) {
  int rc = SQLITE_OK;
  for (size_t i = 0; i < n; i++) {
    if (!r) {
      sqlite3_create_function(db, defs[i].name, defs[i].nargs, SQLITE_UTF8, NULL, NULL, NULL,
                              NULL);
    } else if (rc == SQLITE_OK) {
      rc = sqlite3_create_function(db, defs[i].name, defs[i].nargs, SQLITE_UTF8 | defs[i].flags,
                                   defs[i].uses_registry ? r : NULL, defs[i].fn, NULL, NULL);
    }
  }
  return rc;
}

/*
 * modelpack_version is a pure function of nothing: safe anywhere.  The
 * packing call runs only in model tables' own statements, never from a
 * schema.  The others are direct-only: they look a model up by name (and
 * may connect it); deterministic too, since within one statement the same
 * arguments give the same result -- and because SQLite (3.49 and earlier)
 * only enforces direct-only on deterministic functions in CHECK constraints.
 */
#define DIRECT (SQLITE_DIRECTONLY | SQLITE_DETERMINISTIC)
static const mp_fn_def functions[] = {
    {"modelpack_version", 0, SQLITE_INNOCUOUS | SQLITE_DETERMINISTIC, fn_version, 0},
    {MP_PACK_FN, -1, SQLITE_DIRECTONLY, mp_pack_row_fn, 0},
    {"modelpack_mask", 1, DIRECT, fn_mask, 1},
    {"modelpack_mask", 2, DIRECT, fn_mask, 1},
    {"modelpack_hooks", 1, DIRECT, fn_hooks, 1},
    {"modelpack_hooks", 2, DIRECT, fn_hooks, 1},
    {"modelpack_get", 3, DIRECT, fn_get, 1},
    {"modelpack_get", 4, DIRECT, fn_get, 1},
    {"modelpack_layout", 1, DIRECT, mp_fn_layout, 1},
    {"modelpack_layout", 2, DIRECT, mp_fn_layout, 1},
    {"modelpack_json", 2, DIRECT, mp_fn_json, 1},
};

int mp_register_functions(sqlite3 *db, mp_registry *r) {
  return mp_create_functions(db, functions, sizeof functions / sizeof functions[0], r);
}
