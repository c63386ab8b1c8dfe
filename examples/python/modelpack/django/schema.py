"""Django models as modelpack models, one `temp.` model per connection.

A Django model's concrete fields become a modelpack declaration over its
table (`CREATE VIRTUAL TABLE temp."mp_<table>" USING modelpack(...)`), made
the first time the model is read packed on a connection.  `temp.` keeps it
out of the user's schema: it lives and dies with the connection, and a
migration or `dumpdata` never sees it.

Field types map by Django's internal type; a field we cannot map makes the
model unsupported, and the caller falls back to Django's own path.  Field
names are attnames (`author_id`), read from the field's column; names the
extension reserves are renamed, and the builder maps them back.
"""
import sqlite3

from .. import core
from .convert import decltype_converter

_INTEGER = {"AutoField", "BigAutoField", "SmallAutoField", "IntegerField",
            "BigIntegerField", "SmallIntegerField", "PositiveIntegerField",
            "PositiveBigIntegerField", "PositiveSmallIntegerField",
            "DurationField"}
_REAL = {"FloatField", "DecimalField"}
# Booleans: Django's `bool` column converter makes them TEXT (convert.py).
_BOOLEAN = set()
_INTEGER |= {"BooleanField", "NullBooleanField"}
_TEXT = {"CharField", "TextField", "SlugField", "EmailField", "URLField",
         "FilePathField", "GenericIPAddressField", "IPAddressField",
         "UUIDField", "DateField", "DateTimeField", "TimeField", "JSONField",
         "FileField", "ImageField", "CommaSeparatedIntegerField"}
_BLOB = {"BinaryField"}
_RESERVED = {"packed", "mask", "mode", "unpack", "batch", "rowid", "oid",
             "_rowid_"}


def field_type(field, connection):
    """modelpack type of a concrete Django field, or None.  A column the
    binding converts by declared type is TEXT (see convert.py)."""
    if decltype_converter(field, connection) is not None:
        return "TEXT"
    if field.is_relation:
        target = getattr(field, "target_field", None)
        return field_type(target, connection) if target is not None else None
    kind = field.get_internal_type()
    for names, t in ((_INTEGER, "INTEGER"), (_REAL, "REAL"),
                     (_BOOLEAN, "BOOLEAN"), (_TEXT, "TEXT"), (_BLOB, "BLOB")):
        if kind in names:
            return t
    return None


class Shape:
    """How one Django model maps onto its modelpack model."""

    def __init__(self, cls, connection):
        opts = cls._meta.concrete_model._meta
        self.table = opts.db_table
        self.name = "mp_" + self.table
        self.fields = list(opts.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        self.supported = not opts.parents and all(
            field_type(f, connection) for f in self.fields)
        self.decl = self._declaration(connection) if self.supported else None

    def field_name(self, f):
        """The modelpack field name for f: its attname unless reserved."""
        if f.attname.lower() in _RESERVED or f.attname.startswith("mp_"):
            return "mp_" + f.attname
        return f.attname

    def _declaration(self, connection):
        items = ["source = %s" % core._quote_opt(self.table)]
        for f in self.fields:
            items.append("%s %s%s COLUMN %s" % (
                core._quote_id(self.field_name(f)), field_type(f, connection),
                " PRIMARY KEY" if f.primary_key else "",
                core._quote_id(f.column)))
        return "CREATE VIRTUAL TABLE temp.%s USING modelpack(%s)" % (
            core._quote_id(self.name), ", ".join(items))

    @property
    def attrs(self):
        """modelpack field name -> attribute name, where they differ."""
        return {self.field_name(f): f.attname for f in self.fields
                if self.field_name(f) != f.attname}


class ConnectionState:
    """Per raw sqlite3 connection: the loaded extension and declared models
    (cached by its core.Database).

    A `temp.` table made inside a transaction that later rolls back is gone
    again: `model()` checks, until the declaration is seen outside a
    transaction, and declares it again before the query runs (a failed
    first try would show in Django's query log and assertNumQueries).
    """

    def __init__(self, raw):
        self.raw = raw
        self.db = core.Database(raw)
        self.builders = {}    # (cls, alias, lazy) -> builder
        self.fragile = set()  # models whose declaration a rollback may undo

    def model(self, shape):
        name = shape.name
        m = self.db.cached(name)
        if m is not None and name not in self.fragile:
            return m  # declared in autocommit: it lives as long as the connection
        if not self.raw.execute("SELECT 1 FROM temp.sqlite_master WHERE name = ?",
                                (name,)).fetchone():
            self.raw.execute(shape.decl)
            self.db.forget(name)
        if self.raw.in_transaction:
            self.fragile.add(name)
        else:
            self.fragile.discard(name)
        return self.db.model(name)

    def forget(self, shape):
        self.db.forget(shape.name)


_shapes = {}


def shape_of(cls, connection):
    s = _shapes.get(cls)
    if s is None:
        s = _shapes[cls] = Shape(cls, connection)
    return s


def state_of(connection):
    """The ConnectionState of a Django sqlite connection (opened if needed),
    or None when the extension cannot be loaded into it."""
    connection.ensure_connection()
    raw = connection.connection
    st = getattr(connection, "_modelpack_state", None)
    if st is not None and st.raw is raw:
        return st
    try:
        st = ConnectionState(raw)
    except (sqlite3.Error, core.ModelpackError, AttributeError):
        st = None
    connection._modelpack_state = st
    return st
