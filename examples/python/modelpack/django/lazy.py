"""Lazy Django instances: `.packed(lazy=True)`.

Each instance is the model's own class; its `_state` is a `LazyState` that
holds the batch and the record's index.  Fields not yet read are absent from
`__dict__`, so Django's DeferredAttribute is asked for them; `install_hook`
wraps DeferredAttribute.__get__ once so that, for a lazy instance, the value
is decoded from the batch (and converted as Django converts it) instead of
queried.  To the rest of Django a lazy field looks deferred: `save()` writes
only fields that were read or set, as with `only()`.  Pickling drops the
batch; an unpickled instance loads unread fields from the database.
"""
from django.db.models.base import ModelState
from django.db.models.query_utils import DeferredAttribute

_stock_get = DeferredAttribute.__get__


class LazyState(ModelState):
    def __getstate__(self):
        d = dict(self.__dict__)
        d.pop("mp", None)
        return d

    def __setstate__(self, d):
        self.__class__ = ModelState
        self.__dict__.update(d)


def _lazy_get(self, instance, cls=None):
    if instance is None:
        return self
    data = instance.__dict__
    name = self.field.attname
    if name not in data:
        st = data.get("_state")
        mp = getattr(st, "mp", None) if type(st) is LazyState else None
        if mp is not None and name in mp[2]:
            batch, i, fields = mp
            n, convs, expr, conn = fields[name]
            v = batch.value(i, n)
            for fn in convs:
                v = fn(v, expr, conn)
            data[name] = v
            return v
    return _stock_get(self, instance, cls)


def install_hook():
    DeferredAttribute.__get__ = _lazy_get


class DjangoLazy:
    """Builder: lazy instances of a Django model (see module doc)."""

    lazy = True

    def __init__(self, eager):
        self.eager = eager  # the DjangoBuilder, for safe-packed blobs
        self.cls = eager.cls
        self.alias = eager.alias
        self._plans = {}
        install_hook()

    def eager_builder(self):
        return self.eager

    def _plan(self, layout):
        """(pk position, pk name, pk converters, {attname: (position,
        converters, expression, connection)} for the other fields), once
        per layout."""
        plan = self._plans.get(layout.fingerprint)
        if plan is None:
            eager = self.eager
            keys = eager._keys(layout)
            convs = {key: (fns, expr) for _n, key, fns, expr
                     in eager.converters(layout)}
            fields = {k: (n,) + convs.get(k, ((), None)) + (eager.connection,)
                      for n, k in enumerate(keys)}
            pkpos = [n for n, f in enumerate(layout.loaded) if f.pk][0]
            plan = self._plans[layout.fingerprint] = (
                pkpos, keys[pkpos], fields.pop(keys[pkpos]), fields)
        return plan

    def lazy_objects(self, layout, batch, out):
        pkpos, pk, pkconv, fields = self._plan(layout)
        new, alias, cls, ap = object.__new__, self.alias, self.cls, out.append
        for i, key in batch.keys(pkpos):
            for fn in pkconv[1]:
                key = fn(key, pkconv[2], pkconv[3])
            o = new(cls)
            s = new(LazyState)
            s.__dict__ = {"adding": False, "db": alias, "mp": (batch, i, fields)}
            o.__dict__ = {"_state": s, pk: key}
            ap(o)
