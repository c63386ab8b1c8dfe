"""Turn a blob (one packed row or a batch) into tuples, dicts or objects.

A `Decoder` is built once per (model, mask, builder): it compiles a small
Python function specialised to that layout, so decoding a batch is one
`struct.iter_unpack` over the records plus one expression per field -- no
per-field dispatch at run time.  Text comes out of the heap with one
`decode('ascii')` of the whole heap when the blob carries the ASCII flag
(FORMAT.md), else value by value as UTF-8.

What a record becomes is the builder's business (builders.py): the builder
contributes the lines that make `o` from the field values `v0, v1, ...`.
Records of a safe-packed blob (SAFE flag) always go through the builder's
safe constructor instead, one call per record.

Every blob is validated first (Layout.header), and every TEXT/BLOB slot is
checked against the heap before it is sliced, so a damaged blob raises
BlobError instead of yielding wrong values.  The C accelerator
(_modelpack.c) implements the same contract; tests compare the two.
"""
from .errors import BlobError, ModelpackError
from .layout import FLAG_ASCII, FLAG_SAFE, HEADER_SIZE

def _value_lines(layout, ascii_text):
    """Lines that turn the unpacked slot variables into field values vN."""
    lines = []
    for n, f in enumerate(layout.loaded):
        if f.type in ("TEXT", "BLOB"):
            o, l = "o%d" % n, "l%d" % n
            lines.append("if %s + %s >= hs: bad(%d, nl, %s, %s + %s)"
                         % (o, l, n, _pk_expr(layout), o, l))
            if f.type == "BLOB":
                lines.append("v%d = hb[%s:%s + %s]" % (n, o, o, l))
            elif ascii_text:
                lines.append("v%d = ht[%s:%s + %s]" % (n, o, o, l))
            else:
                lines.append("v%d = hb[%s:%s + %s].decode(enc)" % (n, o, o, l))
        elif f.type == "BOOLEAN":
            lines.append("v%d = v%d != 0" % (n, n))
    return lines


def _pk_expr(layout):
    """The pk's variable, for error messages (None for a TEXT/BLOB key,
    whose value is not decoded yet when a slot is found bad)."""
    for n, f in enumerate(layout.loaded):
        if f.pk:
            return "None" if f.type in ("TEXT", "BLOB") else "v%d" % n
    return "None"


def _slot_targets(layout):
    names = ["nl"]
    for n, f in enumerate(layout.loaded):
        if f.type in ("TEXT", "BLOB"):
            names += ["o%d" % n, "l%d" % n]
        else:
            names.append("v%d" % n)
    return ", ".join(names)


def _null_lines(layout):
    lines = ["if nl:",
             "    if nl & %d: bad(-1, nl, %s, 0)"
             % (~layout.mask & (2**64 - 1), _pk_expr(layout))]
    for n, f in enumerate(layout.loaded):
        lines.append("    if nl & %d: v%d = None" % (1 << f.index, n))
    return lines


def _loop(layout, build, ascii_text, indent):
    pad = " " * indent
    body = _value_lines(layout, ascii_text) + _null_lines(layout) + build
    out = [pad + "for %s in iu(recs):" % _slot_targets(layout)]
    out += [pad + "    " + line for line in body]
    out.append(pad + "    ap(o)")
    return out


def compile_decoder(layout, build_lines, env):
    """Compile `run(recs, hb, ht, hs, out)` for layout with the builder's
    lines; env supplies the names those lines use."""
    has_text = any(f.type == "TEXT" for f in layout.loaded)
    src = ["def run(recs, hb, ht, hs, out, bad, enc):",
           "    ap = out.append"]
    if has_text:
        src.append("    if ht is not None:")
        src += _loop(layout, build_lines, True, 8)
        src.append("        return")
    src += _loop(layout, build_lines, False, 4)
    ns = dict(env)
    ns["iu"] = layout.struct.iter_unpack
    exec("\n".join(src), ns)
    return ns["run"]


class Decoder:
    """Decode blobs of one (model, mask) with one builder."""

    def __init__(self, layout, builder):
        self.layout = layout
        self.builder = builder
        self.has_text = any(f.type == "TEXT" for f in layout.loaded)
        lines, env = builder.fast_code(layout)
        self._fast = compile_decoder(layout, lines, env)
        self._values = compile_decoder(layout, ["o = (%s)" % "".join(
            "v%d, " % n for n in range(len(layout.loaded)))], {})
        self.safe = builder.safe_constructor(layout)
        self._badfn = self._bad(layout)

    def decode(self, blob, out=None):
        """Append the blob's records to out (a new list by default) and
        return it.  Safe-packed blobs go through the safe constructor."""
        if out is None:
            out = []
        lay = self.layout
        flags, count, hs = lay.header(blob)
        start = len(out)
        rend = HEADER_SIZE + count * lay.record_size
        recs = memoryview(blob)[HEADER_SIZE:rend]
        hb = blob[rend:] if hs else b""
        ht, enc = None, "utf-8"
        if flags & FLAG_ASCII and self.has_text:
            # One decode of the whole heap; ASCII maps byte i to char i, so
            # slot offsets index the str.  A heap with other bytes (BLOBs,
            # or a false flag) is decoded value by value, as ASCII, so a
            # false flag is refused rather than believed.
            if hb.isascii():
                ht = hb.decode("ascii")
            else:
                enc = "ascii"
        try:
            if flags & FLAG_SAFE:
                vals = []
                self._values(recs, hb, ht, hs, vals, self._badfn, enc)
                out.extend(map(self.safe, vals))
            else:
                self._fast(recs, hb, ht, hs, out, self._badfn, enc)
        except UnicodeDecodeError:
            del out[start:]
            if enc == "ascii":
                raise lay.error("ASCII flag set on non-ASCII text")
            raise self._unicode_error(recs, hb, hs)
        except BlobError:
            del out[start:]  # no partial result
            raise
        return out

    @staticmethod
    def _bad(lay):
        """The function the compiled loops call on a bad slot or null bit."""
        def bad(n, nl, pk, end):
            if n >= 0 and end == 0 and nl >> lay.loaded[n].index & 1:
                return  # a NULL's zero slot in a blob with an empty heap
            if n < 0:
                what = "%s: null bitmap marks a deferred field" % lay.model
            else:
                what = "%s.%s: value past the end of the heap" % (
                    lay.model, lay.loaded[n].name)
            raise BlobError("modelpack: %s (row %s=%r)" % (
                what, lay.fields[lay.pk].name, pk))
        return bad

    def _unicode_error(self, recs, hb, hs):
        """Find the first record/field whose text is not UTF-8."""
        lay = self.layout
        for rec in lay.struct.iter_unpack(recs):
            k, bad_field, pk = 1, None, None
            for f in lay.loaded:
                if f.pk:
                    pk = rec[k] if f.type not in ("TEXT", "BLOB") else None
                if f.type == "TEXT" and bad_field is None:
                    try:
                        hb[rec[k]:rec[k] + rec[k + 1]].decode()
                    except UnicodeDecodeError:
                        bad_field = f.name
                k += 2 if f.type in ("TEXT", "BLOB") else 1
            if bad_field is not None:
                return ModelpackError(
                    "modelpack: %s.%s: invalid UTF-8 (row %s=%r)" % (
                        lay.model, bad_field, lay.fields[lay.pk].name, pk))
        return ModelpackError("modelpack: %s: invalid UTF-8" % lay.model)
