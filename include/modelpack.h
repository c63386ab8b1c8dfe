/*
 * modelpack.h -- the packed-record layout (v1) and a header-only decoder.
 *
 * This is the single definition of the binary layout that the modelpack
 * SQLite extension emits (docs/FORMAT.md describes it in prose).  The
 * extension itself includes this file to write records, and any C client
 * includes it to validate and read them, so the two can never disagree.
 *
 * A blob is one header followed by `count` fixed-size records laid end to
 * end, followed by one heap that holds the bytes of every TEXT and BLOB value
 * of those records.  A per-row blob is simply a blob with count == 1, so the
 * same code reads rows and batches.
 *
 *   offset 0   header (MP_HEADER_SIZE bytes, see the MP_H_* offsets)
 *   offset 48  record 0, record 1, ... (record_size bytes each, 8-aligned)
 *   then       heap (heap_size bytes)
 *
 * Record: a 64-bit null bitmap (bit i set = field i is NULL), then one 8-byte
 * slot per *loaded* field, in declaration order.  Deferred fields (bit clear
 * in the mask) take no slot.  Slot contents by field type:
 *   INTEGER, BOOLEAN  int64 (BOOLEAN is 0 or 1)
 *   REAL              IEEE-754 double
 *   TEXT, BLOB        uint32 offset into the heap, then uint32 byte length;
 *                     the heap byte after the value is always 0, so TEXT
 *                     can be used as a C string.
 * A NULL value has an all-zero slot.  Everything is little-endian.
 *
 * Nothing in a blob is trusted until mp_view_open() has accepted it: after
 * that, the getters below read only inside the blob for any record index
 * below count and any loaded field.
 */
#ifndef MODELPACK_H
#define MODELPACK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MP_LAYOUT_VERSION 1
#define MP_MAX_FIELDS 64
#define MP_HEADER_SIZE 48
#define MP_SLOT_SIZE 8
#define MP_MAGIC "MPAK"

/* Byte offsets of the header fields. */
#define MP_H_MAGIC 0        /* 4 bytes "MPAK" */
#define MP_H_VERSION 4      /* uint16: MP_LAYOUT_VERSION */
#define MP_H_FLAGS 6        /* uint16: MP_FLAG_* */
#define MP_H_COUNT 8        /* uint32: number of records, >= 1 */
#define MP_H_RECORD_SIZE 12 /* uint32: 8 + 8 * popcount(mask) */
#define MP_H_FINGERPRINT 16 /* uint64: mp_fingerprint(fields, mask) */
#define MP_H_MASK 24        /* uint64: loaded fields */
#define MP_H_VARMASK 32     /* uint64: loaded TEXT/BLOB fields */
#define MP_H_HEAP_SIZE 40   /* uint32: bytes of heap after the records */
#define MP_H_RESERVED 44    /* uint32: 0 */

/* Header flags. */
#define MP_FLAG_SAFE 0x0001  /* safe-packed: every value was checked */
#define MP_FLAG_BATCH 0x0002 /* emitted as a batch (count may still be 1) */
#define MP_FLAG_ASCII 0x0004 /* every TEXT byte in the heap is < 0x80 */
#define MP_FLAGS_KNOWN (MP_FLAG_SAFE | MP_FLAG_BATCH | MP_FLAG_ASCII)

/* Field type codes (also hashed into the fingerprint). */
enum mp_type {
  MP_INTEGER = 1,
  MP_REAL = 2,
  MP_TEXT = 3,
  MP_BLOB = 4,
  MP_BOOLEAN = 5
};

/* ---- little-endian access, independent of host byte order ---- */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* Host order is the layout's: one unaligned load or store each. */
static inline uint16_t mp_rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t mp_rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t mp_rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void mp_wr16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void mp_wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void mp_wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
#else
static inline uint16_t mp_rd16(const uint8_t *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t mp_rd32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}
static inline uint64_t mp_rd64(const uint8_t *p) {
  return (uint64_t)mp_rd32(p) | ((uint64_t)mp_rd32(p + 4) << 32);
}
static inline void mp_wr16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void mp_wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}
static inline void mp_wr64(uint8_t *p, uint64_t v) {
  mp_wr32(p, (uint32_t)v);
  mp_wr32(p + 4, (uint32_t)(v >> 32));
}
#endif

/* Inline bit counting: __builtin_popcountll is a library call unless the
 * target has POPCNT, and these sit on every field access. */
static inline int mp_popcount64(uint64_t x) {
#if defined(__POPCNT__) && (defined(__GNUC__) || defined(__clang__))
  return __builtin_popcountll(x);
#else
  x = x - ((x >> 1) & 0x5555555555555555ULL);
  x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
  return (int)((x * 0x0101010101010101ULL) >> 56);
#endif
}

/* Index of the lowest set bit; x must be non-zero. */
static inline int mp_lowest_bit(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_ctzll(x);
#else
  int n = 0;
  while (!(x & 1)) x >>= 1, n++;
  return n;
#endif
}

/* Mask with one bit per field of an n-field model. */
static inline uint64_t mp_all_fields(int n) {
  return n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1);
}

/* Bytes of one record for a given mask. */
static inline uint32_t mp_record_size(uint64_t mask) {
  return (uint32_t)(MP_SLOT_SIZE * (1 + mp_popcount64(mask)));
}

/* Offset of field i's slot inside a record; field i must be loaded. */
static inline uint32_t mp_slot_offset(uint64_t mask, int i) {
  uint64_t below = i == 0 ? 0 : (mask & (~(uint64_t)0 >> (64 - i)));
  return (uint32_t)(MP_SLOT_SIZE * (1 + mp_popcount64(below)));
}

/*
 * Fingerprint of a layout: FNV-1a 64 over each field's name, a 0 byte and
 * its type code, in declaration order, then the 8 little-endian mask bytes.
 * A client computes it from the layout it built its decoder for and compares
 * it with the blob's, so a blob of another model or mask is refused.
 */
static inline uint64_t mp_fnv(uint64_t h, const void *p, size_t n) {
  const uint8_t *b = (const uint8_t *)p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}
static inline uint64_t mp_fingerprint(const char *const *names,
                                      const unsigned char *types, int n,
                                      uint64_t mask) {
  uint64_t h = 0xcbf29ce484222325ULL;
  uint8_t m[8];
  for (int i = 0; i < n; i++) {
    uint8_t tail[2] = {0, types[i]};
    h = mp_fnv(h, names[i], strlen(names[i]));
    h = mp_fnv(h, tail, 2);
  }
  mp_wr64(m, mask);
  return mp_fnv(h, m, 8);
}

/* ---- reading ---- */

typedef struct mp_view {
  const uint8_t *records; /* first record */
  const uint8_t *heap;    /* heap_size bytes */
  uint64_t fingerprint, mask, varmask;
  uint32_t count, record_size, heap_size;
  uint16_t flags;
} mp_view;

static inline int mp_view_fail(const char **why, const char *msg) {
  if (why) *why = msg;
  return 0;
}

static inline int mp_check_record(const mp_view *v, const uint8_t *rec,
                                  const char **why) {
  uint64_t nulls = mp_rd64(rec);
  if (nulls & ~v->mask) return mp_view_fail(why, "null bit set for a deferred field");
  /* Only NULL slots and heap references can be wrong: visit just those. */
  for (uint64_t todo = nulls | v->varmask; todo; todo &= todo - 1) {
    int i = mp_lowest_bit(todo);
    uint64_t bit = (uint64_t)1 << i;
    const uint8_t *slot = rec + mp_slot_offset(v->mask, i);
    if (nulls & bit) {
      if (mp_rd64(slot) != 0) return mp_view_fail(why, "NULL field with a non-zero slot");
    } else {
      uint64_t off = mp_rd32(slot), n = mp_rd32(slot + 4);
      if (off + n + 1 > v->heap_size) return mp_view_fail(why, "value past the end of the heap");
      if (v->heap[off + n] != 0) return mp_view_fail(why, "heap value not NUL-terminated");
    }
  }
  return 1;
}

/*
 * Validate an untrusted blob and fill *v.  Returns 1 if the blob is a
 * well-formed layout-v1 blob (and, when expected_fp is non-zero, carries that
 * fingerprint); otherwise returns 0 and points *why at a static reason.
 * Reads only inside [blob, blob+len) whatever the input.
 */
static inline int mp_view_open(mp_view *v, const void *blob, size_t len,
                               uint64_t expected_fp, const char **why) {
  const uint8_t *p = (const uint8_t *)blob;
  if (!p || len < MP_HEADER_SIZE) return mp_view_fail(why, "too short for a modelpack header");
  if (memcmp(p + MP_H_MAGIC, MP_MAGIC, 4) != 0) return mp_view_fail(why, "not a modelpack blob (bad magic)");
  if (mp_rd16(p + MP_H_VERSION) != MP_LAYOUT_VERSION) return mp_view_fail(why, "unsupported layout version");
  v->flags = mp_rd16(p + MP_H_FLAGS);
  v->count = mp_rd32(p + MP_H_COUNT);
  v->record_size = mp_rd32(p + MP_H_RECORD_SIZE);
  v->fingerprint = mp_rd64(p + MP_H_FINGERPRINT);
  v->mask = mp_rd64(p + MP_H_MASK);
  v->varmask = mp_rd64(p + MP_H_VARMASK);
  v->heap_size = mp_rd32(p + MP_H_HEAP_SIZE);
  if (v->flags & ~MP_FLAGS_KNOWN) return mp_view_fail(why, "unknown header flags");
  if (mp_rd32(p + MP_H_RESERVED) != 0) return mp_view_fail(why, "reserved header bytes are not zero");
  if (v->mask == 0 || (v->varmask & ~v->mask)) return mp_view_fail(why, "inconsistent field masks");
  if (v->record_size != mp_record_size(v->mask)) return mp_view_fail(why, "record size does not match the mask");
  if (v->count == 0) return mp_view_fail(why, "no records");
  if (expected_fp && v->fingerprint != expected_fp) return mp_view_fail(why, "blob belongs to another model or mask (fingerprint mismatch)");
  uint64_t body = (uint64_t)v->count * v->record_size;
  if (body > len || (uint64_t)MP_HEADER_SIZE + body + v->heap_size != len)
    return mp_view_fail(why, "blob length does not match its header");
  v->records = p + MP_HEADER_SIZE;
  v->heap = v->records + body;
  for (uint32_t r = 0; r < v->count; r++)
    if (!mp_check_record(v, v->records + (size_t)r * v->record_size, why)) return 0;
  return 1;
}

/* Getters: valid for rec < v->count once mp_view_open() returned 1. */
static inline const uint8_t *mp_record(const mp_view *v, uint32_t rec) {
  return v->records + (size_t)rec * v->record_size;
}
static inline int mp_is_loaded(const mp_view *v, int field) {
  return field >= 0 && field < MP_MAX_FIELDS && ((v->mask >> field) & 1);
}
static inline int mp_is_null(const mp_view *v, uint32_t rec, int field) {
  return (int)((mp_rd64(mp_record(v, rec)) >> field) & 1);
}
static inline int64_t mp_get_int64(const mp_view *v, uint32_t rec, int field) {
  return (int64_t)mp_rd64(mp_record(v, rec) + mp_slot_offset(v->mask, field));
}
static inline double mp_get_double(const mp_view *v, uint32_t rec, int field) {
  uint64_t u = mp_rd64(mp_record(v, rec) + mp_slot_offset(v->mask, field));
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}
/* TEXT or BLOB bytes (NUL-terminated in the heap); *n gets the length. */
static inline const uint8_t *mp_get_bytes(const mp_view *v, uint32_t rec,
                                          int field, uint32_t *n) {
  const uint8_t *slot = mp_record(v, rec) + mp_slot_offset(v->mask, field);
  *n = mp_rd32(slot + 4);
  return v->heap + mp_rd32(slot);
}

#endif /* MODELPACK_H */
