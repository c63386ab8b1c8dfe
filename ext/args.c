/*
 * args.c -- the hidden-column arguments shared by model tables and
 * modelpack_query: mask, mode and batch.  Each check names the model, so a
 * bad argument reads as `modelpack: book: ...`.
 */
#include "mp_internal.h"

#define MP_MAX_BATCH 1000000

void mp_arg_mask(const mp_model *m, sqlite3_value *v, uint64_t *mask, char **err) {
  /* The column is INTEGER: '3' means 3, as it would for a table. */
  if (sqlite3_value_numeric_type(v) == SQLITE_INTEGER)
    mp_mask_check(m, sqlite3_value_int64(v), mask, err);
  else
    *err = sqlite3_mprintf("modelpack: %s: mask must be an integer (see modelpack_mask())",
                           m->name);
}

void mp_arg_mode(const mp_model *m, sqlite3_value *v, int *mode, char **err) {
  const char *s = (const char *)sqlite3_value_text(v);
  if (s && sqlite3_stricmp(s, "fast") == 0) *mode = MP_MODE_FAST;
  else if (s && sqlite3_stricmp(s, "safe") == 0) *mode = MP_MODE_SAFE;
  else if (s && sqlite3_stricmp(s, "auto") == 0) *mode = MP_MODE_AUTO;
  else
    *err = sqlite3_mprintf("modelpack: %s: mode must be 'fast', 'safe' or 'auto', not %s%s%s",
                           m->name, s ? "'" : "", s ? s : "NULL", s ? "'" : "");
}

void mp_arg_batch(const mp_model *m, sqlite3_value *v, uint32_t *batch, char **err) {
  sqlite3_int64 n = sqlite3_value_numeric_type(v) == SQLITE_INTEGER ? sqlite3_value_int64(v) : 0;
  if (n >= 1 && n <= MP_MAX_BATCH) {
    *batch = (uint32_t)n;
    return;
  }
  *err = sqlite3_mprintf("modelpack: %s: batch must be an integer from 1 to %d", m->name,
                         MP_MAX_BATCH);
}
