/*
 * fuzz_blob.c -- libFuzzer target: include/modelpack.h's validator and
 * getters on arbitrary bytes.
 *
 * mp_view_open() is the one gate between untrusted blobs (other models,
 * other versions, corrupted files, hostile databases) and the getters that
 * read records at computed offsets without further checks; every client
 * and every SQL function that takes a blob relies on it.  This target:
 *   - opens the bytes with and without an expected fingerprint, and checks
 *     the verdict and the reason against ref_open(), a deliberately plain
 *     re-statement of the rules in docs/FORMAT.md ("Validating untrusted
 *     blobs"), so the validator can neither reject good blobs nor accept
 *     bad ones unnoticed;
 *   - on acceptance reads every loaded field of every record with every
 *     getter, touches every byte of every TEXT/BLOB value and its NUL,
 *     and checks that each value lies inside the heap: under ASan any read
 *     outside the blob (which sits in a malloc block of exactly its size)
 *     is a report, and a read inside the blob but outside the heap is an
 *     abort here;
 *   - then decodes by a layout the way a client does (types from a fixed
 *     wide layout, the book model of docs/SQL.md, or the input itself).
 *
 * Input: byte 0 picks the layout (bits 0-1) and which header parts
 * fz_fixup() repairs (bits 2-5); with the "input" layout, byte 1 is the
 * field count and the next bytes the types.  The rest is the blob.
 * test/fuzz/replay.c runs the same entry point without libFuzzer (make test).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../include/modelpack.h"
#include "fuzz_fixup.c"

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "fuzz_blob: %s:%d: check failed: %s\n", __FILE__,   \
              __LINE__, #cond);                                            \
      abort();                                                             \
    }                                                                      \
  } while (0)

/* A sink the optimizer cannot drop, so every getter's read really happens. */
static volatile uint64_t sink;

/* ---- the rules of docs/FORMAT.md, written out plainly ---- */

static uint64_t rd(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static int bits(uint64_t x) {
  int n = 0;
  for (int i = 0; i < 64; i++) n += (int)((x >> i) & 1);
  return n;
}

/* NULL if the blob is acceptable, else the reason FORMAT.md gives. */
static const char *ref_open(const uint8_t *b, size_t len, uint64_t expected_fp) {
  if (len < 48) return "too short for a modelpack header";
  if (memcmp(b, "MPAK", 4) != 0) return "not a modelpack blob (bad magic)";
  if (rd(b + 4, 2) != 1) return "unsupported layout version";
  uint64_t flags = rd(b + 6, 2), count = rd(b + 8, 4), record_size = rd(b + 12, 4);
  uint64_t fp = rd(b + 16, 8), mask = rd(b + 24, 8), varmask = rd(b + 32, 8);
  uint64_t heap_size = rd(b + 40, 4), reserved = rd(b + 44, 4);
  if (flags & ~(uint64_t)7) return "unknown header flags";
  if (reserved != 0) return "reserved header bytes are not zero";
  if (mask == 0 || (varmask & ~mask)) return "inconsistent field masks";
  if (record_size != 8 * (uint64_t)(1 + bits(mask))) return "record size does not match the mask";
  if (count == 0) return "no records";
  if (expected_fp && fp != expected_fp)
    return "blob belongs to another model or mask (fingerprint mismatch)";
  if (48 + count * record_size + heap_size != len) return "blob length does not match its header";
  uint64_t heap = 48 + count * record_size;
  for (uint64_t r = 0; r < count; r++) {
    uint64_t rec = 48 + r * record_size;
    uint64_t nulls = rd(b + rec, 8);
    if (nulls & ~mask) return "null bit set for a deferred field";
    uint64_t slot = rec + 8;
    for (int i = 0; i < 64; i++) {
      if (!((mask >> i) & 1)) continue;
      if ((nulls >> i) & 1) {
        if (rd(b + slot, 8) != 0) return "NULL field with a non-zero slot";
      } else if ((varmask >> i) & 1) {
        uint64_t off = rd(b + slot, 4), n = rd(b + slot + 4, 4);
        if (off + n + 1 > heap_size) return "value past the end of the heap";
        if (b[heap + off + n] != 0) return "heap value not NUL-terminated";
      }
      slot += 8;
    }
  }
  return NULL;
}

/* ---- reading an accepted blob ---- */

static void touch_value(const mp_view *v, const uint8_t *blob, size_t len, uint32_t r, int f) {
  uint32_t n = 0;
  const uint8_t *p = mp_get_bytes(v, r, f, &n);
  /* Inside the heap, the terminating 0 included: not just inside the blob. */
  CHECK(p >= v->heap && (uint64_t)(p - v->heap) + n + 1 <= v->heap_size);
  CHECK(v->heap + v->heap_size == blob + len);
  uint64_t acc = 0;
  for (uint32_t i = 0; i < n; i++) acc += p[i];
  CHECK(p[n] == 0);
  sink += acc;
}

static void read_all(const mp_view *v, const uint8_t *blob, size_t len) {
  CHECK(v->records == blob + MP_HEADER_SIZE);
  CHECK(v->record_size == mp_record_size(v->mask));
  for (uint32_t r = 0; r < v->count; r++) {
    const uint8_t *rec = mp_record(v, r);
    CHECK(rec + v->record_size <= v->heap);
    for (int f = 0; f < MP_MAX_FIELDS; f++) {
      if (!mp_is_loaded(v, f)) continue;
      CHECK(mp_slot_offset(v->mask, f) + MP_SLOT_SIZE <= v->record_size);
      int null = mp_is_null(v, r, f);
      int64_t i = mp_get_int64(v, r, f);
      double d = mp_get_double(v, r, f);
      uint64_t u;
      memcpy(&u, &d, sizeof u);
      CHECK((uint64_t)i == u);
      if (null) CHECK(i == 0); /* a NULL slot is all zero */
      sink += (uint64_t)i;
      if (!null && ((v->varmask >> f) & 1)) touch_value(v, blob, len, r, f);
    }
  }
}

/* What a client does: refuse a blob whose TEXT/BLOB set does not match its
 * layout (as ext/blob.c does), then read each field by its type. */
static void read_typed(const mp_view *v, const fz_layout *l, const uint8_t *blob, size_t len) {
  if (v->mask & ~mp_all_fields(l->n)) return;
  if (v->varmask != (fz_varfields(l) & v->mask)) return;
  for (uint32_t r = 0; r < v->count; r++) {
    for (int f = 0; f < l->n; f++) {
      if (!mp_is_loaded(v, f) || mp_is_null(v, r, f)) continue;
      switch (l->types[f]) {
        case MP_REAL: {
          double d = mp_get_double(v, r, f);
          sink += d != d; /* NaN from the input is fine */
          break;
        }
        case MP_TEXT:
        case MP_BLOB:
          touch_value(v, blob, len, r, f);
          break;
        default:
          sink += (uint64_t)mp_get_int64(v, r, f);
          break;
      }
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned ctl = data[0];
  data++, size--;
  fz_layout l;
  switch (ctl & 3) {
    case 0: fz_layout_cycle(&l, MP_MAX_FIELDS); break;
    case 1: fz_layout_cycle(&l, 6); /* the book model's shape */
            l.types[1] = MP_TEXT, l.types[2] = MP_REAL, l.types[3] = MP_BLOB;
            l.types[4] = MP_BOOLEAN, l.types[5] = MP_INTEGER;
            break;
    default: {
      if (size < 1) return 0;
      int n = 1 + data[0] % MP_MAX_FIELDS;
      data++, size--;
      if (size < (size_t)n) return 0;
      fz_layout_bytes(&l, data, n);
      data += n, size -= (size_t)n;
      break;
    }
  }

  /* An exact-size copy: ASan reports the first byte read past the end. */
  uint8_t *blob = calloc(1, size ? size : 1);
  if (!blob) return 0;
  if (size) memcpy(blob, data, size);
  fz_fixup(blob, size, (ctl >> 2) & 0xF, &l);

  mp_view v;
  const char *why = NULL;
  const char *ref = ref_open(blob, size, 0);
  int ok = mp_view_open(&v, size ? blob : NULL, size, 0, &why);
  if (ok != (ref == NULL) || (!ok && (!why || strcmp(why, ref) != 0))) {
    fprintf(stderr, "fuzz_blob: mp_view_open says %s, FORMAT.md says %s\n",
            ok ? "accept" : why ? why : "(no reason)", ref ? ref : "accept");
    abort();
  }
  if (ok) {
    read_all(&v, blob, size);
    read_typed(&v, &l, blob, size);
  }

  /* With the fingerprint the layout expects for the blob's own mask. */
  if (size >= MP_HEADER_SIZE) {
    uint64_t mask = mp_rd64(blob + MP_H_MASK);
    uint64_t fp = mp_fingerprint(l.names, l.types, l.n, mask);
    if (fp == 0) fp = 1; /* 0 means "do not check" */
    mp_view v2;
    const char *why2 = NULL;
    ref = ref_open(blob, size, fp);
    ok = mp_view_open(&v2, blob, size, fp, &why2);
    if (ok != (ref == NULL) || (!ok && (!why2 || strcmp(why2, ref) != 0))) {
      fprintf(stderr, "fuzz_blob: with a fingerprint, mp_view_open says %s, FORMAT.md says %s\n",
              ok ? "accept" : why2 ? why2 : "(no reason)", ref ? ref : "accept");
      abort();
    }
    if (ok) {
      CHECK(v2.fingerprint == fp);
      read_typed(&v2, &l, blob, size);
    }
  }
  free(blob);
  return 0;
}
