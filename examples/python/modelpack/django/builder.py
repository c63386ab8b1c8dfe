"""Django model instances from decoded records.

Fast path: the instance stock Django would build, without running
`__init__`: `object.__new__(cls)`, a fresh `ModelState` with `adding`
False and `db` set (the override in ticket #19501 forgets `db`) -- a
subclass carrying both as class attributes, so no dict is built for it --
then the loaded fields' values straight into `__dict__`, `_state` first, in
concrete-field order: the same `__dict__` as `Model.from_db` leaves.  Deferred fields are
absent, so Django's own DeferredAttribute loads them on access.

Safe path (safe-packed blobs: the model has hooks): `cls.from_db(db,
names, values)`, i.e. exactly Django's constructor, signals included.
"""
from django.db.models.base import ModelState

from ..builders import KIND_OBJECT
from .convert import binding, decltype_converter


def _restore_state(d):
    s = ModelState()
    s.__dict__.update(d)
    return s


class _PackedState(ModelState):
    """A ModelState whose `adding` (False) and `db` are class attributes:
    one fewer dict per instance.  Reads see what stock Django's state
    holds; a write goes to the instance as usual; copying or pickling
    gives a plain ModelState with the same values."""

    def __reduce__(self):
        d = {"adding": self.adding, "db": self.db}
        d.update(self.__dict__)
        return _restore_state, (d,)


_state_classes = {}


def packed_state(alias):
    """The _PackedState subclass for database alias, made once."""
    cls = _state_classes.get(alias)
    if cls is None:
        cls = _state_classes[alias] = type(
            "ModelState", (_PackedState,), {"adding": False, "db": alias,
                                            "__module__": __name__})
    return cls


class DjangoBuilder:
    def __init__(self, cls, alias, shape, connection):
        self.cls = cls
        self.alias = alias
        self.attrs = shape.attrs  # modelpack name -> attname, where renamed
        self.fields = {f.attname: f for f in shape.fields}
        self.table = shape.table
        self.connection = connection

    def _keys(self, layout):
        return [self.attrs.get(f.name, f.name) for f in layout.loaded]

    def converters(self, layout):
        """[(position, attname, [converter], expression)] for the loaded
        fields Django converts (dates, decimals, UUIDs, JSON, booleans,
        from_db_value): the same list Django's compiler applies."""
        out, conn = [], self.connection
        for n, key in enumerate(self._keys(layout)):
            expr = self.fields[key].get_col(self.table)
            fns = (conn.ops.get_db_converters(expr)
                   + expr.get_db_converters(conn))
            first = decltype_converter(self.fields[key], conn)
            if first is not None:
                fns = [binding(first)] + fns
            if fns:
                out.append((n, key, fns, expr))
        return out

    def fast_code(self, layout):
        env = {"new": object.__new__, "cls": self.cls,
               "MS": packed_state(self.alias), "conn": self.connection}
        lines = []
        for n, key, fns, expr in self.converters(layout):
            env["e%d" % n] = expr
            for k, fn in enumerate(fns):
                env["c%d_%d" % (n, k)] = fn
                lines.append("v%d = c%d_%d(v%d, e%d, conn)" % (n, n, k, n, n))
        items = ", ".join("%r: v%d" % (k, n)
                          for n, k in enumerate(self._keys(layout)))
        return (lines + ["o = new(cls)",
                         "o.__dict__ = {'_state': new(MS), %s}" % items], env)

    def safe_constructor(self, layout):
        cls, alias, names = self.cls, self.alias, self._keys(layout)
        convs, conn = self.converters(layout), self.connection
        if not convs:
            return lambda vals: cls.from_db(alias, names, vals)

        def safe(vals):
            vals = list(vals)
            for n, key, fns, expr in convs:
                for fn in fns:
                    vals[n] = fn(vals[n], expr, conn)
            return cls.from_db(alias, names, vals)
        return safe

    def accel_post(self, layout):
        """Converters the accelerator leaves to Python: applied to the
        fast-path instances it built (safe ones went through safe())."""
        convs, conn = self.converters(layout), self.connection
        if not convs:
            return None

        def post(objs):
            for o in objs:
                d = o.__dict__
                for n, key, fns, expr in convs:
                    v = d[key]
                    for fn in fns:
                        v = fn(v, expr, conn)
                    d[key] = v
        return post

    def accel_spec(self, layout):
        return (KIND_OBJECT, self.cls, self._keys(layout),
                ("_state", packed_state(self.alias), {}))
