"""Lazy fields: an instance keeps a reference to its batch and decodes a
field the first time it is read, so a listing that reads two fields of
eleven pays for two.

`LazyBatch` is one validated blob; `value(i, n)` decodes loaded field n of
record i, checking that record's slot against the heap first (the header
was checked up front; slots are checked when they are read, since a lazy
read must not touch records nobody uses).

Plain classes: `into=Lazy(cls)` builds instances of a subclass of cls made
once per (class, layout), whose loaded fields are non-data descriptors: the
first read decodes and stores the value in `__dict__`, later reads never
reach the descriptor.  Django keeps the model's own class and hooks in
through `_state` instead (modelpack.django.lazy).
"""
import struct

from .errors import BlobError, ModelpackError
from .layout import FLAG_SAFE, HEADER_SIZE

_SLOT = {"INTEGER": struct.Struct("<q"), "BOOLEAN": struct.Struct("<q"),
         "REAL": struct.Struct("<d"), "TEXT": struct.Struct("<II"),
         "BLOB": struct.Struct("<II")}
_U64 = struct.Struct("<Q")


class LazyBatch:
    __slots__ = ("blob", "layout", "heap", "hs", "rs", "offs")

    def __init__(self, blob, layout, count, hs):
        self.blob = blob
        self.layout = layout
        self.rs = layout.record_size
        self.heap = HEADER_SIZE + count * self.rs
        self.hs = hs
        self.offs = [f.offset for f in layout.loaded]

    def value(self, i, n):
        f = self.layout.loaded[n]
        rec = HEADER_SIZE + i * self.rs
        nulls = _U64.unpack_from(self.blob, rec)[0]
        if nulls & ~self.layout.mask:
            raise BlobError("modelpack: %s: null bitmap marks a deferred "
                            "field" % self.layout.model)
        if nulls >> f.index & 1:
            return None
        v = _SLOT[f.type].unpack_from(self.blob, rec + self.offs[n])
        if f.type in ("TEXT", "BLOB"):
            o, l = v
            if o + l >= self.hs:
                raise BlobError("modelpack: %s.%s: value past the end of the "
                                "heap" % (self.layout.model, f.name))
            b = self.blob[self.heap + o:self.heap + o + l]
            if f.type == "BLOB":
                return b
            try:
                return b.decode()
            except UnicodeDecodeError:
                raise ModelpackError("modelpack: %s.%s: invalid UTF-8"
                                     % (self.layout.model, f.name))
        return v[0] != 0 if f.type == "BOOLEAN" else v[0]

    def keys(self, pos):
        """(record index, value of loaded field pos) for every record: one
        struct pass for an INTEGER key, value() for any other."""
        f = self.layout.loaded[pos]
        count = (self.heap - HEADER_SIZE) // self.rs
        if f.type != "INTEGER":
            return [(i, self.value(i, pos)) for i in range(count)]
        off, bit = self.offs[pos], 1 << f.index
        fmt = struct.Struct("<Q%dxq%dx" % (off - 8, self.rs - off - 8))
        recs = memoryview(self.blob)[HEADER_SIZE:self.heap]
        return enumerate(None if nl & bit else v
                         for nl, v in fmt.iter_unpack(recs))


def open_batch(layout, blob):
    flags, count, hs = layout.header(blob)
    return flags, LazyBatch(blob, layout, count, hs)


class _LazyField:
    """Non-data descriptor: decode on first read, then live in __dict__."""

    def __init__(self, name, n):
        self.name, self.n = name, n

    def __get__(self, inst, owner=None):
        if inst is None:
            return self
        batch, i = inst.__dict__["_mp_lazy"]
        v = inst.__dict__[self.name] = batch.value(i, self.n)
        return v


class Lazy:
    """Builder marker: `model.select(into=Lazy(cls))`.  The primary key is
    decoded up front; every other loaded field on first read.  Safe-packed
    blobs are built eagerly through cls's constructor (hooks must run)."""

    lazy = True

    def __init__(self, cls):
        self.cls = cls
        self._subs = {}

    def eager_builder(self):
        from .builders import ObjectBuilder
        return ObjectBuilder(self.cls)

    def subclass(self, layout):
        sub = self._subs.get(layout.fingerprint)
        if sub is None:
            attrs = {f.name: _LazyField(f.name, n)
                     for n, f in enumerate(layout.loaded) if not f.pk}
            sub = type(self.cls.__name__, (self.cls,), attrs)
            sub.__qualname__ = self.cls.__qualname__
            sub.__module__ = self.cls.__module__
            self._subs[layout.fingerprint] = sub
        return sub


    def lazy_objects(self, layout, batch, out):
        sub, new = self.subclass(layout), object.__new__
        pkpos = [n for n, f in enumerate(layout.loaded) if f.pk][0]
        pk, ap = layout.loaded[pkpos].name, out.append
        for i, key in batch.keys(pkpos):
            o = new(sub)
            o.__dict__ = {pk: key, "_mp_lazy": (batch, i)}
            ap(o)


class LazyDecoder:
    """Decoder for lazy builders (see Model.decoder): validates the header
    and lets the builder make the objects; safe-packed blobs are decoded
    eagerly by `eager`, since their constructor must see every value."""

    def __init__(self, layout, builder, eager):
        self.layout = layout
        self.builder = builder
        self.eager = eager

    def decode(self, blob, out=None):
        if out is None:
            out = []
        flags, batch = open_batch(self.layout, blob)
        if flags & FLAG_SAFE:
            return self.eager.decode(blob, out)
        self.builder.lazy_objects(self.layout, batch, out)
        return out
