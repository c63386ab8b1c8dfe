"""modelpack for Django: model instances built from packed batches.

    from modelpack.django import PackedQuerySet, packed

    class Book(models.Model):
        title = models.CharField(max_length=100)
        objects = PackedQuerySet.as_manager()

    Book.objects.filter(title__startswith="A").packed()   # real Book objects
    packed(Author.objects.only("id", "name"))             # models you do not own
    packed_raw(Book, "SELECT * FROM app_book WHERE id > %s", [10])

    import modelpack.django; modelpack.django.install()   # transparent mode
    # or INSTALLED_APPS += ["modelpack.django"] with MODELPACK_TRANSPARENT = True

Querysets modelpack cannot reproduce exactly fall back to Django's own path.
"""
from django.conf import settings
from django.db import connections, models
from django.db.backends.signals import connection_created
from django.db.models.query import ModelIterable

from .iterable import (LazyPackedModelIterable, PackedModelIterable,
                       _stock_iter, iterate, stats)
from .raw import packed_raw
from .schema import state_of

__all__ = ["PackedQuerySet", "packed", "packed_raw", "install", "uninstall",
           "installed", "stats"]

default_app_config = "modelpack.django.apps.ModelpackConfig"


def packed(queryset, lazy=False):
    """A clone of queryset whose model instances come through modelpack.
    lazy: each field is decoded from the batch when first read."""
    qs = queryset._chain()
    if qs._iterable_class in (ModelIterable, PackedModelIterable,
                              LazyPackedModelIterable):
        qs._iterable_class = (LazyPackedModelIterable if lazy
                              else PackedModelIterable)
    return qs


class PackedQuerySet(models.QuerySet):
    """A QuerySet with `.packed()`; use `PackedQuerySet.as_manager()`."""

    def packed(self, lazy=False):
        return packed(self, lazy)

    def packed_raw(self, raw_query, params=None, translations=None):
        return packed_raw(self.model, raw_query, params, translations,
                          using=self.db)


_installed = False


def _transparent_iter(self):
    """ModelIterable.__iter__ while installed: modelpack, else Django."""
    return iterate(self)


def _on_connection(sender, connection, **kwargs):
    """Load the extension as each SQLite connection opens, so the first
    query does not pay for it; models are declared on first use."""
    if connection.vendor == "sqlite":
        state_of(connection)


def install():
    """Transparent mode: every ModelIterable (list(qs), for o in qs, get(),
    first(), iterator()) on a SQLite connection goes through modelpack."""
    global _installed
    ModelIterable.__iter__ = _transparent_iter
    connection_created.connect(_on_connection, dispatch_uid="modelpack")
    # Connections already open get it now; before settings exist (install()
    # called at import time), there are none.
    if settings.configured:
        for conn in connections.all():
            if conn.vendor == "sqlite" and conn.connection is not None:
                state_of(conn)
    _installed = True


def uninstall():
    global _installed
    ModelIterable.__iter__ = _stock_iter
    connection_created.disconnect(dispatch_uid="modelpack")
    _installed = False


def installed():
    return _installed
