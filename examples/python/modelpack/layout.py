"""One model's layout for one deferred-field mask, read from the extension.

`modelpack_layout(model, mask)` is the source of truth (docs/FORMAT.md); this
module turns its JSON into a `Layout` that the decoders are built from, and
checks a blob's 48-byte header against it before anything else reads the
blob.
"""
import json
import struct

from .errors import BlobError

HEADER = struct.Struct("<4sHHIIQQQII")
HEADER_SIZE = 48
FLAG_SAFE = 0x1
FLAG_BATCH = 0x2
FLAG_ASCII = 0x4
FLAGS_KNOWN = FLAG_SAFE | FLAG_BATCH | FLAG_ASCII
VAR_TYPES = ("TEXT", "BLOB")


class Field:
    __slots__ = ("index", "name", "type", "column", "notnull", "pk",
                 "hooked", "loaded", "offset")

    def __init__(self, d):
        for k in self.__slots__:
            setattr(self, k, d[k])

    def __repr__(self):
        return "Field(%s %s%s)" % (self.name, self.type,
                                   "" if self.loaded else " deferred")


class Layout:
    """Fields, mask, fingerprint and record struct of (model, mask)."""

    def __init__(self, text):
        d = json.loads(text)
        if d["layout_version"] != 1 or d["header_size"] != HEADER_SIZE:
            raise BlobError("modelpack: %s: layout version %r not supported"
                            % (d["model"], d["layout_version"]))
        self.model = d["model"]
        self.mask = d["mask"]
        self.fingerprint = int(d["fingerprint"], 16)
        self.record_size = d["record_size"]
        self.pk = d["pk"]
        self.hooks = d.get("hooks", "")
        self.struct = struct.Struct(d["struct"])
        self.fields = [Field(f) for f in d["fields"]]
        self.loaded = [f for f in self.fields if f.loaded]
        self.varmask = 0
        for f in self.loaded:
            if f.type in VAR_TYPES:
                self.varmask |= 1 << f.index

    @property
    def names(self):
        return [f.name for f in self.loaded]

    def header(self, blob):
        """Validate blob's header against this layout; return
        (flags, count, heap_size).  Raises BlobError naming the model."""
        if len(blob) < HEADER_SIZE:
            raise self.error("blob too short (%d bytes)" % len(blob))
        (magic, version, flags, count, rsize, fp, mask, varmask, heap,
         reserved) = HEADER.unpack_from(blob)
        if magic != b"MPAK":
            raise self.error("not a modelpack blob (bad magic)")
        if version != 1:
            raise self.error("layout version %d not supported" % version)
        if flags & ~FLAGS_KNOWN or reserved:
            raise self.error("unknown flags 0x%x" % flags)
        if fp != self.fingerprint or mask != self.mask:
            raise self.error("blob belongs to another model or mask "
                             "(fingerprint mismatch)")
        if rsize != self.record_size or varmask != self.varmask:
            raise self.error("record size or varmask does not match layout")
        if count < 1 or HEADER_SIZE + count * rsize + heap != len(blob):
            raise self.error("blob length %d does not match its header"
                             % len(blob))
        return flags, count, heap

    def error(self, what):
        return BlobError("modelpack: %s: %s" % (self.model, what))


def peek_mask(blob):
    """The mask a blob claims, so a client can pick the layout to check it
    against; None when the blob is too short to have one."""
    if len(blob) < HEADER_SIZE:
        return None
    return HEADER.unpack_from(blob)[6]
