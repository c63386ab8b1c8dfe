/*
 * hooks.c -- signal-hook flags and the automatic fast/safe choice.
 *
 * A model's hooks say what would make a client's fast constructor wrong:
 * pre_init/post_init receivers, a custom __init__ (model level), or a setter
 * on one field (setattr).  They come from the declaration (`hooks = ...`,
 * `HOOKED`) and, per connection, from modelpack_hooks().  Auto mode packs
 * fast exactly when nothing that this query loads is hooked.
 */
#include <string.h>

#include "mp_internal.h"
#include "mp_util.h"

static const struct {
  const char *name;
  unsigned flag;
} model_hooks[] = {{"pre_init", MP_HOOK_PRE_INIT},
                   {"post_init", MP_HOOK_POST_INIT},
                   {"custom_init", MP_HOOK_CUSTOM_INIT}};
#define N_MODEL_HOOKS 3

static int parse_item(const mp_model *m, const char *z, int n, unsigned *hooks,
                      uint64_t *setattr, char **err) {
  for (int i = 0; i < N_MODEL_HOOKS; i++) {
    if ((int)strlen(model_hooks[i].name) == n &&
        sqlite3_strnicmp(z, model_hooks[i].name, n) == 0) {
      *hooks |= model_hooks[i].flag;
      return SQLITE_OK;
    }
  }
  if (n > 8 && sqlite3_strnicmp(z, "setattr:", 8) == 0) {
    char *field = sqlite3_mprintf("%.*s", n - 8, z + 8);
    if (!field) return SQLITE_NOMEM;
    int f = mp_model_field(m, field);
    if (f < 0)
      *err = sqlite3_mprintf("modelpack: %s: setattr hook names unknown field '%s'",
                             m->name, field);
    else
      *setattr |= (uint64_t)1 << f;
    sqlite3_free(field);
    return f < 0 ? SQLITE_ERROR : SQLITE_OK;
  }
  *err = sqlite3_mprintf(
      "modelpack: %s: unknown hook '%.*s' (known: pre_init, post_init, "
      "custom_init, setattr:<field>)",
      m->name, n, z);
  return SQLITE_ERROR;
}

int mp_hooks_parse(const mp_model *m, const char *spec, unsigned *hooks,
                   uint64_t *setattr, char **err) {
  *hooks = 0;
  *setattr = 0;
  while (*spec) {
    while (*spec == ' ' || *spec == ',' || *spec == '\t') spec++;
    int n = 0;
    while (spec[n] && spec[n] != ',') n++;
    while (n > 0 && (spec[n - 1] == ' ' || spec[n - 1] == '\t')) n--;
    if (n > 0) {
      int rc = parse_item(m, spec, n, hooks, setattr, err);
      if (rc != SQLITE_OK) return rc;
    }
    spec += n;
    while (*spec && *spec != ',') spec++;
  }
  return SQLITE_OK;
}

char *mp_hooks_format(const mp_model *m, unsigned hooks, uint64_t setattr) {
  mp_str s = {0};
  for (int i = 0; i < N_MODEL_HOOKS; i++)
    if (hooks & model_hooks[i].flag)
      mp_str_printf(&s, "%s%s", s.n ? "," : "", model_hooks[i].name);
  for (int i = 0; i < m->nfield; i++)
    if ((setattr >> i) & 1)
      mp_str_printf(&s, "%ssetattr:%s", s.n ? "," : "", m->fields[i].name);
  return mp_str_finish(&s);
}

int mp_auto_is_safe(const mp_model *m, const mp_entry *e, uint64_t mask) {
  unsigned hooks = m->hooks | (e ? e->hooks : 0);
  uint64_t setattr = m->setattr | (e ? e->setattr : 0);
  return hooks != 0 || (setattr & mask) != 0;
}
