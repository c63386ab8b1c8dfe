/*
 * util.c -- helpers shared by the extension's files: identifier quoting,
 * case-insensitive comparison as SQLite does it, UTF-8 validation for safe
 * packing, and mp_str, a growable buffer for SQL and JSON text.
 */
#include <stdarg.h>
#include <string.h>

#include "mp_internal.h"
#include "mp_util.h"

char *mp_strdup(const char *s) {
  return s ? sqlite3_mprintf("%s", s) : NULL;
}

char *mp_quote_ident(const char *s) { return sqlite3_mprintf("\"%w\"", s); }

int mp_stricmp(const char *a, const char *b) { return sqlite3_stricmp(a, b); }

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
int mp_utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int len;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return 0;
    if (n - i < (size_t)len) return 0;
    unsigned cp = c & (0x7F >> len);
    for (int k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += (size_t)len;
  }
  return 1;
}

void mp_str_append(mp_str *s, const char *z, size_t n) {
  if (s->oom) return;
  if (s->n + n + 1 > s->alloc) {
    size_t a = s->alloc ? s->alloc * 2 : 128;
    while (a < s->n + n + 1) a *= 2;
    char *nz = sqlite3_realloc64(s->z, a);
    if (!nz) {
      s->oom = 1;
      return;
    }
    s->z = nz;
    s->alloc = a;
  }
  memcpy(s->z + s->n, z, n);
  s->n += n;
  s->z[s->n] = 0;
}

void mp_str_cat(mp_str *s, const char *z) { mp_str_append(s, z, strlen(z)); }

void mp_str_printf(mp_str *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *z = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  if (!z) {
    s->oom = 1;
    return;
  }
  mp_str_cat(s, z);
  sqlite3_free(z);
}

void mp_str_json_string(mp_str *s, const char *z, size_t n) {
  static const char hex[] = "0123456789abcdef";
  mp_str_append(s, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)z[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    mp_str_append(s, z + run, i - run);
    run = i + 1;
    char esc[7] = {'\\', (char)c, 0};
    if (c < 0x20) {
      esc[1] = 'u', esc[2] = '0', esc[3] = '0';
      esc[4] = hex[c >> 4], esc[5] = hex[c & 15], esc[6] = 0;
    }
    mp_str_cat(s, esc);
  }
  mp_str_append(s, z + run, n - run);
  mp_str_append(s, "\"", 1);
}

char *mp_str_finish(mp_str *s) {
  char *z = s->oom ? NULL : s->z;
  if (s->oom) sqlite3_free(s->z);
  if (z == NULL && !s->oom) z = sqlite3_mprintf("");
  memset(s, 0, sizeof *s);
  return z;
}
