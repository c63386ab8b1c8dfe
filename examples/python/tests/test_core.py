"""The Python client without Django: declare, read packed rows and batches,
decode them into tuples, dicts and objects, and refuse bad blobs.

Every expectation is the source table read with plain SQL, so a decoder that
drops, reorders or mangles a value fails.  Run under CPython (with the C
accelerator when built) and PyPy: `make test-python`.
"""
import os
import sqlite3
import struct
import unittest

import modelpack
from modelpack import DEFERRED, BlobError, ModelpackError
from modelpack.builders import DictBuilder, ObjectBuilder, TupleBuilder
from modelpack.decoder import Decoder

ROWS = [
    (1, "plain", 2.5, b"\x00\x01", 1, 10),
    (2, None, None, None, None, None),
    (3, "h\u00e9llo \u2603 \U0001F600", -0.0, b"", 0, -(2**63)),
    (4, "", 1e300, b"\x00" * 300, 5, 2**63 - 1),
    (5, "x" * 5000, float("inf"), b"z", 1, 0),
]
FIELDS = ["id INTEGER PRIMARY KEY", "title TEXT", "price REAL", "data BLOB",
          "ok BOOLEAN", "big INTEGER"]


def expected(row, fields=None):
    """A source row as the client must return it (BOOLEAN as bool)."""
    names = ["id", "title", "price", "data", "ok", "big"]
    out = []
    for n, v in zip(names, row):
        if fields is None or n in fields or n == "id":
            out.append(v if n != "ok" or v is None else v != 0)
    return tuple(out)


class Plain:
    pass


class Checked:
    def __init__(self, *args):
        self.args = args


def make_db():
    db = modelpack.connect(":memory:")
    db.conn.execute("CREATE TABLE src(id INTEGER PRIMARY KEY, title TEXT, "
                    "price REAL, data BLOB, ok BOOLEAN, big INTEGER)")
    db.conn.executemany("INSERT INTO src VALUES (?,?,?,?,?,?)", ROWS)
    return db


class CoreTest(unittest.TestCase):
    def setUp(self):
        self.db = make_db()
        self.m = self.db.declare("m", "src", FIELDS)

    def test_tuples_match_source(self):
        self.assertEqual(self.m.select(order_by="id"),
                         [expected(r) for r in ROWS])

    def test_batches_of_every_size(self):
        for batch in (1, 2, 3, 5, 1000):
            got = self.m.select(order_by="id", batch=batch)
            self.assertEqual(got, [expected(r) for r in ROWS], batch)

    def test_dicts_and_masks(self):
        got = self.m.select(fields=["title", "ok"], into=dict, order_by="id")
        self.assertEqual(got, [dict(zip(("id", "title", "ok"),
                                        expected(r, ("title", "ok"))))
                               for r in ROWS])
        self.assertEqual(self.m.mask(["title"]), 3)

    def test_objects_fast_path_skips_init(self):
        objs = self.m.select(into=Checked, fields=["price"], order_by="id")
        self.assertEqual([type(o) for o in objs], [Checked] * len(ROWS))
        self.assertEqual([vars(o) for o in objs],
                         [{"id": r[0], "price": r[2]} for r in ROWS])

    def test_safe_path_runs_constructor_with_deferred(self):
        self.m.hooks("post_init")
        objs = self.m.select(into=Checked, fields=["title"], order_by="id",
                             mode="fast")
        self.assertFalse(any(hasattr(o, "args") for o in objs))
        objs = self.m.select(into=Checked, fields=["title"], order_by="id",
                             where="title IS NOT NULL")
        want = [(r[0], r[1]) + (DEFERRED,) * 4 for r in ROWS if r[1] is not None]
        self.assertEqual([o.args for o in objs], want)

    def test_filters_and_params(self):
        got = self.m.select(where="id > ? AND title IS NOT NULL",
                            params=(1,), order_by="id DESC")
        self.assertEqual(got, [expected(r) for r in reversed(ROWS)
                               if r[0] > 1 and r[1] is not None])

    def test_query_any_select(self):
        got = self.m.query("SELECT id, title FROM src WHERE id IN (?, ?) "
                           "ORDER BY id", (3, 1))
        self.assertEqual(got, [(1, "plain"), (3, ROWS[2][1])])

    def test_per_row_blob(self):
        blob = self.db.execute("SELECT packed FROM m WHERE id = 3").fetchone()[0]
        self.assertEqual(self.m.decode(blob), [expected(ROWS[2])])
        self.assertEqual(self.m.decode(blob, dict)[0]["title"], ROWS[2][1])

    def test_pure_and_accel_agree(self):
        blobs = [r[0] for r in self.db.execute(
            "SELECT packed FROM m WHERE batch = 2 ORDER BY id")]
        for b in (TupleBuilder(), DictBuilder(), ObjectBuilder(Plain)):
            pure, fast = [], []
            for blob in blobs:
                lay = self.m.layout(modelpack.layout.peek_mask(blob))
                Decoder(lay, b).decode(blob, pure)
                self.m.decode(blob, b, fast)
            if isinstance(b, ObjectBuilder):
                pure, fast = [vars(o) for o in pure], [vars(o) for o in fast]
            self.assertEqual(pure, fast)

    def test_non_ascii_heap_and_invalid_utf8(self):
        self.db.conn.execute("INSERT INTO src(id, title) VALUES "
                             "(9, CAST(x'ff41' AS TEXT))")
        with self.assertRaisesRegex(ModelpackError,
                                    r"m\.title: invalid UTF-8 \(row id=9\)"):
            self.m.select()

    def test_declare_errors_are_sql_errors(self):
        with self.assertRaisesRegex(sqlite3.OperationalError,
                                    "modelpack: bad: unknown type"):
            self.db.declare("bad", "src", ["id INTEGER PRIMARY KEY",
                                           "x VARCHAR"])
        with self.assertRaises(sqlite3.OperationalError):
            self.db.model("nosuch")

    def test_extension_path_env(self):
        old = os.environ.get("MODELPACK_EXTENSION")
        os.environ["MODELPACK_EXTENSION"] = "/nonexistent/modelpack"
        try:
            with self.assertRaises(sqlite3.OperationalError):
                modelpack.connect(":memory:")
        finally:
            if old is None:
                del os.environ["MODELPACK_EXTENSION"]
            else:
                os.environ["MODELPACK_EXTENSION"] = old


class BadBlobTest(unittest.TestCase):
    """Blobs this build did not write are refused, by both decoders."""

    def setUp(self):
        self.db = make_db()
        self.m = self.db.declare("m", "src", FIELDS)
        self.blob = self.db.execute(
            "SELECT packed FROM m WHERE batch = 10").fetchone()[0]

    def mutate(self, offset, fmt, value):
        b = bytearray(self.blob)
        struct.pack_into(fmt, b, offset, value)
        return bytes(b)

    def cases(self):
        rs = struct.unpack_from("<I", self.blob, 12)[0]
        yield "truncated", self.blob[:-1]
        yield "short", self.blob[:20]
        yield "empty", b""
        yield "magic", b"XPAK" + self.blob[4:]
        yield "version", self.mutate(4, "<H", 2)
        yield "flags", self.mutate(6, "<H", 0x80)
        yield "count", self.mutate(8, "<I", 6)
        yield "count0", self.mutate(8, "<I", 0)
        yield "record_size", self.mutate(12, "<I", rs + 8)
        yield "fingerprint", self.mutate(16, "<Q", 12345)
        yield "heap", self.mutate(40, "<I", 1)
        yield "reserved", self.mutate(44, "<I", 1)
        # title slot of record 0: offset past the heap
        yield "slot offset", self.mutate(48 + 16, "<I", 2**31)
        yield "slot length", self.mutate(48 + 20, "<I", 2**32 - 1)
        # a null bit on a field outside the mask
        yield "null bit", self.mutate(48, "<Q", 1 << 40)

    def test_every_bad_blob_is_refused(self):
        tried = 0
        for name, blob in self.cases():
            for b in (TupleBuilder(), DictBuilder(), ObjectBuilder(Plain)):
                out = ["sentinel"]
                with self.assertRaises(BlobError, msg=name):
                    self.m.decode(blob, b, out)
                self.assertEqual(out, ["sentinel"], name)
                tried += 1
        self.assertGreater(tried, 40)

    def test_other_models_blob(self):
        other = self.db.declare("o", "src", ["id INTEGER PRIMARY KEY",
                                             "title TEXT"])
        blob = self.db.execute("SELECT packed FROM o WHERE id = 1").fetchone()[0]
        with self.assertRaisesRegex(BlobError, "another model or mask"):
            self.m.decode(blob)


if __name__ == "__main__":
    unittest.main()
