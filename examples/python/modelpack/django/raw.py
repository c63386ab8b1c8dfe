"""`Model.objects.raw()`, packed: `packed_raw(Book, "SELECT ...", params)`.

Returns a RawQuerySet whose iterator runs the raw SQL inside
`modelpack_query`, when every result column is one of the model's fields
(after `translations`) and the primary key is there: missing fields are
deferred, as with `raw()`.  Result columns that are not fields (Django
would set them as annotations), a non-SQLite database, dict parameters or
an unsupported model take Django's own RawQuerySet path.
"""
import sqlite3

from django.db import connections
from django.db.models.query import RawQuerySet

from .. import core
from .iterable import (BATCH, Unsupported, _builder, fell_back, fetch, qmark,
                       stats)
from .schema import shape_of, state_of


class PackedRawQuerySet(RawQuerySet):
    def iterator(self):
        try:
            objs = self._packed()
        except Unsupported as e:
            fell_back(e)
            return super().iterator()
        return iter(objs)

    def _clone(self):
        c = super()._clone()
        c.__class__ = PackedRawQuerySet
        return c

    def _packed(self):
        connection = connections[self.db]
        params = self.params
        if connection.vendor != "sqlite" or isinstance(params, dict):
            raise Unsupported("database or parameters")
        shape = shape_of(self.model, connection)
        st = state_of(connection) if shape.supported else None
        if st is None:
            raise Unsupported("model")
        sql = self._renamed(st, qmark(self.raw_query), params or (), shape)
        builder = _builder(st, shape, self.model, self.db)
        model, rows = fetch(st, shape, self.model, builder, sql,
                            params or (), BATCH, False)
        stats["packed"] += 1
        out = []
        for (blob,) in rows:
            model.decode(blob, builder, out)
        return out

    def _renamed(self, st, sql, params, shape):
        """sql with its result columns renamed to field columns, or
        Unsupported when a column is not a field (an annotation)."""
        try:
            cur = st.raw.execute("SELECT * FROM (%s) LIMIT 0" % sql, params)
        except sqlite3.Error as e:
            raise Unsupported(str(e))
        names = [d[0] for d in cur.description]
        columns = {f.column: f for f in shape.fields}
        cols = [self.translations.get(n, n) for n in names]
        if (len(set(cols)) != len(cols) or any(c not in columns for c in cols)
                or shape.fields[0].model._meta.pk.column not in cols):
            raise Unsupported("columns")
        if cols == names:
            return sql
        return "SELECT %s FROM (%s)" % (", ".join(
            "%s AS %s" % (core._quote_id(n), core._quote_id(c))
            for n, c in zip(names, cols)), sql)


def packed_raw(model, raw_query, params=None, translations=None, using=None):
    """Like Model.objects.raw(...), packed."""
    qs = model._default_manager.raw(raw_query, params, translations)
    if using is not None:
        qs = qs.using(using)
    qs.__class__ = PackedRawQuerySet
    return qs
