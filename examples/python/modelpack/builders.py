"""What a decoded record becomes: a tuple, a dict or an object.

A builder gives the decoder (decoder.py) two things for a layout:

* `fast_code(layout)`: Python lines that build `o` from the loaded fields'
  values `v0, v1, ...` (declaration order) plus the names those lines use.
  They are compiled into the decoding loop, so the fast path costs one
  expression per record;
* `safe_constructor(layout)`: a callable taking one record's values tuple,
  used for every record of a safe-packed blob (the SAFE flag: the model or a
  loaded field has init hooks), so the class's own constructor runs;
* `accel_spec(layout)`, optional: the same fast path described as data for
  the C accelerator -- (kind, class, attribute names, state), where state is
  None or (attribute, class, dict) for a per-instance state object whose
  `__dict__` starts as a copy of dict (Django's `_state`).

Deferred fields never appear in the fast path (an object simply lacks the
attribute); the safe constructor receives `DEFERRED` in their place.
"""
from .errors import DEFERRED

# What the C accelerator builds (accel.py, _modelpack.c).
KIND_TUPLE, KIND_DICT, KIND_OBJECT = 0, 1, 2


def _values(layout):
    return ", ".join("v%d" % n for n in range(len(layout.loaded)))


def expander(layout):
    """values of the loaded fields -> one value per field, DEFERRED for the
    deferred ones (the argument list of a safe constructor)."""
    if len(layout.loaded) == len(layout.fields):
        return tuple
    pos = {f.index: n for n, f in enumerate(layout.loaded)}
    picks = [pos.get(f.index) for f in layout.fields]

    def expand(vals):
        return [DEFERRED if p is None else vals[p] for p in picks]
    return expand


class TupleBuilder:
    """Records as tuples of the loaded fields, in declaration order."""

    def fast_code(self, layout):
        return ["o = (%s,)" % _values(layout)], {}

    def safe_constructor(self, layout):
        return tuple

    def accel_spec(self, layout):
        return KIND_TUPLE, None, (), None


class DictBuilder:
    """Records as {field name: value} for the loaded fields."""

    def fast_code(self, layout):
        items = ", ".join("%r: v%d" % (f.name, n)
                          for n, f in enumerate(layout.loaded))
        return ["o = {%s}" % items], {}

    def safe_constructor(self, layout):
        names = [f.name for f in layout.loaded]
        return lambda vals: dict(zip(names, vals))

    def accel_spec(self, layout):
        return KIND_DICT, None, [f.name for f in layout.loaded], None


class ObjectBuilder:
    """Records as instances of cls.

    Fast path: `object.__new__(cls)` and the loaded fields written straight
    into the instance's `__dict__` (no `__init__`, no `__setattr__`).  Safe
    path: `safe(*values)` -- by default `cls(*values)` -- with `DEFERRED` for
    each deferred field, in declaration order.  `attrs` maps field names to
    attribute names where they differ.
    """

    def __init__(self, cls, safe=None, attrs=None):
        if cls.__new__ is not object.__new__:
            raise TypeError("%s overrides __new__: build it with safe "
                            "packing (mode='safe')" % cls.__name__)
        self.cls = cls
        self.safe = safe or cls
        self.attrs = attrs or {}

    def fast_code(self, layout):
        items = ", ".join("%r: v%d" % (self.attrs.get(f.name, f.name), n)
                          for n, f in enumerate(layout.loaded))
        return (["o = new(cls)", "o.__dict__ = {%s}" % items],
                {"new": object.__new__, "cls": self.cls})

    def safe_constructor(self, layout):
        expand, safe = expander(layout), self.safe
        return lambda vals: safe(*expand(vals))

    def accel_spec(self, layout):
        keys = [self.attrs.get(f.name, f.name) for f in layout.loaded]
        return KIND_OBJECT, self.cls, keys, None
