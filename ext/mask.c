/*
 * mask.c -- deferred-field masks.
 *
 * Bit i of a mask is field i in declaration order; a clear bit defers the
 * field (not read from the source, no slot in the record).  The primary key
 * is always loaded, so every function here adds its bit.
 */
#include <string.h>

#include "mp_internal.h"

int mp_mask_from_names(const mp_model *m, const char *list, uint64_t *mask,
                       char **err) {
  uint64_t out = (uint64_t)1 << m->pk;
  while (*list) {
    while (*list == ' ' || *list == ',' || *list == '\t') list++;
    int n = 0;
    while (list[n] && list[n] != ',') n++;
    int len = n;
    while (len > 0 && (list[len - 1] == ' ' || list[len - 1] == '\t')) len--;
    if (len > 0) {
      char *name = sqlite3_mprintf("%.*s", len, list);
      if (!name) return SQLITE_NOMEM;
      int f = mp_model_field(m, name);
      if (f < 0)
        *err = sqlite3_mprintf("modelpack: %s: no field named '%s'", m->name,
                               name);
      sqlite3_free(name);
      if (f < 0) return SQLITE_ERROR;
      out |= (uint64_t)1 << f;
    }
    list += n;
  }
  *mask = out;
  return SQLITE_OK;
}

int mp_mask_check(const mp_model *m, sqlite3_int64 v, uint64_t *mask,
                  char **err) {
  uint64_t u = (uint64_t)v;
  if (u & ~mp_all_fields(m->nfield)) {
    *err = sqlite3_mprintf(
        "modelpack: %s: mask %lld has bits for fields that do not exist "
        "(the model has %d fields)",
        m->name, v, m->nfield);
    return SQLITE_ERROR;
  }
  *mask = u | ((uint64_t)1 << m->pk);
  return SQLITE_OK;
}
