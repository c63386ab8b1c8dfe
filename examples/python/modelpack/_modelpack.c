/*
 * _modelpack.c -- the optional C accelerator of the modelpack Python package.
 *
 * accel.py builds one `Plan` per (layout, builder) and calls
 * `plan.decode(blob, out)`, which validates a blob (one packed row or a
 * batch) and appends one tuple, dict or object per record to `out`.  It is
 * a drop-in replacement for decoder.py's compiled pure-Python decoder: the
 * same blobs are accepted and refused, with the same exception classes and
 * messages, and the same values come out (tests/test_accel.py compares the
 * two record by record).  When this module is not built the package runs
 * the pure decoder; nothing else depends on it.
 *
 * The byte layout comes from include/modelpack.h (readers, offsets, flags,
 * type codes), so it stays defined in one place.  Its validator,
 * mp_view_open(), is not used: it is stricter than decoder.py (NUL
 * terminators, all-zero NULL slots) and reports no field or row, and the
 * accelerator must refuse exactly what the reference decoder refuses.  The
 * per-record checks are done while decoding instead, in one pass.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../../../include/modelpack.h"

/* modelpack.errors.BlobError and ModelpackError, looked up at import so
 * the accelerator raises the very classes the pure decoder raises. */
static PyObject *BlobError, *ModelpackError;

enum { KIND_TUPLE = 0, KIND_DICT = 1, KIND_OBJECT = 2 };

typedef struct {
  uint8_t type;  /* enum mp_type */
  uint8_t index; /* field index in the model: its bit in mask and nulls */
  uint32_t slot; /* byte offset of its slot in a record */
  PyObject *name; /* borrowed from Plan.names, for messages */
  PyObject *key;  /* borrowed from Plan.keys (kinds 1 and 2) */
} Field;

typedef struct {
  PyObject_HEAD
  PyObject *model;    /* str */
  PyObject *names;    /* tuple of str: loaded field names */
  PyObject *keys;     /* tuple of interned str, or () */
  PyObject *skeleton; /* dict {[state attr,] key...: None} or NULL */
  PyObject *state_attr, *state_dict; /* or NULL */
  PyTypeObject *cls, *state_cls;     /* or NULL */
  PyObject *safe;
  uint64_t fingerprint, mask, varmask;
  uint32_t record_size;
  int nfields, pkpos, kind, has_text;
  Field fields[MP_MAX_FIELDS];
} Plan;

/* ---- errors ---- */

/* "modelpack: <model>: <what>" as a BlobError; always returns NULL. */
static PyObject *blob_error(Plan *pl, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  PyObject *what = PyUnicode_FromFormatV(fmt, ap);
  va_end(ap);
  if (what) {
    PyErr_Format(BlobError, "modelpack: %U: %U", pl->model, what);
    Py_DECREF(what);
  }
  return NULL;
}

/* The record's primary key as the pure decoder shows it in messages: the
 * value for INTEGER, REAL and BOOLEAN keys, None for TEXT and BLOB keys
 * (whose bytes may be what is broken). */
static PyObject *pk_value(Plan *pl, const uint8_t *rec) {
  const Field *f = &pl->fields[pl->pkpos];
  uint64_t raw = mp_rd64(rec + f->slot);
  double d;
  switch (f->type) {
  case MP_INTEGER:
    return PyLong_FromLongLong((long long)raw);
  case MP_REAL:
    memcpy(&d, &raw, sizeof d);
    return PyFloat_FromDouble(d);
  case MP_BOOLEAN:
    return PyBool_FromLong(raw != 0);
  default:
    Py_RETURN_NONE;
  }
}

/* "... (row <pk name>=<pk>)" errors about one record; field < 0 for the
 * record as a whole.  Always returns NULL. */
static PyObject *row_error(Plan *pl, PyObject *cls, const uint8_t *rec,
                           int field, const char *what) {
  PyObject *pk = pk_value(pl, rec);
  if (!pk) return NULL;
  PyObject *pkname = pl->fields[pl->pkpos].name;
  if (field < 0)
    PyErr_Format(cls, "modelpack: %U: %s (row %U=%R)", pl->model, what,
                 pkname, pk);
  else
    PyErr_Format(cls, "modelpack: %U.%U: %s (row %U=%R)", pl->model,
                 pl->fields[field].name, what, pkname, pk);
  Py_DECREF(pk);
  return NULL;
}

/* ---- values ---- */

static int has_high_bit(const uint8_t *s, uint32_t n) {
  uint64_t acc = 0, w;
  uint32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    memcpy(&w, s + i, 8);
    acc |= w;
  }
  for (; i < n; i++) acc |= s[i];
  return (acc & 0x8080808080808080ULL) != 0;
}

/* One record's values into vals[0..nfields) as new references.  The blob's
 * header has been validated; every heap reference is checked here.  On
 * error nothing is left in vals and -1 is returned with an exception set. */
static int record_values(Plan *pl, const uint8_t *rec, const uint8_t *heap,
                         uint32_t heap_size, int ascii, PyObject **vals) {
  uint64_t nulls = mp_rd64(rec);
  int n;
  for (n = 0; n < pl->nfields; n++) {
    const Field *f = &pl->fields[n];
    const uint8_t *slot = rec + f->slot;
    PyObject *v;
    if ((nulls >> f->index) & 1) {
      /* decoder.py checks a NULL's slot like any other, except the zero
       * slot it always is in a good blob (which an empty heap would fail). */
      if ((f->type == MP_TEXT || f->type == MP_BLOB) &&
          mp_rd64(slot) != 0 &&
          (uint64_t)mp_rd32(slot) + mp_rd32(slot + 4) >= heap_size) {
        row_error(pl, BlobError, rec, n, "value past the end of the heap");
        goto fail;
      }
      v = Py_NewRef(Py_None);
    } else {
      switch (f->type) {
      case MP_INTEGER:
        v = PyLong_FromLongLong((long long)mp_rd64(slot));
        break;
      case MP_REAL: {
        uint64_t raw = mp_rd64(slot);
        double d;
        memcpy(&d, &raw, sizeof d);
        v = PyFloat_FromDouble(d);
        break;
      }
      case MP_BOOLEAN:
        v = Py_NewRef(mp_rd64(slot) ? Py_True : Py_False);
        break;
      default: { /* TEXT, BLOB */
        uint64_t off = mp_rd32(slot), len = mp_rd32(slot + 4);
        const char *s = (const char *)heap + off;
        /* `>=`: the value's NUL terminator must be inside the heap too. */
        if (off + len >= heap_size) {
          row_error(pl, BlobError, rec, n, "value past the end of the heap");
          goto fail;
        }
        if (f->type == MP_BLOB) {
          v = PyBytes_FromStringAndSize(s, (Py_ssize_t)len);
        } else if (ascii) {
          /* The ASCII flag is a promise, not a proof: a lie would make
           * a str whose bytes are not what its kind says. */
          if (has_high_bit((const uint8_t *)s, (uint32_t)len)) {
            blob_error(pl, "ASCII flag set on non-ASCII text");
            goto fail;
          }
          v = PyUnicode_New((Py_ssize_t)len, 127);
          if (v) memcpy(PyUnicode_1BYTE_DATA(v), s, len);
        } else {
          v = PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, NULL);
          if (!v && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            /* Keep the codec's error as __context__, as the pure
             * decoder's `raise` inside `except` does. */
            PyObject *t, *e, *tb;
            PyErr_Fetch(&t, &e, &tb);
            PyErr_NormalizeException(&t, &e, &tb);
            row_error(pl, ModelpackError, rec, n, "invalid UTF-8");
            PyObject *t2, *e2, *tb2;
            PyErr_Fetch(&t2, &e2, &tb2);
            PyErr_NormalizeException(&t2, &e2, &tb2);
            if (e2 && e) PyException_SetContext(e2, Py_NewRef(e));
            PyErr_Restore(t2, e2, tb2);
            Py_XDECREF(t);
            Py_XDECREF(e);
            Py_XDECREF(tb);
          }
        }
        break;
      }
      }
      if (!v) goto fail;
    }
    vals[n] = v;
  }
  /* After the values, as in decoder.py, so a record with several faults
   * reports the same one. */
  if (nulls & ~pl->mask) {
    row_error(pl, BlobError, rec, -1, "null bitmap marks a deferred field");
    goto fail;
  }
  return 0;
fail:
  while (n-- > 0) Py_DECREF(vals[n]);
  return -1;
}

/* ---- what a record becomes ---- */

/* An instance of tp as object.__new__(tp) makes it, with `dict` (stolen)
 * as its __dict__.  tp_alloc skips object_new's eager set-up of the
 * instance's inline attribute values, which the new __dict__ would replace
 * at once; the result is the same object either way. */
static PyObject *new_instance(PyTypeObject *tp, PyObject *dict) {
  PyObject *o = tp->tp_alloc(tp, 0);
  if (o && PyObject_GenericSetDict(o, dict, NULL) < 0) Py_CLEAR(o);
  Py_DECREF(dict);
  return o;
}

/* {keys[i]: vals[i]}, consuming vals.  Copying the skeleton (keys already
 * hashed and laid out, in order) and overwriting its values is cheaper
 * than growing a new dict one key at a time. */
static PyObject *fill_dict(Plan *pl, PyObject **vals) {
  PyObject *d = PyDict_Copy(pl->skeleton);
  int n = 0;
  if (!d) goto fail;
  for (; n < pl->nfields; n++) {
    int rc = PyDict_SetItem(d, pl->fields[n].key, vals[n]);
    Py_DECREF(vals[n]);
    if (rc < 0) {
      n++;
      goto fail;
    }
  }
  return d;
fail:
  for (; n < pl->nfields; n++) Py_DECREF(vals[n]);
  Py_XDECREF(d);
  return NULL;
}

/* The record object of the plan's kind, consuming vals. */
static PyObject *build(Plan *pl, PyObject **vals) {
  if (pl->kind == KIND_TUPLE) {
    PyObject *t = PyTuple_New(pl->nfields);
    if (!t) {
      for (int n = 0; n < pl->nfields; n++) Py_DECREF(vals[n]);
      return NULL;
    }
    for (int n = 0; n < pl->nfields; n++) PyTuple_SET_ITEM(t, n, vals[n]);
    return t;
  }
  PyObject *d = fill_dict(pl, vals);
  if (!d || pl->kind == KIND_DICT) return d;
  if (pl->state_cls) {
    /* An empty state dict: the state class carries the values as class
     * attributes (modelpack.django's per-alias ModelState), so the state
     * needs no dict of its own until someone writes to it. */
    PyObject *sd = NULL, *s = NULL;
    if (PyDict_GET_SIZE(pl->state_dict) == 0)
      s = pl->state_cls->tp_alloc(pl->state_cls, 0);
    else if ((sd = PyDict_Copy(pl->state_dict)) != NULL)
      s = new_instance(pl->state_cls, sd);
    int rc = s ? PyDict_SetItem(d, pl->state_attr, s) : -1;
    Py_XDECREF(s);
    if (rc < 0) {
      Py_DECREF(d);
      return NULL;
    }
  }
  return new_instance(pl->cls, d);
}

/* ---- decode ---- */

static int decode_fast(Plan *pl, const uint8_t *recs, uint32_t count,
                       const uint8_t *heap, uint32_t hs, int ascii,
                       PyObject *out) {
  PyObject *vals[MP_MAX_FIELDS];
  for (uint32_t r = 0; r < count; r++) {
    const uint8_t *rec = recs + (size_t)r * pl->record_size;
    if (record_values(pl, rec, heap, hs, ascii, vals) < 0) return -1;
    PyObject *o = build(pl, vals);
    if (!o) return -1;
    int rc = PyList_Append(out, o);
    Py_DECREF(o);
    if (rc < 0) return -1;
  }
  return 0;
}

/* Safe-packed records go through the builder's safe constructor, one call
 * per values tuple.  All records are decoded (and so validated) before the
 * first call, as decoder.py does, so a damaged batch runs no user code. */
static int decode_safe(Plan *pl, const uint8_t *recs, uint32_t count,
                       const uint8_t *heap, uint32_t hs, int ascii,
                       PyObject *out) {
  PyObject *vals[MP_MAX_FIELDS];
  PyObject *tuples = PyList_New(count);
  if (!tuples) return -1;
  for (uint32_t r = 0; r < count; r++) {
    const uint8_t *rec = recs + (size_t)r * pl->record_size;
    if (record_values(pl, rec, heap, hs, ascii, vals) < 0) goto fail;
    PyObject *t = PyTuple_New(pl->nfields);
    if (!t) {
      for (int n = 0; n < pl->nfields; n++) Py_DECREF(vals[n]);
      goto fail;
    }
    for (int n = 0; n < pl->nfields; n++) PyTuple_SET_ITEM(t, n, vals[n]);
    PyList_SET_ITEM(tuples, r, t);
  }
  for (uint32_t r = 0; r < count; r++) {
    PyObject *o = PyObject_CallOneArg(pl->safe, PyList_GET_ITEM(tuples, r));
    if (!o) goto fail;
    int rc = PyList_Append(out, o);
    Py_DECREF(o);
    if (rc < 0) goto fail;
  }
  Py_DECREF(tuples);
  return 0;
fail:
  Py_DECREF(tuples); /* unfilled items are NULL, which list_dealloc skips */
  return -1;
}

PyDoc_STRVAR(decode_doc,
"decode(blob, out)\n--\n\n"
"Validate blob (a packed row or a batch) against the plan's layout and\n"
"append one record object per record to the list out.  Raises\n"
"modelpack.errors.BlobError (or ModelpackError for invalid UTF-8) and\n"
"leaves out as it was when anything is wrong.");

static PyObject *Plan_decode(Plan *pl, PyObject *const *args,
                             Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_Format(PyExc_TypeError, "decode() takes 2 arguments (%zd given)",
                 nargs);
    return NULL;
  }
  if (!pl->model) {
    PyErr_SetString(PyExc_ValueError, "Plan is not initialised");
    return NULL;
  }
  PyObject *blob = args[0], *out = args[1];
  if (!PyList_Check(out)) {
    PyErr_Format(PyExc_TypeError, "decode(): out must be a list, not %.100s",
                 Py_TYPE(out)->tp_name);
    return NULL;
  }
  /* Other bytes-like objects are copied: a bytearray could change under
   * us while a finalizer runs during an allocation. */
  PyObject *owned = NULL;
  if (PyBytes_Check(blob)) {
    owned = Py_NewRef(blob);
  } else if (PyObject_CheckBuffer(blob)) {
    if (!(owned = PyBytes_FromObject(blob))) return NULL;
  } else {
    PyErr_Format(PyExc_TypeError,
                 "decode(): blob must be bytes-like, not %.100s",
                 Py_TYPE(blob)->tp_name);
    return NULL;
  }
  const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(owned);
  Py_ssize_t len = PyBytes_GET_SIZE(owned);
  Py_ssize_t start = PyList_GET_SIZE(out);
  int rc = -1;

  /* The header checks and messages of Layout.header, in its order. */
  if (len < MP_HEADER_SIZE) {
    blob_error(pl, "blob too short (%zd bytes)", len);
    goto done;
  }
  uint16_t version = mp_rd16(p + MP_H_VERSION);
  uint16_t flags = mp_rd16(p + MP_H_FLAGS);
  uint32_t count = mp_rd32(p + MP_H_COUNT);
  uint32_t rsize = mp_rd32(p + MP_H_RECORD_SIZE);
  uint32_t heap_size = mp_rd32(p + MP_H_HEAP_SIZE);
  if (memcmp(p + MP_H_MAGIC, MP_MAGIC, 4) != 0) {
    blob_error(pl, "not a modelpack blob (bad magic)");
    goto done;
  }
  if (version != MP_LAYOUT_VERSION) {
    blob_error(pl, "layout version %d not supported", (int)version);
    goto done;
  }
  if ((flags & ~MP_FLAGS_KNOWN) || mp_rd32(p + MP_H_RESERVED) != 0) {
    blob_error(pl, "unknown flags 0x%x", (int)flags);
    goto done;
  }
  if (mp_rd64(p + MP_H_FINGERPRINT) != pl->fingerprint ||
      mp_rd64(p + MP_H_MASK) != pl->mask) {
    blob_error(pl, "blob belongs to another model or mask "
                   "(fingerprint mismatch)");
    goto done;
  }
  if (rsize != pl->record_size || mp_rd64(p + MP_H_VARMASK) != pl->varmask) {
    blob_error(pl, "record size or varmask does not match layout");
    goto done;
  }
  /* 64-bit sums cannot overflow: count * rsize < 2^32 * 2^10. */
  if (count < 1 || (uint64_t)MP_HEADER_SIZE + (uint64_t)count * rsize +
                           heap_size != (uint64_t)len) {
    blob_error(pl, "blob length %zd does not match its header", len);
    goto done;
  }
  const uint8_t *recs = p + MP_HEADER_SIZE;
  const uint8_t *heap = recs + (size_t)count * rsize;
  int ascii = (flags & MP_FLAG_ASCII) != 0;
  if (flags & MP_FLAG_SAFE)
    rc = decode_safe(pl, recs, count, heap, heap_size, ascii, out);
  else
    rc = decode_fast(pl, recs, count, heap, heap_size, ascii, out);
  if (rc < 0) {
    /* No partial result: drop what this call appended. */
    PyObject *t, *e, *tb;
    PyErr_Fetch(&t, &e, &tb);
    if (PyList_SetSlice(out, start, PY_SSIZE_T_MAX, NULL) < 0) PyErr_Clear();
    PyErr_Restore(t, e, tb);
  }
done:
  Py_DECREF(owned);
  if (rc < 0) return NULL;
  Py_RETURN_NONE;
}

/* ---- Plan construction ---- */

static int Plan_clear(Plan *pl);

/* A class whose instances decode can make as object.__new__ would and
 * give a __dict__. */
static int check_class(PyObject *c, const char *what) {
  if (!PyType_Check(c)) {
    PyErr_Format(PyExc_TypeError, "Plan(): %s must be a class, not %.100s",
                 what, Py_TYPE(c)->tp_name);
    return -1;
  }
  PyTypeObject *tp = (PyTypeObject *)c;
  if (tp->tp_new != PyBaseObject_Type.tp_new) {
    PyErr_Format(PyExc_TypeError,
                 "Plan(): %s %.100s overrides __new__ or derives from a "
                 "built-in type", what, tp->tp_name);
    return -1;
  }
  if (PyType_HasFeature(tp, Py_TPFLAGS_IS_ABSTRACT)) {
    PyErr_Format(PyExc_TypeError, "Plan(): %s %.100s is abstract", what,
                 tp->tp_name);
    return -1;
  }
  if (tp->tp_dictoffset == 0) {
    PyErr_Format(PyExc_TypeError,
                 "Plan(): instances of %s %.100s have no __dict__", what,
                 tp->tp_name);
    return -1;
  }
  return 0;
}

static int Plan_init(Plan *pl, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"model", "fingerprint", "mask", "record_size",
                           "types", "names", "pkpos", "kind", "cls", "keys",
                           "state", "safe", NULL};
  PyObject *model, *fp, *mask, *names, *cls, *keys, *state, *safe;
  Py_buffer types;
  Py_ssize_t record_size;
  int pkpos, kind;
  if (pl->model) {
    PyErr_SetString(PyExc_TypeError, "Plan() is already initialised");
    return -1;
  }
  if (!PyArg_ParseTupleAndKeywords(
          args, kw, "UO!O!ny*O!iiOO!OO:Plan", kwlist, &model, &PyLong_Type,
          &fp, &PyLong_Type, &mask, &record_size, &types, &PyTuple_Type,
          &names, &pkpos, &kind, &cls, &PyTuple_Type, &keys, &state, &safe))
    return -1;
  int rc = -1;
  pl->fingerprint = PyLong_AsUnsignedLongLong(fp);
  pl->mask = PyLong_AsUnsignedLongLong(mask);
  if (PyErr_Occurred()) goto done;
  int n = mp_popcount64(pl->mask);
  pl->nfields = n;
  pl->pkpos = pkpos;
  pl->kind = kind;
  if (pl->mask == 0 || types.len != n || PyTuple_GET_SIZE(names) != n) {
    PyErr_SetString(PyExc_ValueError,
                    "Plan(): mask, types and names disagree on the number "
                    "of loaded fields");
    goto done;
  }
  if (record_size != (Py_ssize_t)mp_record_size(pl->mask)) {
    PyErr_SetString(PyExc_ValueError,
                    "Plan(): record_size does not match the mask");
    goto done;
  }
  pl->record_size = (uint32_t)record_size;
  if (pkpos < 0 || pkpos >= n) {
    PyErr_SetString(PyExc_ValueError, "Plan(): pkpos out of range");
    goto done;
  }
  if (kind < KIND_TUPLE || kind > KIND_OBJECT) {
    PyErr_Format(PyExc_ValueError, "Plan(): unknown kind %d", kind);
    goto done;
  }
  if (kind != KIND_TUPLE && PyTuple_GET_SIZE(keys) != n) {
    PyErr_SetString(PyExc_ValueError, "Plan(): one key per loaded field");
    goto done;
  }
  if (!PyCallable_Check(safe)) {
    PyErr_SetString(PyExc_TypeError, "Plan(): safe must be callable");
    goto done;
  }
  if (kind == KIND_OBJECT ? check_class(cls, "cls") < 0 : cls != Py_None) {
    if (!PyErr_Occurred())
      PyErr_SetString(PyExc_ValueError, "Plan(): cls is only for kind 2");
    goto done;
  }
  PyObject *sattr = NULL, *scls = NULL, *sdict = NULL;
  if (state != Py_None) {
    if (kind != KIND_OBJECT || !PyTuple_Check(state) ||
        !PyArg_ParseTuple(state, "UOO!", &sattr, &scls, &PyDict_Type,
                          &sdict)) {
      if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError,
                        "Plan(): state is None or (attr, class, dict), and "
                        "only for kind 2");
      goto done;
    }
    if (check_class(scls, "state class") < 0) goto done;
  }

  /* Keys are interned so attribute lookups on the objects hit by
   * identity, as they do for names the compiler interned. */
  PyObject *ikeys = PyTuple_New(kind == KIND_TUPLE ? 0 : n);
  if (!ikeys) goto done;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(ikeys); i++) {
    PyObject *k = PyTuple_GET_ITEM(keys, i);
    if (!PyUnicode_CheckExact(k)) {
      PyErr_SetString(PyExc_TypeError, "Plan(): keys must be str");
      Py_DECREF(ikeys);
      goto done;
    }
    Py_INCREF(k);
    PyUnicode_InternInPlace(&k);
    PyTuple_SET_ITEM(ikeys, i, k);
  }
  pl->keys = ikeys;
  if (sattr) {
    Py_INCREF(sattr);
    PyUnicode_InternInPlace(&sattr);
    pl->state_attr = sattr;
    pl->state_cls = (PyTypeObject *)Py_NewRef(scls);
    pl->state_dict = Py_NewRef(sdict);
  }
  if (kind != KIND_TUPLE) {
    /* The state attribute comes first in the instance __dict__. */
    if (!(pl->skeleton = PyDict_New())) goto done;
    if (sattr && PyDict_SetItem(pl->skeleton, sattr, Py_None) < 0) goto done;
    for (int i = 0; i < n; i++)
      if (PyDict_SetItem(pl->skeleton, PyTuple_GET_ITEM(ikeys, i),
                         Py_None) < 0)
        goto done;
  }
  for (int i = 0; i < n; i++)
    if (!PyUnicode_Check(PyTuple_GET_ITEM(names, i))) {
      PyErr_SetString(PyExc_TypeError, "Plan(): names must be str");
      goto done;
    }

  /* Loaded field i is the i-th set bit of the mask; its slot follows the
   * slots of the loaded fields before it. */
  const uint8_t *tc = (const uint8_t *)types.buf;
  uint64_t rest = pl->mask;
  pl->varmask = 0;
  pl->has_text = 0;
  for (int i = 0; i < n; i++, rest &= rest - 1) {
    Field *f = &pl->fields[i];
    if (tc[i] < MP_INTEGER || tc[i] > MP_BOOLEAN) {
      PyErr_Format(PyExc_ValueError, "Plan(): unknown type code %d", tc[i]);
      goto done;
    }
    f->type = tc[i];
    f->index = (uint8_t)mp_lowest_bit(rest);
    f->slot = (uint32_t)(MP_SLOT_SIZE * (1 + i));
    f->name = PyTuple_GET_ITEM(names, i);
    f->key = kind == KIND_TUPLE ? NULL : PyTuple_GET_ITEM(ikeys, i);
    if (f->type == MP_TEXT || f->type == MP_BLOB)
      pl->varmask |= (uint64_t)1 << f->index;
    if (f->type == MP_TEXT) pl->has_text = 1;
  }
  pl->model = Py_NewRef(model);
  pl->names = Py_NewRef(names);
  pl->cls = kind == KIND_OBJECT ? (PyTypeObject *)Py_NewRef(cls) : NULL;
  pl->safe = Py_NewRef(safe);
  rc = 0;
done:
  PyBuffer_Release(&types);
  if (rc < 0) Plan_clear(pl); /* a half-built plan must not decode */
  return rc;
}

static int Plan_traverse(Plan *pl, visitproc visit, void *arg) {
  Py_VISIT(pl->model);
  Py_VISIT(pl->names);
  Py_VISIT(pl->keys);
  Py_VISIT(pl->skeleton);
  Py_VISIT(pl->state_attr);
  Py_VISIT(pl->state_dict);
  Py_VISIT(pl->cls);
  Py_VISIT(pl->state_cls);
  Py_VISIT(pl->safe);
  return 0;
}

static int Plan_clear(Plan *pl) {
  /* fields[] only borrows from names and keys: forget them too, so a
   * cleared plan refuses to decode instead of reading freed memory. */
  pl->nfields = 0;
  Py_CLEAR(pl->model);
  Py_CLEAR(pl->names);
  Py_CLEAR(pl->keys);
  Py_CLEAR(pl->skeleton);
  Py_CLEAR(pl->state_attr);
  Py_CLEAR(pl->state_dict);
  Py_CLEAR(pl->cls);
  Py_CLEAR(pl->state_cls);
  Py_CLEAR(pl->safe);
  return 0;
}

static void Plan_dealloc(Plan *pl) {
  PyObject_GC_UnTrack(pl);
  Plan_clear(pl);
  Py_TYPE(pl)->tp_free((PyObject *)pl);
}

static PyMethodDef Plan_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))Plan_decode,
     METH_FASTCALL, decode_doc},
    {NULL, NULL, 0, NULL}};

PyDoc_STRVAR(Plan_doc,
"Plan(model, fingerprint, mask, record_size, types, names, pkpos, kind,\n"
"     cls, keys, state, safe)\n--\n\n"
"A decoder for one (model, mask, builder); see accel.py.");

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "modelpack._modelpack.Plan",
    .tp_basicsize = sizeof(Plan),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = Plan_doc,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Plan_init,
    .tp_dealloc = (destructor)Plan_dealloc,
    .tp_traverse = (traverseproc)Plan_traverse,
    .tp_clear = (inquiry)Plan_clear,
    .tp_methods = Plan_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "modelpack._modelpack",
    .m_doc = "C accelerator of modelpack's decoder (see accel.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__modelpack(void) {
  PyObject *errors = PyImport_ImportModule("modelpack.errors");
  if (!errors) return NULL;
  Py_XSETREF(BlobError, PyObject_GetAttrString(errors, "BlobError"));
  Py_XSETREF(ModelpackError, PyObject_GetAttrString(errors, "ModelpackError"));
  Py_DECREF(errors);
  if (!BlobError || !ModelpackError) return NULL;
  if (PyType_Ready(&PlanType) < 0) return NULL;
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  if (PyModule_AddObjectRef(m, "Plan", (PyObject *)&PlanType) < 0 ||
      PyModule_AddIntConstant(m, "LAYOUT_VERSION", MP_LAYOUT_VERSION) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
