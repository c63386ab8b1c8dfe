"""Use the optional C accelerator (_modelpack.c) when it is importable.

The accelerator decodes a whole batch into tuples, dicts or objects in one
call, with the same validation and the same results as decoder.py.  It is
skipped on PyPy (its JIT runs the pure-Python decoder faster than cpyext
runs C), when `MODELPACK_PURE=1` is set, and for builders that do not
describe themselves to it (`accel_spec`).
"""
import os
import platform

from .layout import FLAG_SAFE

try:
    if (platform.python_implementation() != "CPython"
            or os.environ.get("MODELPACK_PURE") == "1"):
        raise ImportError("pure Python requested")
    from . import _modelpack
except ImportError:
    _modelpack = None

available = _modelpack is not None
# Set False to use the pure-Python decoder for decoders made from now on
# (the benchmarks compare both in one process).
enabled = True


def decoder(layout, builder):
    """An accelerated decoder for (layout, builder), or None."""
    if not enabled or _modelpack is None or not hasattr(builder,
                                                        "accel_spec"):
        return None
    return AccelDecoder(layout, builder)


class AccelDecoder:
    def __init__(self, layout, builder):
        self.layout = layout
        self.builder = builder
        kind, cls, keys, state = builder.accel_spec(layout)
        types = bytes(_TYPE_CODES[f.type] for f in layout.loaded)
        pkpos = [n for n, f in enumerate(layout.loaded) if f.pk][0]
        self.plan = _modelpack.Plan(
            layout.model, layout.fingerprint, layout.mask, layout.record_size,
            types, tuple(f.name for f in layout.loaded), pkpos,
            kind, cls, tuple(keys), state,
            builder.safe_constructor(layout))
        post = getattr(builder, "accel_post", None)
        self.post = post(layout) if post else None

    def decode(self, blob, out=None):
        if out is None:
            out = []
        start = len(out)
        self.plan.decode(blob, out)
        # Fast records only: safe ones went through the safe constructor.
        if self.post is not None and not blob[6] & FLAG_SAFE:
            self.post(out[start:] if start else out)
        return out


_TYPE_CODES = {"INTEGER": 1, "REAL": 2, "TEXT": 3, "BLOB": 4, "BOOLEAN": 5}
