/*
 * modelpack.c -- the extension's entry point.
 *
 * sqlite3_modelpack_init() is what `.load ./modelpack` and
 * load_extension('./modelpack') find by name.  It checks the SQLite it runs
 * on, creates this connection's model registry and registers the model
 * virtual table, modelpack_unpack and the scalar functions.
 */
#include "mp_internal.h"

SQLITE_EXTENSION_INIT1

/*
 * SQLITE_EXTENSION_INIT2 would write the shared sqlite3_api pointer on every
 * load, racing with connections on other threads that already use it.  Set
 * it once, under a SQLite static mutex (APP3: one the library leaves to
 * applications), so later loads only read it.
 */
static void set_api_once(const sqlite3_api_routines *api) {
  sqlite3_mutex *mx = api->mutex_alloc(SQLITE_MUTEX_STATIC_APP3);
  if (mx) api->mutex_enter(mx);
  if (!sqlite3_api) sqlite3_api = api;
  if (mx) api->mutex_leave(mx);
}

static int already_loaded(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "SELECT modelpack_version()", -1, &st, NULL);
  sqlite3_finalize(st);
  /* The failed probe leaves "no such function" as the connection's error,
   * and sqlite3_open() reports that error after running automatic
   * extensions (sqlite3_auto_extension): clear it. */
  if (rc != SQLITE_OK) sqlite3_exec(db, "", NULL, NULL, NULL);
  return rc == SQLITE_OK;
}

#ifdef _WIN32
__declspec(dllexport)
#else
__attribute__((visibility("default")))
#endif
int sqlite3_modelpack_init(sqlite3 *db, char **err,
                           const sqlite3_api_routines *api) {
  set_api_once(api);
  if (sqlite3_libversion_number() < MP_MIN_SQLITE) {
    *err = sqlite3_mprintf(
        "modelpack needs SQLite 3.38.0 or later; this program uses SQLite %s",
        sqlite3_libversion());
    return SQLITE_ERROR;
  }
  /* Loading twice must not replace the registry the tables already use. */
  if (already_loaded(db)) return SQLITE_OK;
  mp_registry *r = mp_registry_new();
  if (!r) return SQLITE_NOMEM;
  /* From here the module owns the registry and frees it at close. */
  int rc = mp_register_vtab(db, r);
  if (rc != SQLITE_OK) {
    *err = sqlite3_mprintf("modelpack: cannot register module: %s", sqlite3_errmsg(db));
    return rc;
  }
  rc = mp_register_unpack(db, r);
  if (rc == SQLITE_OK) rc = mp_register_query(db, r);
  if (rc == SQLITE_OK) rc = mp_register_functions(db, r);
  if (rc == SQLITE_OK) rc = mp_register_stored(db, r);
  if (rc != SQLITE_OK) {
    *err = sqlite3_mprintf("modelpack: cannot register functions: %s", sqlite3_errmsg(db));
    /* SQLite unloads the library after a failed init: take back every
     * pointer into it (the module's destructor would run at close). */
    mp_register_stored(db, NULL);
    mp_register_functions(db, NULL);
    mp_register_query(db, NULL);
    mp_register_unpack(db, NULL);
    mp_register_vtab(db, NULL);
  }
  return rc;
}
