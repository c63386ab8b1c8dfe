/*
 * layout.c -- modelpack_layout(model [, mask]): the record layout as JSON.
 *
 * Clients in any language build their decoder from this at run time: the
 * offsets and formats come from the same functions in include/modelpack.h
 * that the packer uses, so they cannot drift from what is emitted.
 */
#include <string.h>

#include "mp_internal.h"
#include "mp_util.h"

static const char *slot_format(int type) {
  switch (type) {
    case MP_REAL:
      return "d";
    case MP_TEXT:
    case MP_BLOB:
      return "II";
    default:
      return "q";
  }
}

static void field_json(mp_str *s, const mp_model *m, int i, uint64_t mask, uint64_t setattr) {
  const mp_field *f = &m->fields[i];
  int loaded = (int)((mask >> i) & 1);
  mp_str_printf(s, "%s{\"index\":%d,\"name\":", i ? "," : "", i);
  mp_str_json_string(s, f->name, strlen(f->name));
  mp_str_printf(s, ",\"type\":\"%s\",\"column\":", mp_type_name(f->type));
  mp_str_json_string(s, f->column, strlen(f->column));
  mp_str_printf(s, ",\"notnull\":%s,\"pk\":%s,\"hooked\":%s,\"loaded\":%s,",
                f->notnull ? "true" : "false", i == m->pk ? "true" : "false",
                (setattr >> i) & 1 ? "true" : "false", loaded ? "true" : "false");
  if (loaded)
    mp_str_printf(s, "\"offset\":%u,\"size\":8,\"format\":\"%s\"}", mp_slot_offset(mask, i),
                  slot_format(f->type));
  else
    mp_str_cat(s, "\"offset\":null,\"size\":0,\"format\":null}");
}

static char *layout_json(const mp_model *m, const mp_entry *e, uint64_t mask) {
  mp_str s = {0};
  uint64_t setattr = m->setattr | e->setattr;
  char *hooks = mp_hooks_format(m, m->hooks | e->hooks, setattr);
  mp_str_cat(&s, "{\"model\":");
  mp_str_json_string(&s, m->name, strlen(m->name));
  mp_str_printf(&s,
                ",\"layout_version\":%d,\"header_size\":%d,\"mask\":%lld,"
                "\"fingerprint\":\"%016llx\",\"record_size\":%u,\"pk\":%d,"
                "\"hooks\":",
                MP_LAYOUT_VERSION, MP_HEADER_SIZE, (sqlite3_int64)mask,
                (unsigned long long)mp_fingerprint(m->names, m->types, m->nfield, mask),
                mp_record_size(mask), m->pk);
  mp_str_json_string(&s, hooks ? hooks : "", hooks ? strlen(hooks) : 0);
  mp_str_cat(&s, ",\"struct\":\"<Q");
  for (int i = 0; i < m->nfield; i++)
    if ((mask >> i) & 1) mp_str_cat(&s, slot_format(m->types[i]));
  mp_str_cat(&s, "\",\"fields\":[");
  for (int i = 0; i < m->nfield; i++) field_json(&s, m, i, mask, setattr);
  mp_str_cat(&s, "]}");
  if (!hooks) s.oom = 1;
  sqlite3_free(hooks);
  return mp_str_finish(&s);
}

void mp_fn_layout(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  mp_entry *e = NULL;
  mp_model *m = mp_fn_model(ctx, argv[0], &e);
  uint64_t mask = m ? mp_all_fields(m->nfield) : 0;
  char *err = NULL;
  if (!m) return;
  if (argc > 1 && sqlite3_value_type(argv[1]) != SQLITE_NULL) {
    if (sqlite3_value_numeric_type(argv[1]) != SQLITE_INTEGER) {
      err = sqlite3_mprintf("modelpack: %s: mask must be an integer", m->name);
      {
        mp_fn_error(ctx, SQLITE_ERROR, err);
        return;
      }
    }
    int rc = mp_mask_check(m, sqlite3_value_int64(argv[1]), &mask, &err);
    if (rc != SQLITE_OK) {
      mp_fn_error(ctx, rc, err);
      return;
    }
  }
  char *json = layout_json(m, e, mask);
  if (!json) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  sqlite3_result_text(ctx, json, -1, sqlite3_free);
  sqlite3_result_subtype(ctx, 'J'); /* usable directly by SQLite's json functions */
}
