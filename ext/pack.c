/*
 * pack.c -- the one packer: SQL values in, layout-v1 blobs out.
 *
 * Every producer of packed data (model tables, modelpack_query, stored
 * records; one row or a batch) appends records with mp_pack_values() (from
 * SQL values) or mp_pack_slice() (from a stored record) and takes the
 * finished blob from mp_packer_blob().  The buffer is laid out like the
 * blob (header | reserved records | heap); the record space grows by
 * doubling up to the batch capacity, and the buffer is reused from blob to
 * blob, so the steady state allocates nothing.
 *
 * Fast packing converts each value with SQLite's own sqlite3_value_* rules
 * and checks nothing; safe packing accepts a value only if it has the field's
 * storage class or converts to it without loss, and refuses NULL in a
 * NOT NULL field.  Both always produce a well-formed blob.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp_internal.h"
#include "mp_util.h"

#define MP_HEAP_START 256

#define MP_RECORDS_START 16 /* records reserved before the first growth */

int mp_packer_init(mp_packer *p, const mp_model *m, uint64_t mask, int safe,
                   uint32_t capacity, int batch) {
  memset(p, 0, sizeof *p);
  p->m = m;
  p->mask = mask;
  p->safe = safe;
  p->capacity = capacity ? capacity : 1;
  p->rec_cap = p->capacity < MP_RECORDS_START ? p->capacity : MP_RECORDS_START;
  p->flags = (uint16_t)((safe ? MP_FLAG_SAFE : 0) | (batch ? MP_FLAG_BATCH : 0));
  for (int i = 0; i < m->nfield; i++) {
    if (!((mask >> i) & 1)) continue;
    p->loaded[p->nloaded++] = i;
    if (m->fields[i].type == MP_TEXT || m->fields[i].type == MP_BLOB)
      p->varmask |= (uint64_t)1 << i;
    if (m->fields[i].type == MP_TEXT) p->textmask |= (uint64_t)1 << i;
  }
  p->record_size = mp_record_size(mask);
  p->fingerprint = mp_fingerprint(m->names, m->types, m->nfield, mask);
  p->buf_alloc = MP_HEADER_SIZE + (size_t)p->rec_cap * p->record_size +
                 MP_HEAP_START;
  p->buf = sqlite3_malloc64(p->buf_alloc);
  if (!p->buf) return SQLITE_NOMEM;
  /* The header is the same for every blob but for count and heap size. */
  uint8_t *h = p->buf;
  memcpy(h + MP_H_MAGIC, MP_MAGIC, 4);
  mp_wr16(h + MP_H_VERSION, MP_LAYOUT_VERSION);
  mp_wr16(h + MP_H_FLAGS, p->flags);
  mp_wr32(h + MP_H_RECORD_SIZE, p->record_size);
  mp_wr64(h + MP_H_FINGERPRINT, p->fingerprint);
  mp_wr64(h + MP_H_MASK, p->mask);
  mp_wr64(h + MP_H_VARMASK, p->varmask);
  mp_wr32(h + MP_H_RESERVED, 0);
  return SQLITE_OK;
}

void mp_packer_reset(mp_packer *p) {
  p->count = 0;
  p->heap_used = 0;
  p->nonascii = 0;
  p->unsafe = 0;
  sqlite3_free(p->why);
  p->why = NULL;
}

void mp_packer_free(mp_packer *p) {
  sqlite3_free(p->why);
  p->why = NULL;
  sqlite3_free(p->buf);
  p->buf = NULL;
}

static size_t heap_base(const mp_packer *p) {
  return MP_HEADER_SIZE + (size_t)p->rec_cap * p->record_size;
}

static int grow(mp_packer *p, size_t need) {
  size_t a = p->buf_alloc * 2;
  while (a < need) a *= 2;
  uint8_t *nb = sqlite3_realloc64(p->buf, a);
  if (!nb) return SQLITE_NOMEM;
  p->buf = nb;
  p->buf_alloc = a;
  return SQLITE_OK;
}

/* Room for one more record: double the reserved records, moving the heap
 * up.  Only the first batches of a read ever get here. */
static int reserve_record(mp_packer *p) {
  if (p->count < p->rec_cap) return SQLITE_OK;
  if (p->count >= p->capacity) return SQLITE_INTERNAL; /* callers stop at capacity */
  uint32_t cap = p->rec_cap * 2 < p->capacity ? p->rec_cap * 2 : p->capacity;
  size_t old_base = heap_base(p);
  size_t new_base = MP_HEADER_SIZE + (size_t)cap * p->record_size;
  if (new_base + p->heap_used + MP_HEAP_START > p->buf_alloc &&
      grow(p, new_base + p->heap_used + MP_HEAP_START) != SQLITE_OK)
    return SQLITE_NOMEM;
  memmove(p->buf + new_base, p->buf + old_base, p->heap_used);
  p->rec_cap = cap;
  return SQLITE_OK;
}

/* Copy n bytes plus a NUL into the heap and point the slot at them.  The
 * buffer may move, so the slot is named by its offset. */
/* Any byte >= 0x80?  Eight bytes at a time, the tail by OR-ing bytes. */
static int has_high_byte(const uint8_t *s, size_t n) {
  size_t i = 0;
  uint64_t acc = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    acc |= w;
  }
  for (; i < n; i++) acc |= s[i];
  return (acc & 0x8080808080808080ULL) != 0;
}

static int heap_put(mp_packer *p, size_t slot_off, const void *data,
                    size_t n, int text) {
  /* The ASCII flag lets a client decode all text of a blob in one pass. */
  if (text && !p->nonascii && has_high_byte(data, n)) p->nonascii = 1;
  size_t need = heap_base(p) + p->heap_used + n + 1;
  if (p->heap_used + n + 1 > UINT32_MAX) return SQLITE_TOOBIG;
  if (need > p->buf_alloc && grow(p, need) != SQLITE_OK) return SQLITE_NOMEM;
  uint8_t *dst = p->buf + heap_base(p) + p->heap_used;
  if (n) memcpy(dst, data, n);
  dst[n] = 0;
  uint8_t *slot = p->buf + slot_off;
  mp_wr32(slot, (uint32_t)p->heap_used);
  mp_wr32(slot + 4, (uint32_t)n);
  p->heap_used += n + 1;
  return SQLITE_OK;
}

/* ---- safe-mode value checks ---- */

static const char *class_name(int t) {
  switch (t) {
    case SQLITE_INTEGER: return "INTEGER";
    case SQLITE_FLOAT: return "REAL";
    case SQLITE_TEXT: return "TEXT";
    case SQLITE_BLOB: return "BLOB";
    default: return "NULL";
  }
}

/* Describe the row by its primary key, for error messages. */
static char *row_label(const mp_packer *p, sqlite3_value **vals) {
  const mp_model *m = p->m;
  int j = 0;
  while (p->loaded[j] != m->pk) j++;
  sqlite3_value *v = vals[j];
  const char *pk = m->fields[m->pk].name;
  switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
      return sqlite3_mprintf("row %s=%lld", pk, sqlite3_value_int64(v));
    case SQLITE_FLOAT:
      return sqlite3_mprintf("row %s=%!.15g", pk, sqlite3_value_double(v));
    case SQLITE_TEXT:
      return sqlite3_mprintf("row %s=%Q", pk, sqlite3_value_text(v));
    case SQLITE_NULL:
      return sqlite3_mprintf("row %s=NULL", pk);
    default:
      return sqlite3_mprintf("row %s=<blob of %d bytes>", pk,
                             sqlite3_value_bytes(v));
  }
}

static int value_error(const mp_packer *p, sqlite3_value **vals, int field,
                       const char *what, char **err) {
  char *row = row_label(p, vals);
  *err = row ? sqlite3_mprintf("modelpack: %s.%s: %s (%s)", p->m->name,
                               p->m->fields[field].name, what, row)
             : NULL;
  sqlite3_free(row);
  /* Out of memory is not a verdict on the value: a stored model would
   * otherwise keep a degraded reason that a rebuild would not give. */
  return *err ? SQLITE_CONSTRAINT : SQLITE_NOMEM;
}

static int wrong_class(const mp_packer *p, sqlite3_value **vals, int field,
                       int vt, char **err) {
  char what[96];
  snprintf(what, sizeof what, "expected %s, got %s",
           mp_type_name(p->m->fields[field].type), class_name(vt));
  return value_error(p, vals, field, what, err);
}

/* Safe conversion to int64: exact integers only. */
static int safe_int(sqlite3_value *v, int vt, int64_t *out) {
  if (vt == SQLITE_INTEGER) {
    *out = sqlite3_value_int64(v);
    return 1;
  }
  if (vt != SQLITE_FLOAT) return 0;
  double d = sqlite3_value_double(v);
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return 0;
  if (d != floor(d)) return 0;
  *out = (int64_t)d;
  return 1;
}

static int safe_real(sqlite3_value *v, int vt, double *out) {
  if (vt == SQLITE_FLOAT) {
    *out = sqlite3_value_double(v);
    return 1;
  }
  if (vt != SQLITE_INTEGER) return 0;
  int64_t i = sqlite3_value_int64(v);
  double d = (double)i;
  /* 2^63 itself is not representable as int64: reject before converting. */
  if (d >= 9223372036854775808.0 || (int64_t)d != i) return 0;
  *out = d;
  return 1;
}

static int pack_safe(mp_packer *p, sqlite3_value **vals, int j, uint8_t *rec,
                     char **err) {
  int f = p->loaded[j];
  const mp_field *fd = &p->m->fields[f];
  sqlite3_value *v = vals[j];
  int vt = sqlite3_value_type(v);
  uint8_t *slot = rec + MP_SLOT_SIZE * (1 + j); /* j-th loaded field */
  int64_t i;
  double d;
  switch (fd->type) {
    case MP_INTEGER:
      if (!safe_int(v, vt, &i)) return wrong_class(p, vals, f, vt, err);
      mp_wr64(slot, (uint64_t)i);
      return SQLITE_OK;
    case MP_BOOLEAN:
      if (!safe_int(v, vt, &i)) return wrong_class(p, vals, f, vt, err);
      if (i != 0 && i != 1)
        return value_error(p, vals, f, "BOOLEAN value is not 0 or 1", err);
      mp_wr64(slot, (uint64_t)i);
      return SQLITE_OK;
    case MP_REAL:
      if (!safe_real(v, vt, &d)) return wrong_class(p, vals, f, vt, err);
      memcpy(&i, &d, 8);
      mp_wr64(slot, (uint64_t)i);
      return SQLITE_OK;
    case MP_TEXT: {
      if (vt != SQLITE_TEXT) return wrong_class(p, vals, f, vt, err);
      const unsigned char *s = sqlite3_value_text(v);
      int n = sqlite3_value_bytes(v);
      if (!s) return SQLITE_NOMEM;
      if (!mp_utf8_valid(s, (size_t)n))
        return value_error(p, vals, f, "TEXT is not valid UTF-8", err);
      return heap_put(p, (size_t)(slot - p->buf), s, (size_t)n, 1);
    }
    default: { /* MP_BLOB: a BLOB, or TEXT taken as its bytes */
      if (vt != SQLITE_BLOB && vt != SQLITE_TEXT)
        return wrong_class(p, vals, f, vt, err);
      const void *b = vt == SQLITE_BLOB ? sqlite3_value_blob(v)
                                        : (const void *)sqlite3_value_text(v);
      int n = sqlite3_value_bytes(v);
      if (!b && n) return SQLITE_NOMEM;
      return heap_put(p, (size_t)(slot - p->buf), b, (size_t)n, 0);
    }
  }
}

static int pack_fast(mp_packer *p, sqlite3_value *v, int j, uint8_t *rec) {
  int f = p->loaded[j];
  uint8_t *slot = rec + MP_SLOT_SIZE * (1 + j); /* j-th loaded field */
  const void *b;
  double d;
  uint64_t u;
  switch (p->m->fields[f].type) {
    case MP_INTEGER:
      mp_wr64(slot, (uint64_t)sqlite3_value_int64(v));
      return SQLITE_OK;
    case MP_BOOLEAN:
      mp_wr64(slot, sqlite3_value_int64(v) != 0);
      return SQLITE_OK;
    case MP_REAL:
      d = sqlite3_value_double(v);
      memcpy(&u, &d, 8);
      mp_wr64(slot, u);
      return SQLITE_OK;
    case MP_TEXT:
      b = sqlite3_value_text(v);
      break;
    default: /* BLOB: text goes in as its UTF-8 bytes, as in safe mode */
      b = sqlite3_value_type(v) == SQLITE_TEXT ? (const void *)sqlite3_value_text(v)
                                               : sqlite3_value_blob(v);
      break;
  }
  int n = sqlite3_value_bytes(v);
  if (!b && n) return SQLITE_NOMEM;
  return heap_put(p, (size_t)(slot - p->buf), b, (size_t)n, p->m->fields[f].type == MP_TEXT);
}

static int note_unsafe(mp_packer *p, int f, char **err) {
  char *why = p->why ? sqlite3_mprintf("%s\n%s", p->why, *err) : *err;
  if (p->why) sqlite3_free(*err);
  *err = NULL;
  sqlite3_free(p->why);
  p->why = why;
  p->unsafe |= (uint64_t)1 << f;
  return why ? SQLITE_OK : SQLITE_NOMEM;
}

int mp_pack_values(mp_packer *p, sqlite3_value **vals, char **err) {
  if (reserve_record(p) != SQLITE_OK) return SQLITE_NOMEM;
  /* Records are addressed by offset: heap growth may move the buffer. */
  size_t rec_off = MP_HEADER_SIZE + (size_t)p->count * p->record_size;
  uint64_t nulls = 0;
  memset(p->buf + rec_off, 0, p->record_size);
  for (int j = 0; j < p->nloaded; j++) {
    int f = p->loaded[j];
    int rc = SQLITE_OK;
    if (sqlite3_value_type(vals[j]) == SQLITE_NULL) {
      if (p->safe && p->m->fields[f].notnull)
        rc = value_error(p, vals, f, "NULL in a NOT NULL field", err);
      nulls |= (uint64_t)1 << f;
    } else {
      rc = p->safe ? pack_safe(p, vals, j, p->buf + rec_off, err)
                   : pack_fast(p, vals[j], j, p->buf + rec_off);
    }
    /* Collecting: note the field, keep going with its fast value. */
    if (rc == SQLITE_CONSTRAINT && p->collect) {
      rc = note_unsafe(p, f, err);
      if (rc == SQLITE_OK && !((nulls >> f) & 1)) rc = pack_fast(p, vals[j], j, p->buf + rec_off);
    }
    if (rc != SQLITE_OK) {
      if (rc == SQLITE_TOOBIG)
        *err = sqlite3_mprintf("modelpack: %s: packed data exceeds 4 GiB",
                               p->m->name);
      return rc;
    }
  }
  mp_wr64(p->buf + rec_off, nulls);
  p->count++;
  return SQLITE_OK;
}

/* Same layout: copy the record and its heap whole, then move the heap
 * references by where that heap now starts. */
static int copy_record(mp_packer *p, const mp_view *v, uint32_t rec) {
  size_t rec_off = MP_HEADER_SIZE + (size_t)p->count * p->record_size;
  const uint8_t *src = mp_record(v, rec);
  uint64_t nulls = mp_rd64(src);
  size_t base = p->heap_used;
  if (base + v->heap_size > UINT32_MAX) return SQLITE_TOOBIG;
  size_t need = heap_base(p) + base + v->heap_size;
  if (need > p->buf_alloc && grow(p, need) != SQLITE_OK) return SQLITE_NOMEM;
  if (!(v->flags & MP_FLAG_ASCII) && (p->textmask & ~nulls)) p->nonascii = 1;
  memcpy(p->buf + rec_off, src, p->record_size);
  memcpy(p->buf + heap_base(p) + base, v->heap, v->heap_size);
  for (uint64_t todo = p->varmask & ~nulls; todo; todo &= todo - 1) {
    uint8_t *slot = p->buf + rec_off + mp_slot_offset(p->mask, mp_lowest_bit(todo));
    mp_wr32(slot, mp_rd32(slot) + (uint32_t)base);
  }
  p->heap_used += v->heap_size;
  p->count++;
  return SQLITE_OK;
}

int mp_pack_slice(mp_packer *p, const mp_view *v, uint32_t rec) {
  if (reserve_record(p) != SQLITE_OK) return SQLITE_NOMEM;
  if (v->mask == p->mask && v->count == 1) return copy_record(p, v, rec);
  size_t rec_off = MP_HEADER_SIZE + (size_t)p->count * p->record_size;
  uint64_t nulls = 0;
  memset(p->buf + rec_off, 0, p->record_size);
  for (int j = 0; j < p->nloaded; j++) {
    int f = p->loaded[j];
    size_t slot = rec_off + MP_SLOT_SIZE * (1 + (size_t)j);
    if (!mp_is_loaded(v, f) || mp_is_null(v, rec, f)) {
      nulls |= (uint64_t)1 << f;
    } else if ((p->varmask >> f) & 1) {
      uint32_t n;
      const uint8_t *b = mp_get_bytes(v, rec, f, &n);
      int rc = heap_put(p, slot, b, n, p->m->types[f] == MP_TEXT);
      if (rc != SQLITE_OK) return rc;
    } else {
      memcpy(p->buf + slot, mp_record(v, rec) + mp_slot_offset(v->mask, f), 8);
    }
  }
  mp_wr64(p->buf + rec_off, nulls);
  p->count++;
  return SQLITE_OK;
}

const uint8_t *mp_packer_blob(mp_packer *p, size_t *len) {
  uint8_t *h = p->buf;
  size_t body = (size_t)p->count * p->record_size;
  if (p->count < p->rec_cap)
    memmove(h + MP_HEADER_SIZE + body, h + heap_base(p), p->heap_used);
  uint16_t flags = (uint16_t)(p->flags | (p->nonascii ? 0 : MP_FLAG_ASCII));
  if (p->unsafe) flags &= (uint16_t)~MP_FLAG_SAFE; /* collected: not all checked values passed */
  mp_wr16(h + MP_H_FLAGS, flags);
  mp_wr32(h + MP_H_COUNT, p->count);
  mp_wr32(h + MP_H_HEAP_SIZE, (uint32_t)p->heap_used);
  *len = p->blob_len = MP_HEADER_SIZE + body + p->heap_used;
  return h;
}

/*
 * modelpack_pack_row(<packer pointer>, v1, v2, ...): append one record.
 * Only a model table's own source statement can call it usefully: the
 * packer comes through SQLite's pointer-passing interface, which SQL text
 * cannot forge.  Used only where the statement does not sort, so it is
 * called for each row just before the row is returned, in order.
 */
void mp_pack_row_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  /* The packer is bound once per run: look its type up once, not per row. */
  mp_packer *p = sqlite3_get_auxdata(ctx, 0);
  char *err = NULL;
  if (!p) {
    p = sqlite3_value_pointer(argv[0], MP_PACKER_PTR);
    if (p) sqlite3_set_auxdata(ctx, 0, p, NULL);
  }
  if (!p || argc - 1 != p->nloaded) {
    sqlite3_result_error(ctx, "modelpack: " MP_PACK_FN " is internal to model tables", -1);
    return;
  }
  int rc = mp_pack_values(p, argv + 1, &err);
  p->failed = rc != SQLITE_OK;
  if (rc != SQLITE_OK) {
    if (err) sqlite3_result_error(ctx, err, -1);
    else if (rc == SQLITE_NOMEM) sqlite3_result_error_nomem(ctx);
    else sqlite3_result_error_code(ctx, rc);
    sqlite3_free(err);
    return;
  }
  /* The record stays in the packer; the caller takes the finished blob.
   * True once the blob is full: as a WHERE term (MP_READ_FN_BATCH) that
   * returns a row only when there is a batch to hand out. */
  sqlite3_result_int(ctx, p->count >= p->capacity);
}
