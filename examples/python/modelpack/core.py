"""The connection side: load the extension, declare models, read packed rows.

`Database` wraps a `sqlite3.Connection` (Python's or PyPy's), loads the
extension into it once and hands out `Model` objects.  A `Model` caches one
`Layout` per deferred-field mask and one `Decoder` per (mask, builder), and
runs the SQL that makes the extension pack: `select()` reads the model's
source through the model table, `query()` packs any SELECT through
`modelpack_query`.  Both read in batches (`WHERE batch = N`), so Python sees
one blob per N rows.

Nothing here knows about Django: modelpack.django builds on these pieces.
"""
import gc
import glob
import os
import sqlite3

from .builders import DictBuilder, ObjectBuilder, TupleBuilder
from .decoder import Decoder
from .errors import ModelpackError
from .layout import Layout, peek_mask
from .lazy import LazyDecoder
from . import accel

_HERE = os.path.dirname(os.path.abspath(__file__))


def extension_path():
    """Where the SQLite extension is: $MODELPACK_EXTENSION, else a copy
    installed beside this package, else the repository's `make` output."""
    env = os.environ.get("MODELPACK_EXTENSION")
    if env:
        return env
    # Built by setup.py (pip install): lib/modelpack.<python tag>.so.
    for cand in sorted(glob.glob(os.path.join(_HERE, "lib", "modelpack*.so"))):
        return cand
    cand = os.path.join(_HERE, "..", "..", "..", "modelpack")
    if os.path.exists(cand + ".so"):
        return os.path.normpath(cand)
    raise ModelpackError(
        "modelpack: extension not found: run `make` in the repository or "
        "set MODELPACK_EXTENSION to the path of modelpack.so")


def load(conn, path=None):
    """Load the extension into conn unless it is there already."""
    try:
        conn.execute("SELECT modelpack_version()").fetchone()
        return
    except sqlite3.OperationalError:
        pass
    if not hasattr(conn, "enable_load_extension"):
        raise ModelpackError("modelpack: this Python's sqlite3 cannot load "
                             "extensions (use Debian's /usr/bin/python3)")
    conn.enable_load_extension(True)
    try:
        conn.load_extension(path or extension_path())
    finally:
        conn.enable_load_extension(False)


def connect(database, *args, **kwargs):
    """sqlite3.connect(...) with the extension loaded; returns a Database."""
    return Database(sqlite3.connect(database, *args, **kwargs))


_TUPLES, _DICTS = TupleBuilder(), DictBuilder()


def _builder(into, cache):
    """The builder for `into` (tuple, dict, a class or a builder), one per
    class so decoders compiled for it are reused."""
    if into is tuple or into is None:
        return _TUPLES
    if into is dict:
        return _DICTS
    if isinstance(into, type):
        b = cache.get(into)
        if b is None:
            b = cache[into] = ObjectBuilder(into)
        return b
    return into  # already a builder


class Database:
    """A sqlite3 connection with modelpack loaded."""

    def __init__(self, conn, extension=None):
        self.conn = conn
        load(conn, extension)
        self._models = {}

    def execute(self, sql, params=()):
        return self.conn.execute(sql, params)

    def declare(self, name, source, fields, hooks=None, materialize=None,
                temp=True, replace=False):
        """CREATE VIRTUAL TABLE [temp.]name USING modelpack(...).

        fields: a list of field declarations such as
        `"id INTEGER PRIMARY KEY"`, `"title TEXT NOT NULL"`."""
        opts = ["source = %s" % _quote_opt(source)]
        if hooks:
            opts.append("hooks = %s" % _quote_opt(hooks))
        if materialize:
            opts.append("materialize = %s" % materialize)
        qname = ("temp." if temp else "") + _quote_id(name)
        if replace:
            self.conn.execute("DROP TABLE IF EXISTS %s" % qname)
        self.conn.execute("CREATE VIRTUAL TABLE %s USING modelpack(%s)"
                          % (qname, ", ".join(opts + list(fields))))
        self._models.pop(name, None)
        return self.model(name)

    def model(self, name):
        m = self._models.get(name)
        if m is None:
            m = self._models[name] = Model(self, name)
        return m

    def cached(self, name):
        """The Model already made for name, or None."""
        return self._models.get(name)

    def forget(self, name):
        """Drop cached layouts (after the model was redeclared)."""
        self._models.pop(name, None)


class Model:
    """A declared model: its layouts, decoders and packed reads."""

    def __init__(self, db, name):
        self.db = db
        self.name = name
        self._layouts = {}
        self._decoders = {}
        self._builders = {}
        self._hooks_set = None
        self.layout()  # fails now, clearly, if there is no such model

    def layout(self, mask=None):
        lay = self._layouts.get(mask)
        if lay is None:
            if mask is None:
                sql, args = "SELECT modelpack_layout(?)", (self.name,)
            else:
                sql, args = "SELECT modelpack_layout(?, ?)", (self.name, mask)
            lay = Layout(self.db.execute(sql, args).fetchone()[0])
            self._layouts[mask] = self._layouts[lay.mask] = lay
        return lay

    @property
    def fields(self):
        return self.layout().fields

    def mask(self, fields=None):
        """The mask loading `fields` (names; the primary key is added)."""
        if fields is None:
            return self.layout().mask
        if not isinstance(fields, str):
            fields = ",".join(fields)
        return self.db.execute("SELECT modelpack_mask(?, ?)",
                               (self.name, fields)).fetchone()[0]

    def hooks(self, spec=None):
        """This connection's effective hooks; with spec, first sets its
        run-time hooks (skipped when spec is what this object last set).
        Decoders stay: which constructor runs is the blob's SAFE flag."""
        if spec is None:
            r = self.db.execute("SELECT modelpack_hooks(?)", (self.name,))
            return r.fetchone()[0]
        if self._hooks_set is None or spec != self._hooks_set[0]:
            r = self.db.execute("SELECT modelpack_hooks(?, ?)", (self.name, spec))
            self._hooks_set = (spec, r.fetchone()[0])
            self._layouts.clear()  # a layout reports the hooks
        return self._hooks_set[1]

    def decoder(self, mask, builder):
        """The decoder of (mask, builder); the C accelerator's when it is
        available and the builder supports it."""
        key = (mask, builder, accel.enabled)
        dec = self._decoders.get(key)
        if dec is None:
            lay = self.layout(mask)
            if getattr(builder, "lazy", False):
                dec = LazyDecoder(lay, builder,
                                  Decoder(lay, builder.eager_builder()))
            else:
                dec = accel.decoder(lay, builder) or Decoder(lay, builder)
            self._decoders[key] = dec
        return dec

    def decode(self, blob, into=tuple, out=None):
        """Records of one blob (a packed row or a batch)."""
        builder = _builder(into, self._builders)
        mask = peek_mask(blob)
        if mask is None:
            raise self.layout().error("blob too short (%d bytes)" % len(blob))
        try:
            dec = self.decoder(mask, builder)
        except sqlite3.Error:
            # A mask this model cannot have: report it as the bad blob it is.
            raise self.layout().error("blob belongs to another model or "
                                      "mask (fingerprint mismatch)")
        # A batch makes thousands of container objects (instances, their
        # dicts and states) that form no cycles while it is built; letting
        # the cyclic GC scan them every 700 allocations costs more than
        # building them (measured: most of a 3000-row read).  Pause it for
        # the batch; the allocation count stands, so it runs right after.
        if gc.isenabled():
            gc.disable()
            try:
                return dec.decode(blob, out)
            finally:
                gc.enable()
        return dec.decode(blob, out)

    def decode_all(self, blobs, into=tuple):
        builder = _builder(into, self._builders)
        out = []
        for blob in blobs:
            self.decode(blob, builder, out)
        return out

    def select(self, where=None, params=(), fields=None, mask=None,
               order_by=None, mode=None, batch=1000, into=tuple):
        """Rows of the model's source, packed, as a list of `into`.

        where/order_by are SQL over the model table's field columns."""
        sql = ["SELECT packed FROM %s WHERE batch = ?" % _quote_id(self.name)]
        args = [batch]
        if fields is not None:
            mask = self.mask(fields)
        _hidden(sql, args, mask, mode)
        if where:
            sql.append("AND (%s)" % where)
            args.extend(params)
        if order_by:
            sql.append("ORDER BY %s" % order_by)
        rows = self.db.execute(" ".join(sql), args)
        return self.decode_all((r[0] for r in rows), into)

    def query(self, sql, params=(), mask=None, mode=None, batch=1000,
              into=tuple):
        """Pack any SELECT into this model (modelpack_query)."""
        q = ["SELECT packed FROM modelpack_query(?, ?%s) WHERE batch = ?"
             % (", ?" * len(params))]
        args = [self.name, sql] + list(params) + [batch]
        _hidden(q, args, mask, mode)
        rows = self.db.execute(" ".join(q), args)
        return self.decode_all((r[0] for r in rows), into)


def _hidden(sql, args, mask, mode):
    """The mask and mode constraints, where given."""
    for name, value in (("mask", mask), ("mode", mode)):
        if value is not None:
            sql.append("AND %s = ?" % name)
            args.append(value)


def _quote_id(name):
    return '"%s"' % name.replace('"', '""')


def _quote_opt(value):
    return "'%s'" % value.replace("'", "''")
