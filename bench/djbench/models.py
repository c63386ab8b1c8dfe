"""djangobench's models for the query benchmarks (query_all's Book,
query_all_multifield's MultiField, query_select_related's Author and
book), plus a
proxy with the #19501-style `from_db` override, a model with no-op init
signal receivers (model_init_self_signals) and one with converters."""
from django.db import models
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init

from modelpack.django import PackedQuerySet


class Book(models.Model):
    """query_all's model."""
    title = models.CharField(max_length=100)
    objects = PackedQuerySet.as_manager()


class Author(models.Model):
    """query_select_related's models: Author and SRBook."""
    author = models.CharField(max_length=100)
    objects = PackedQuerySet.as_manager()


class SRBook(models.Model):
    title = models.CharField(max_length=100)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    objects = PackedQuerySet.as_manager()


class BookFromDb(Book):
    """The override ticket #19501 proposes: no __init__, no signals.  Like
    the ticket's, it skips `_state.db`; we set it, to compare like with
    like."""

    class Meta:
        proxy = True

    @classmethod
    def from_db(cls, db, field_names, values):
        new = object.__new__(cls)
        new._state = ModelState()
        new._state.adding = False
        new._state.db = db
        new.__dict__.update(zip(field_names, values))
        return new


class MultiField(models.Model):
    field1 = models.CharField(max_length=100)
    field2 = models.CharField(max_length=100)
    field3 = models.CharField(max_length=100)
    field4 = models.CharField(max_length=100)
    field5 = models.CharField(max_length=100)
    field6 = models.CharField(max_length=100)
    field7 = models.CharField(max_length=100)
    field8 = models.CharField(max_length=100)
    field9 = models.CharField(max_length=100)
    field10 = models.CharField(max_length=100)
    objects = PackedQuerySet.as_manager()


class MultiFieldFromDb(MultiField):
    class Meta:
        proxy = True

    from_db = BookFromDb.__dict__["from_db"]


class SignalledBook(models.Model):
    title = models.CharField(max_length=100)
    objects = PackedQuerySet.as_manager()


class Event(models.Model):
    when = models.DateTimeField()
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    objects = PackedQuerySet.as_manager()


def _noop(sender, **kwargs):
    pass


pre_init.connect(_noop, sender=SignalledBook)
post_init.connect(_noop, sender=SignalledBook)
