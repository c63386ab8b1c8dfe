"""Which init hooks a Django model has, as a modelpack hooks spec.

The spec (`pre_init,post_init,custom_init,setattr:<field>`) is given to the
extension per connection (`modelpack_hooks`), and its auto mode then packs
safe -- and the client runs Django's own `from_db` -- exactly when stock
Django would run code the fast path skips:

* an overridden `__init__`, `from_db`, `__setattr__` or `__new__`
  (custom_init; read once per class, like the descriptors below);
* `pre_init` / `post_init` receivers for the class (checked on every query,
  since receivers can connect at any time; Django's ImageField connects one
  when it has dimension fields);
* a data descriptor on a field's attribute (FileField, ImageField, a custom
  property): setting the attribute runs code, so the field is `setattr`-
  hooked; deferring it makes the query fast again.
"""
from django.db.models import Model
from django.db.models import signals
from django.db.models.fields.related_descriptors import (
    ForeignKeyDeferredAttribute)

# Descriptors whose __set__ on a fresh instance only stores the value.
_PLAIN_SET = (ForeignKeyDeferredAttribute,)


def _class_attr(cls, name):
    for k in cls.__mro__:
        if name in k.__dict__:
            return k.__dict__[name]
    return None


def _custom_init(cls):
    return (cls.__init__ is not Model.__init__
            or cls.from_db.__func__ is not Model.from_db.__func__
            or cls.__setattr__ is not object.__setattr__
            or cls.__new__ is not object.__new__)


def static_parts(cls, shape):
    """The hooks that only change with the class: custom_init and one
    setattr:<field> per field whose attribute is a data descriptor.
    Builders keep them; spec() adds the signal receivers of the moment."""
    parts = ["custom_init"] if _custom_init(cls) else []
    for f in shape.fields:
        d = _class_attr(cls, f.attname)
        if (d is not None and hasattr(type(d), "__set__")
                and not isinstance(d, _PLAIN_SET)):
            parts.append("setattr:" + shape.field_name(f))
    return parts


def spec(cls, static):
    """The hooks spec for cls now (receivers can connect at any time)."""
    parts = []
    if signals.pre_init.has_listeners(cls):
        parts.append("pre_init")
    if signals.post_init.has_listeners(cls):
        parts.append("post_init")
    return ",".join(parts + static)
