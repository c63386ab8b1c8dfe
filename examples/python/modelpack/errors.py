"""Exceptions and the deferred marker shared by every part of the package.

Kept apart so the decoder, the connection wrapper and the Django layer can
all import them without importing each other.
"""
import sqlite3


class ModelpackError(sqlite3.DatabaseError):
    """A modelpack failure seen on the client side (bad blob, bad option).

    A subclass of sqlite3.DatabaseError so code that already catches the
    binding's errors catches these too.
    """


class BlobError(ModelpackError):
    """A blob failed validation: it is not something this build wrote for
    this model and mask, or it is damaged."""


class _Deferred:
    """The marker passed to a safe constructor for a deferred field."""

    __slots__ = ()

    def __repr__(self):
        return "<modelpack.DEFERRED>"

    def __reduce__(self):
        return "DEFERRED"


DEFERRED = _Deferred()
