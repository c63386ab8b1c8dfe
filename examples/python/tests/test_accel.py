"""The C accelerator (modelpack/_modelpack.c) against the pure decoder.

decoder.py is the reference: for every blob the extension packs here (all
five field types, NULLs, deferred-field masks, unicode, empty values, blobs
with NUL bytes, batches of one and of many records, fast and safe packing)
and every kind of result (tuples, dicts, objects, objects with a state
object), the accelerator must give the same records, and for every damaged
blob it must raise the same exception with the same message, leaving `out`
as it was.  Results are also checked against the rows read back with plain
SQL, so a bug shared by both decoders shows up too.

    cd examples/python && python3 setup.py build_ext --inplace
    python3 -m unittest tests.test_accel

Skipped when the accelerator is not built (or MODELPACK_PURE=1), or when
the SQLite extension cannot be loaded.
"""
import gc
import sqlite3
import struct
import tracemalloc
import unittest

import modelpack
from modelpack import accel
from modelpack.builders import DictBuilder, ObjectBuilder, TupleBuilder
from modelpack.decoder import Decoder
from modelpack.errors import DEFERRED, BlobError, ModelpackError
from modelpack.layout import FLAG_ASCII, FLAG_SAFE, HEADER, HEADER_SIZE

try:
    from modelpack import _modelpack
except ImportError:
    _modelpack = None

try:
    _EXTENSION = modelpack.extension_path()
except ModelpackError:
    _EXTENSION = None

needs_accel = unittest.skipIf(
    _modelpack is None or not accel.available,
    "modelpack._modelpack not built (python3 setup.py build_ext --inplace) "
    "or MODELPACK_PURE=1")
needs_extension = unittest.skipIf(
    _EXTENSION is None, "modelpack.so not found (run make)")

# The pk is not the first field, and TEXT fields sit on both sides of
# deferred ones, so loaded positions, model indexes and slots all differ.
FIELDS = ["title TEXT", "id INTEGER PRIMARY KEY", "body BLOB", "score REAL",
          "flag BOOLEAN", "n INTEGER", "note TEXT"]
COLUMNS = ["title", "id", "body", "score", "flag", "n", "note"]

SPECIAL_ROWS = [
    ("Dune", 1, b"\x00\x01\x00", 9.5, 1, 2**63 - 1, "ascii"),
    ("\u00c9mile", 2, None, None, 0, -2**63, None),
    (None, 3, b"", -1.25e300, None, 0, ""),
    ("", 4, b"\xff\x00\xfe", 5e-324, 1, None, "\u65e5\u672c\u8a9e \U0001f98a"),
    ("a\x00b", 5, None, float("inf"), None, None, None),
    (None, 6, None, None, None, None, None),
    ("x" * 300, 7, bytes(range(256)), -0.5, 0, -1, "\x7f"),
]
BULK_ROWS = [("title %d" % i, i, bytes([i % 128]) * (i % 5), i * 0.25,
              i % 2, i * i, "note" * (i % 3)) for i in range(10, 260)]


class Book:
    """A plain class; __init__ is the safe constructor, never the fast one."""

    init_calls = 0

    def __init__(self, title, id, body, score, flag, n, note):
        Book.init_calls += 1
        self.title, self.id, self.body, self.score = title, id, body, score
        self.flag, self.n, self.note = flag, n, note


class Slotted:
    __slots__ = ("extra", "__dict__")


class State:
    pass


class StateBuilder(ObjectBuilder):
    """Like Django's builder: each object gets a fresh `_state` object."""

    STATE = {"db": "default", "adding": False}

    def fast_code(self, layout):
        items = ", ".join("%r: v%d" % (self.attrs.get(f.name, f.name), n)
                          for n, f in enumerate(layout.loaded))
        return (["s = new(State)", "s.__dict__ = dict(SD)", "o = new(cls)",
                 "o.__dict__ = {'_state': s, %s}" % items],
                {"new": object.__new__, "cls": self.cls, "State": State,
                 "SD": self.STATE})

    def accel_spec(self, layout):
        kind, cls, keys, _ = super().accel_spec(layout)
        return kind, cls, keys, ("_state", State, self.STATE)


def builders():
    return [TupleBuilder(), DictBuilder(), ObjectBuilder(Book),
            ObjectBuilder(Book, attrs={"title": "name", "note": "remark"}),
            ObjectBuilder(Slotted, safe=lambda *a: a), StateBuilder(Book)]


def canon(x):
    """A comparable form that also tells bool from int, -0.0 from 0.0,
    key order and classes apart."""
    if isinstance(x, tuple):
        return ("tuple",) + tuple(canon(v) for v in x)
    if isinstance(x, list):
        return ["list"] + [canon(v) for v in x]
    if isinstance(x, dict):
        return ("dict",) + tuple((k, canon(v)) for k, v in x.items())
    if hasattr(x, "__dict__") and not isinstance(x, type):
        return ("object", type(x)) + canon(vars(x))
    return (type(x), repr(x))


def pure_trips(layout, blob):
    """Valid blobs that older versions of decoder.py refused: a NULL
    TEXT/BLOB value when the heap is empty (its zero slot failed
    `o + l >= hs`), and the ASCII flag over a BLOB byte >= 0x80 (the whole
    heap was decoded as ASCII, BLOBs included).  When the pure decoder
    refuses one of these, the records are checked against SQL only."""
    flags, count, hs = layout.header(blob)
    types = {f.type for f in layout.loaded}
    if hs == 0 and types & {"TEXT", "BLOB"}:
        return True
    heap = blob[HEADER_SIZE + count * layout.record_size:]
    return bool(flags & FLAG_ASCII and "BLOB" in types
                and any(b >= 0x80 for b in heap))


def error_of(fn):
    try:
        fn()
    except Exception as e:  # compared by class and message
        return type(e), str(e)
    return None


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.db = modelpack.connect(":memory:")
        conn = cls.db.conn
        conn.execute("CREATE TABLE src(%s)" % ", ".join(
            c + (" INTEGER PRIMARY KEY" if c == "id" else "")
            for c in COLUMNS))
        conn.executemany("INSERT INTO src(%s) VALUES (%s)" % (
            ", ".join(COLUMNS), ", ".join("?" * len(COLUMNS))),
            SPECIAL_ROWS + BULK_ROWS)
        cls.model = cls.db.declare("book", source="src", fields=FIELDS)

    def blobs(self, mask=None, batch=1000, mode=None, where=None):
        sql = ["SELECT packed FROM book WHERE batch = ?"]
        args = [batch]
        if mask is not None:
            sql.append("AND mask = ?")
            args.append(mask)
        if mode is not None:
            sql.append("AND mode = ?")
            args.append(mode)
        if where:
            sql.append("AND " + where)
        sql.append("ORDER BY id")
        return [r[0] for r in self.db.execute(" ".join(sql), args)]

    def truth(self, layout, where=None):
        """The loaded values of each row, read with plain SQL."""
        cols = ", ".join(f.name for f in layout.loaded)
        rows = self.db.execute("SELECT %s FROM src %s ORDER BY id" % (
            cols, "WHERE " + where if where else "")).fetchall()
        return [tuple(bool(v) if f.type == "BOOLEAN" and v is not None
                      else v for f, v in zip(layout.loaded, row))
                for row in rows]

    @staticmethod
    def expected(layout, builder, vals, safe):
        """What a record of vals becomes, built the slow obvious way."""
        if safe:
            return builder.safe_constructor(layout)(vals)
        kind, cls, keys, state = builder.accel_spec(layout)
        if kind == 0:
            return tuple(vals)
        d = {}
        if state is not None:
            s = object.__new__(state[1])
            s.__dict__ = dict(state[2])
            d[state[0]] = s
        d.update(zip(keys, vals))
        if kind == 1:
            return d
        o = object.__new__(cls)
        o.__dict__ = d
        return o

    def decoders(self, layout, builder):
        return Decoder(layout, builder), accel.AccelDecoder(layout, builder)


@needs_accel
@needs_extension
class SameRecords(Base):
    """Valid blobs: the accelerator gives what the pure decoder gives."""

    def check(self, mask=None, batch=1000, mode=None, where=None):
        layout = self.model.layout(mask)
        blobs = self.blobs(layout.mask, batch, mode, where)
        truth = self.truth(layout, where)
        self.assertTrue(blobs)
        for builder in builders():
            pure, fast = self.decoders(layout, builder)
            with self.subTest(mask=layout.mask, batch=batch, mode=mode,
                              builder=type(builder).__name__):
                got = ["before"]
                for blob in blobs:
                    start = len(got)
                    self.assertIs(fast.decode(blob, got), got)
                    try:
                        ref = pure.decode(blob)
                    except BlobError:
                        if pure_trips(layout, blob):
                            continue
                        raise
                    self.assertEqual(canon(got[start:]), canon(ref))
                want = ["before"] + [
                    self.expected(layout, builder, v,
                                  blobs[0][6] & FLAG_SAFE) for v in truth]
                self.assertEqual(canon(got), canon(want))

    def test_all_fields(self):
        for batch in (1, 7, 1000):
            self.check(batch=batch)

    def test_deferred_masks(self):
        for fields in (["title"], ["note"], ["body", "flag"],
                       ["score", "n"], ["note", "title", "n"]):
            for batch in (1, 1000):
                self.check(self.model.mask(fields), batch)

    def test_safe_packing(self):
        for fields in (None, ["note", "flag"]):
            mask = None if fields is None else self.model.mask(fields)
            for batch in (1, 1000):
                self.check(mask, batch, mode="safe")

    def test_flags_seen(self):
        """The data above reaches both text paths and the safe path."""
        flags = {b[6] for b in self.blobs(batch=1)}
        flags |= {b[6] for b in self.blobs(batch=1000, mode="safe")}
        self.assertTrue(any(f & FLAG_ASCII for f in flags))
        self.assertTrue(any(not f & FLAG_ASCII for f in flags))
        self.assertTrue(any(f & FLAG_SAFE for f in flags))

    def test_pure_decoder_bug_blobs(self):
        """Blobs decoder.py wrongly refuses still decode right here."""
        self.check(self.model.mask(["body"]), batch=1, where="id = 6")
        self.check(self.model.mask(["body"]), batch=1, where="id = 7")

    def test_fast_objects_skip_init(self):
        layout = self.model.layout()
        calls = Book.init_calls
        objs = accel.AccelDecoder(layout, ObjectBuilder(Book)).decode(
            self.blobs(batch=1000)[0])
        self.assertEqual(Book.init_calls, calls)
        o = objs[0]
        o.extra = 1  # the instance stays an ordinary, writable object
        self.assertEqual(vars(o)["extra"], 1)
        self.assertEqual(o.title, "Dune")
        s = accel.AccelDecoder(layout, StateBuilder(Book)).decode(
            self.blobs(batch=1000)[0])
        self.assertIsNot(s[0]._state, s[1]._state)
        self.assertIsNot(vars(s[0]._state), StateBuilder.STATE)
        self.assertEqual(list(vars(s[0]))[0], "_state")

    def test_safe_gets_deferred(self):
        layout = self.model.layout(self.model.mask(["title"]))
        seen = []
        b = ObjectBuilder(Book, safe=lambda *a: seen.append(a) or a)
        accel.AccelDecoder(layout, b).decode(
            self.blobs(layout.mask, mode="safe", where="id = 1")[0])
        self.assertEqual(seen, [("Dune", 1) + (DEFERRED,) * 5])

    def test_bytes_like(self):
        layout = self.model.layout()
        blob = self.blobs(batch=1000)[0]
        fast = accel.AccelDecoder(layout, TupleBuilder())
        want = fast.decode(blob)
        self.assertEqual(fast.decode(bytearray(blob)), want)
        self.assertEqual(fast.decode(memoryview(blob)), want)


@needs_accel
@needs_extension
class DamagedBlobs(Base):
    """Damaged blobs: both decoders refuse with the same error; `out`
    keeps its contents."""

    def setUp(self):
        self.layout = self.model.layout()
        self.deferred = self.model.layout(self.model.mask(["note", "n"]))

    def refuse(self, layout, blob, exc=BlobError, pure_too=True):
        for builder in builders():
            pure, fast = self.decoders(layout, builder)
            with self.subTest(builder=type(builder).__name__):
                out = ["keep"]
                err = error_of(lambda: fast.decode(blob, out))
                self.assertIsNotNone(err, "accelerator accepted the blob")
                self.assertTrue(issubclass(err[0], exc), err)
                self.assertEqual(out, ["keep"])
                if pure_too:
                    self.assertEqual(err, error_of(lambda: pure.decode(blob)))
        return err[1]

    def patched(self, blob, fmt, offset, value):
        b = bytearray(blob)
        struct.pack_into(fmt, b, offset,
                         *(value if isinstance(value, tuple) else (value,)))
        return bytes(b)

    def batch(self, layout=None, **kw):
        layout = layout or self.layout
        blob = self.blobs(layout.mask, batch=1000, **kw)[0]
        self.assertGreater(HEADER.unpack_from(blob)[3], 100)
        return blob

    def header_field(self, blob, n):
        return HEADER.unpack_from(blob)[n]

    def test_truncated(self):
        blob = self.batch()
        for cut in (0, 1, 47, 48, len(blob) - 1):
            with self.subTest(cut=cut):
                self.refuse(self.layout, blob[:cut])
        self.refuse(self.layout, blob + b"\0")

    def test_header_fields(self):
        blob = self.batch()
        count, rsize = HEADER.unpack_from(blob)[3:5]
        heap = self.header_field(blob, 8)
        cases = [
            ("magic", "4s", 0, b"MPAX", "bad magic"),
            ("version", "<H", 4, 2, "version 2"),
            ("flags", "<H", 6, 0x8 | blob[6], "unknown flags"),
            ("reserved", "<I", 44, 1, "unknown flags"),
            ("fingerprint", "<Q", 16, self.layout.fingerprint ^ 1,
             "fingerprint mismatch"),
            ("mask", "<Q", 24, self.layout.mask >> 1, "fingerprint"),
            ("varmask", "<Q", 32, 1, "varmask"),
            ("record_size", "<I", 12, rsize + 8, "record size"),
            ("count+1", "<I", 8, count + 1, "length"),
            ("count-1", "<I", 8, count - 1, "length"),
            ("count0", "<I", 8, 0, "length"),
            ("count-huge", "<I", 8, 0xFFFFFFFF, "length"),
            ("heap+1", "<I", 40, heap + 1, "length"),
            ("heap-1", "<I", 40, heap - 1, "length"),
        ]
        for name, fmt, off, value, words in cases:
            with self.subTest(name):
                msg = self.refuse(self.layout,
                                  self.patched(blob, fmt, off, value))
                self.assertIn(words, msg)
                self.assertTrue(msg.startswith("modelpack: book: "), msg)

    def slot(self, layout, record, field):
        """Byte offset of a field's slot in a blob of layout."""
        f = [f for f in layout.loaded if f.name == field][0]
        return HEADER_SIZE + record * layout.record_size + f.offset

    def test_slot_past_heap(self):
        blob = self.batch()
        count = self.header_field(blob, 3)
        heap = self.header_field(blob, 8)
        last = count - 1  # records before it decode fine: out must unwind
        off, n = struct.unpack_from("<II", blob, self.slot(
            self.layout, last, "title"))
        for field in ("title", "body", "note"):
            at = self.slot(self.layout, last, field)
            for new in ((heap, 0), (heap - n, n), (0, heap),
                        (0xFFFFFFFF, 0xFFFFFFFF), (1, 0xFFFFFFFF)):
                with self.subTest(field=field, slot=new):
                    msg = self.refuse(self.layout, self.patched(
                        blob, "<II", at, new))
                    self.assertEqual(
                        msg, "modelpack: book.%s: value past the end of the "
                        "heap (row id=%d)" % (field, BULK_ROWS[-1][1]))
        # The last byte of the heap is a terminator: a value may end there.
        ok = self.patched(blob, "<II", self.slot(self.layout, last, "title"),
                          (heap - 1, 0))
        self.assertEqual(accel.AccelDecoder(self.layout, TupleBuilder())
                         .decode(ok)[-1][0], "")

    def test_null_slot_past_heap(self):
        blob = self.batch()
        at = self.slot(self.layout, 2, "title")  # row 3: title is NULL
        self.assertEqual(blob[at:at + 8], bytes(8))
        heap = self.header_field(blob, 8)
        msg = self.refuse(self.layout, self.patched(blob, "<II", at,
                                                    (heap, 0)))
        self.assertEqual(msg, "modelpack: book.title: value past the end "
                         "of the heap (row id=3)")

    def test_null_bit_on_deferred_field(self):
        blob = self.batch(self.deferred)
        count = self.header_field(blob, 3)
        title = [f for f in self.layout.fields if f.name == "title"][0]
        rec = HEADER_SIZE + (count - 1) * self.deferred.record_size
        nulls, = struct.unpack_from("<Q", blob, rec)
        msg = self.refuse(self.deferred, self.patched(
            blob, "<Q", rec, nulls | 1 << title.index))
        self.assertEqual(msg, "modelpack: book: null bitmap marks a deferred "
                         "field (row id=%d)" % BULK_ROWS[-1][1])
        msg = self.refuse(self.deferred, self.patched(
            blob, "<Q", rec, nulls | 1 << 63))
        self.assertIn("deferred", msg)

    def test_another_mask(self):
        self.refuse(self.layout, self.batch(self.deferred))
        self.refuse(self.deferred, self.batch())

    def test_false_ascii_flag(self):
        # The accelerator copies ASCII text without decoding it, so a false
        # flag would make a malformed str; decoder.py decodes such a heap
        # value by value as ASCII.  Both refuse the blob.
        blob = self.blobs(batch=1, where="id = 2")[0]
        self.assertFalse(blob[6] & FLAG_ASCII)
        msg = self.refuse(self.layout, self.patched(
            blob, "<H", 6, blob[6] | FLAG_ASCII))
        self.assertIn("ASCII flag set on non-ASCII text", msg)

    def test_invalid_utf8(self):
        conn = self.db.conn
        conn.execute("CREATE TABLE bad(id INTEGER PRIMARY KEY, t TEXT, u TEXT)")
        conn.execute("INSERT INTO bad VALUES (1, 'ok', 'fine'), "
                     "(2, 'ok', 'fine'), "
                     "(3, 'ok', CAST(x'c328' AS TEXT))")
        m = self.db.declare("badm", source="bad", fields=[
            "id INTEGER PRIMARY KEY", "t TEXT", "u TEXT"])
        layout = m.layout()
        blob = self.db.execute("SELECT packed FROM badm WHERE batch = 10 "
                               "AND mode = 'fast'").fetchone()[0]
        for builder in builders()[:2]:
            pure, fast = self.decoders(layout, builder)
            out = ["keep"]
            err = error_of(lambda: fast.decode(blob, out))
            self.assertEqual(err, (ModelpackError, "modelpack: badm.u: "
                                   "invalid UTF-8 (row id=3)"))
            self.assertEqual(err, error_of(lambda: pure.decode(blob)))
            self.assertEqual(out, ["keep"])
        try:
            fast.decode(blob)
        except ModelpackError as e:
            self.assertIsInstance(e.__context__, UnicodeDecodeError)

    def test_safe_constructor_error(self):
        blob = self.batch(mode="safe")
        calls = []

        def safe(*vals):
            calls.append(vals)
            if len(calls) == 50:
                raise ZeroDivisionError("from the constructor")
            return vals
        fast = accel.AccelDecoder(self.layout, ObjectBuilder(Book, safe=safe))
        out = ["keep"]
        with self.assertRaises(ZeroDivisionError):
            fast.decode(blob, out)
        self.assertEqual(out, ["keep"])

    def test_damaged_safe_blob_runs_no_constructor(self):
        blob = self.batch(mode="safe")
        count = self.header_field(blob, 3)
        bad = self.patched(blob, "<II", self.slot(
            self.layout, count - 1, "title"), (0xFFFFFFFF, 1))
        calls = []
        fast = accel.AccelDecoder(
            self.layout, ObjectBuilder(Book, safe=lambda *a: calls.append(a)))
        self.assertRaises(BlobError, fast.decode, bad, [])
        self.assertEqual(calls, [])


@needs_accel
@needs_extension
class PlanArguments(Base):
    def plan_args(self, **kw):
        layout = self.model.layout()
        args = dict(model="book", fingerprint=layout.fingerprint,
                    mask=layout.mask, record_size=layout.record_size,
                    types=bytes([3, 1, 4, 2, 5, 1, 3]),
                    names=tuple(COLUMNS), pkpos=1, kind=0, cls=None, keys=(),
                    state=None, safe=tuple)
        args.update(kw)
        return args

    def test_valid(self):
        plan = _modelpack.Plan(**self.plan_args())
        out = []
        plan.decode(self.blobs(batch=1, where="id = 1")[0], out)
        self.assertEqual(out, [SPECIAL_ROWS[0][:4] + (True,)
                               + SPECIAL_ROWS[0][5:]])
        self.assertRaises(TypeError, plan.decode, b"", ())
        self.assertRaises(TypeError, plan.decode, "text", [])
        self.assertRaises(TypeError, plan.decode, b"")

    def test_refused(self):
        class Abstract:
            pass
        Abstract.__abstractmethods__ = frozenset(["f"])

        class NoDict:
            __slots__ = ()

        class OwnNew:
            def __new__(cls):
                return object.__new__(cls)
        keys = tuple(COLUMNS)
        bad = [dict(types=bytes([3, 1, 4, 2, 5, 1])),
               dict(types=bytes([3, 1, 4, 2, 5, 1, 9])),
               dict(record_size=8), dict(pkpos=7), dict(kind=3),
               dict(names=("a",)), dict(safe=None),
               dict(kind=1, keys=("a",)), dict(kind=1, keys=(1,) * 7),
               dict(kind=2, cls=None, keys=keys), dict(kind=0, cls=Book),
               dict(kind=2, cls=Abstract, keys=keys),
               dict(kind=2, cls=NoDict, keys=keys),
               dict(kind=2, cls=OwnNew, keys=keys),
               dict(kind=2, cls=int, keys=keys),
               dict(kind=2, cls=Book, keys=keys, state=("s", State)),
               dict(kind=2, cls=Book, keys=keys, state=("s", NoDict, {})),
               dict(kind=1, keys=keys, state=("s", State, {})),
               dict(mask=0), dict(fingerprint=-1)]
        for kw in bad:
            with self.subTest(kw):
                self.assertRaises((TypeError, ValueError, OverflowError),
                                  _modelpack.Plan, **self.plan_args(**kw))


@needs_accel
@needs_extension
class NoLeaks(Base):
    """Memory stays flat over many decodes, errors included (a lost
    reference per record or per error would grow it)."""

    def test_flat(self):
        layout = self.model.layout()
        blob = self.blobs(batch=50, mode="fast")[1]
        safe_blob = self.blobs(batch=50, mode="safe")[1]
        count = HEADER.unpack_from(blob)[3]
        bad_slot = bytearray(blob)
        struct.pack_into("<II", bad_slot, HEADER_SIZE + (count - 1)
                         * layout.record_size + 8, 0xFFFFFFFF, 1)
        bad_slot = bytes(bad_slot)
        decs = [accel.AccelDecoder(layout, b) for b in builders()]

        def work():
            for d in decs:
                d.decode(blob)
                d.decode(safe_blob)
                for bad in (bad_slot, blob[:-1]):
                    try:
                        d.decode(bad, [1])
                    except BlobError:
                        pass
        for _ in range(50):
            work()
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for _ in range(300):
                work()
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        # 300 rounds * ~6 decoders * 100 records: a leak of one small
        # object per record would be megabytes.
        self.assertLess(grown, 64 * 1024)


if __name__ == "__main__":
    unittest.main()
