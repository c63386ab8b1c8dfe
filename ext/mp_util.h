/*
 * mp_util.h -- small helpers with no SQLite-model knowledge: identifier
 * quoting, string duplication and comparison, UTF-8 validation, and a
 * growable string buffer used to build SQL and JSON text.
 */
#ifndef MP_UTIL_H
#define MP_UTIL_H

#include <stddef.h>
#include <stdint.h>

int mp_utf8_valid(const unsigned char *s, size_t n);

typedef struct mp_str {
  char *z;
  size_t n, alloc;
  int oom;
} mp_str;
void mp_str_append(mp_str *s, const char *z, size_t n);
void mp_str_cat(mp_str *s, const char *z);
void mp_str_printf(mp_str *s, const char *fmt, ...);
void mp_str_json_string(mp_str *s, const char *z, size_t n);
/* Hand the text over (NULL after OOM); the buffer is then empty. */
char *mp_str_finish(mp_str *s);

#endif
