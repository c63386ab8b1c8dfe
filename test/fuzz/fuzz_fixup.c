/*
 * fuzz_fixup.c -- blob helpers shared by the fuzz targets that feed packed
 * blobs (fuzz_blob.c, fuzz_sqlblob.c).  #included, not compiled on its own.
 *
 * Random bytes almost never pass mp_view_open()'s header checks, and never
 * carry the fingerprint of a model (a 64-bit FNV hash), so without help the
 * fuzzer would spend its time on the first few checks.  fz_fixup() can
 * repair a chosen subset of the header (magic, version, record size, heap
 * size, varmask, fingerprint) from the rest, so the record checks and the
 * getters behind them see mostly well-formed input; the control byte that
 * picks the subset comes from the input, so the unrepaired paths are
 * fuzzed too.  The field names and types of a layout are also chosen here.
 */
#include <stdint.h>
#include <string.h>

#include "../../include/modelpack.h"

/* Which parts of the header fz_fixup() repairs. */
#define FZ_FIX_MAGIC 0x01   /* magic, version, reserved, known flags only */
#define FZ_FIX_SIZES 0x02   /* record_size from the mask, heap_size from len */
#define FZ_FIX_VARMASK 0x04 /* varmask = the layout's TEXT/BLOB fields & mask */
#define FZ_FIX_FP 0x08      /* fingerprint of the layout for the blob's mask */

/* A layout: what a client builds its decoder from. */
typedef struct fz_layout {
  int n;
  const char *names[MP_MAX_FIELDS];
  unsigned char types[MP_MAX_FIELDS];
} fz_layout;

static const char *const fz_field_names[MP_MAX_FIELDS] = {
    "f0",  "f1",  "f2",  "f3",  "f4",  "f5",  "f6",  "f7",  "f8",  "f9",  "f10",
    "f11", "f12", "f13", "f14", "f15", "f16", "f17", "f18", "f19", "f20", "f21",
    "f22", "f23", "f24", "f25", "f26", "f27", "f28", "f29", "f30", "f31", "f32",
    "f33", "f34", "f35", "f36", "f37", "f38", "f39", "f40", "f41", "f42", "f43",
    "f44", "f45", "f46", "f47", "f48", "f49", "f50", "f51", "f52", "f53", "f54",
    "f55", "f56", "f57", "f58", "f59", "f60", "f61", "f62", "f63"};

/* Field i of the fixed wide layout cycles through the five types. */
static inline void fz_layout_cycle(fz_layout *l, int n) {
  l->n = n;
  for (int i = 0; i < n; i++) {
    l->names[i] = fz_field_names[i];
    l->types[i] = (unsigned char)(MP_INTEGER + i % 5);
  }
}

/* Types taken from input bytes (each mapped onto a valid code). */
static inline void fz_layout_bytes(fz_layout *l, const uint8_t *b, int n) {
  l->n = n;
  for (int i = 0; i < n; i++) {
    l->names[i] = fz_field_names[i];
    l->types[i] = (unsigned char)(MP_INTEGER + b[i] % 5);
  }
}

static inline uint64_t fz_varfields(const fz_layout *l) {
  uint64_t var = 0;
  for (int i = 0; i < l->n; i++)
    if (l->types[i] == MP_TEXT || l->types[i] == MP_BLOB) var |= (uint64_t)1 << i;
  return var;
}

/* Repair the header of blob[0..len) as `what` says; the layout is only
 * needed for FZ_FIX_VARMASK and FZ_FIX_FP. */
static inline void fz_fixup(uint8_t *b, size_t len, unsigned what, const fz_layout *l) {
  if (len < MP_HEADER_SIZE) return;
  if (what & FZ_FIX_MAGIC) {
    memcpy(b + MP_H_MAGIC, MP_MAGIC, 4);
    mp_wr16(b + MP_H_VERSION, MP_LAYOUT_VERSION);
    mp_wr16(b + MP_H_FLAGS, (uint16_t)(mp_rd16(b + MP_H_FLAGS) & MP_FLAGS_KNOWN));
    mp_wr32(b + MP_H_RESERVED, 0);
  }
  uint64_t mask = mp_rd64(b + MP_H_MASK);
  if (l && l->n < MP_MAX_FIELDS && (what & (FZ_FIX_VARMASK | FZ_FIX_FP))) {
    /* A client's layout has l->n fields: keep the mask inside it. */
    mask &= mp_all_fields(l->n);
    if (!mask) mask = 1;
    mp_wr64(b + MP_H_MASK, mask);
  }
  if (l && (what & FZ_FIX_VARMASK)) mp_wr64(b + MP_H_VARMASK, fz_varfields(l) & mask);
  if (what & FZ_FIX_SIZES) {
    uint32_t rs = mp_record_size(mask);
    mp_wr32(b + MP_H_RECORD_SIZE, rs);
    uint64_t count = mp_rd32(b + MP_H_COUNT);
    uint64_t body = MP_HEADER_SIZE + count * rs;
    /* Shrink an impossible count to what the bytes can hold. */
    if (body > len) {
      count = (len - MP_HEADER_SIZE) / rs;
      if (count == 0) count = 1;
      mp_wr32(b + MP_H_COUNT, (uint32_t)count);
      body = MP_HEADER_SIZE + count * rs;
    }
    if (body <= len && len - body <= UINT32_MAX) mp_wr32(b + MP_H_HEAP_SIZE, (uint32_t)(len - body));
  }
  if (l && (what & FZ_FIX_FP)) mp_wr64(b + MP_H_FINGERPRINT, mp_fingerprint(l->names, l->types, l->n, mask));
}
