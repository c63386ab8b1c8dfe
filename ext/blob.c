/*
 * blob.c -- accept a blob handed to SQL and read fields out of it.
 *
 * Any blob a function or the unpack column receives may come from anywhere,
 * so it goes through mp_view_open() (include/modelpack.h) and is then
 * matched against the named model: its mask must fit the model and its
 * fingerprint must be the model's for that mask.
 */
#include "mp_internal.h"

static int blob_error(const mp_model *m, const char *why, char **err) {
  *err = sqlite3_mprintf("modelpack: %s: %s", m->name, why);
  return SQLITE_ERROR;
}

int mp_blob_open(const mp_model *m, sqlite3_value *v, mp_view *view,
                 char **err) {
  const char *why = NULL;
  int t = sqlite3_value_type(v);
  if (t != SQLITE_BLOB) {
    *err = sqlite3_mprintf("modelpack: %s: expected a packed blob, got %s",
                           m->name, t == SQLITE_NULL ? "NULL"
                                    : t == SQLITE_TEXT ? "TEXT"
                                    : t == SQLITE_INTEGER ? "INTEGER" : "REAL");
    return SQLITE_ERROR;
  }
  const void *p = sqlite3_value_blob(v);
  int n = sqlite3_value_bytes(v);
  if (!mp_view_open(view, p, (size_t)n, 0, &why)) return blob_error(m, why, err);
  if (view->mask & ~mp_all_fields(m->nfield) ||
      mp_fingerprint(m->names, m->types, m->nfield, view->mask) != view->fingerprint)
    return blob_error(m, "blob belongs to another model or mask (fingerprint mismatch)", err);
  uint64_t var = 0;
  for (int i = 0; i < m->nfield; i++)
    if (m->types[i] == MP_TEXT || m->types[i] == MP_BLOB) var |= (uint64_t)1 << i;
  if (view->varmask != (var & view->mask))
    return blob_error(m, "damaged blob (text/blob field set does not match the model)", err);
  return SQLITE_OK;
}

void mp_result_field(sqlite3_context *ctx, const mp_model *m,
                     const mp_view *view, uint32_t rec, int field) {
  if (!mp_is_loaded(view, field) || mp_is_null(view, rec, field)) {
    sqlite3_result_null(ctx);
    return;
  }
  uint32_t n;
  const uint8_t *b;
  switch (m->types[field]) {
    case MP_REAL:
      sqlite3_result_double(ctx, mp_get_double(view, rec, field));
      break;
    case MP_TEXT:
      b = mp_get_bytes(view, rec, field, &n);
      sqlite3_result_text64(ctx, (const char *)b, n, SQLITE_TRANSIENT, SQLITE_UTF8);
      break;
    case MP_BLOB:
      b = mp_get_bytes(view, rec, field, &n);
      sqlite3_result_blob64(ctx, b, n, SQLITE_TRANSIENT);
      break;
    default:
      sqlite3_result_int64(ctx, mp_get_int64(view, rec, field));
      break;
  }
}
