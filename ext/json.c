/*
 * json.c -- modelpack_json(model, blob): a packed record, readable.
 *
 * For people at the shell and for tests: a record becomes a JSON object of
 * its loaded fields, a batch an array of such objects.  BLOB values are
 * lower-case hex strings, since JSON has no bytes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp_internal.h"
#include "mp_util.h"

/* Shortest of %.15g/%.16g/%.17g that reads back as the same double. */
static void double_json(mp_str *s, double d) {
  char buf[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (strtod(buf, NULL) == d) break;
  }
  mp_str_cat(s, buf);
  /* Keep REAL distinguishable from INTEGER for JSON readers: 5.0, not 5. */
  if (!strpbrk(buf, ".e")) mp_str_cat(s, ".0");
}

static void value_json(mp_str *s, const mp_model *m, const mp_view *v, uint32_t rec, int f) {
  static const char hex[] = "0123456789abcdef";
  uint32_t n;
  const uint8_t *b;
  double d;
  if (mp_is_null(v, rec, f)) {
    mp_str_cat(s, "null");
    return;
  }
  switch (m->types[f]) {
    case MP_BOOLEAN: {
      mp_str_cat(s, mp_get_int64(v, rec, f) ? "true" : "false");
      return;
    }
    case MP_REAL:
      d = mp_get_double(v, rec, f);
      if (isnan(d)) {
        mp_str_cat(s, "null");
        return;
      }
      if (isinf(d)) {
        mp_str_cat(s, d > 0 ? "9e999" : "-9e999");
        return;
      }
      double_json(s, d);
      return;
    case MP_TEXT:
      b = mp_get_bytes(v, rec, f, &n);
      {
        mp_str_json_string(s, (const char *)b, n);
        return;
      }
    case MP_BLOB:
      b = mp_get_bytes(v, rec, f, &n);
      mp_str_cat(s, "\"");
      for (uint32_t i = 0; i < n; i++) {
        char pair[2] = {hex[b[i] >> 4], hex[b[i] & 15]};
        mp_str_append(s, pair, 2);
      }
      {
        mp_str_cat(s, "\"");
        return;
      }
    default: {
      mp_str_printf(s, "%lld", (sqlite3_int64)mp_get_int64(v, rec, f));
      return;
    }
  }
}

static void record_json(mp_str *s, const mp_model *m, const mp_view *v, uint32_t rec) {
  int first = 1;
  mp_str_cat(s, "{");
  for (int f = 0; f < m->nfield; f++) {
    if (!mp_is_loaded(v, f)) continue;
    if (!first) mp_str_cat(s, ",");
    first = 0;
    mp_str_json_string(s, m->fields[f].name, strlen(m->fields[f].name));
    mp_str_cat(s, ":");
    value_json(s, m, v, rec, f);
  }
  mp_str_cat(s, "}");
}

void mp_fn_json(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  mp_model *m = mp_fn_model(ctx, argv[0], NULL);
  mp_view view;
  char *err = NULL;
  if (!m) return;
  int rc = mp_blob_open(m, argv[1], &view, &err);
  if (rc != SQLITE_OK) {
    mp_fn_error(ctx, rc, err);
    return;
  }
  mp_str s = {0};
  int batch = view.count > 1 || (view.flags & MP_FLAG_BATCH);
  if (batch) mp_str_cat(&s, "[");
  for (uint32_t r = 0; r < view.count; r++) {
    if (r) mp_str_cat(&s, ",");
    record_json(&s, m, &view, r);
  }
  if (batch) mp_str_cat(&s, "]");
  char *json = mp_str_finish(&s);
  if (!json) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  sqlite3_result_text(ctx, json, -1, sqlite3_free);
  sqlite3_result_subtype(ctx, 'J');
}
