"""Models the Django tests read packed.  Book and MultiField are
djangobench's (query_all, query_defer); the others exercise converters,
hooks, descriptors and shapes modelpack must hand back to Django."""
import uuid

from django.db import models
from django.db.models.signals import post_init

from modelpack.django import PackedQuerySet


class Author(models.Model):
    name = models.CharField(max_length=100)
    objects = PackedQuerySet.as_manager()


class Book(models.Model):
    title = models.CharField(max_length=100)
    author = models.ForeignKey(Author, null=True, on_delete=models.SET_NULL)
    objects = PackedQuerySet.as_manager()


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


class Typed(models.Model):
    when = models.DateTimeField(null=True)
    day = models.DateField(null=True)
    at = models.TimeField(null=True)
    price = models.DecimalField(max_digits=10, decimal_places=2, null=True)
    ratio = models.FloatField(null=True)
    flag = models.BooleanField(default=False)
    maybe = models.NullBooleanField()
    token = models.UUIDField(default=uuid.uuid4)
    data = models.JSONField(null=True)
    raw = models.BinaryField(null=True)
    span = models.DurationField(null=True)
    mask = models.IntegerField(default=0)      # a name modelpack reserves
    batch = models.CharField(max_length=10, default="")
    objects = PackedQuerySet.as_manager()


class Document(models.Model):
    name = models.CharField(max_length=50)
    upload = models.FileField(upload_to="docs/", blank=True)
    objects = PackedQuerySet.as_manager()


class Initialised(models.Model):
    name = models.CharField(max_length=50)
    objects = PackedQuerySet.as_manager()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = True


class Signalled(models.Model):
    name = models.CharField(max_length=50)
    objects = PackedQuerySet.as_manager()


class BookProxy(Book):
    class Meta:
        proxy = True


class Place(models.Model):
    name = models.CharField(max_length=50)


class Restaurant(Place):
    stars = models.IntegerField(default=0)


def _count_init(sender, instance, **kwargs):
    instance.inits = getattr(instance, "inits", 0) + 1


post_init.connect(_count_init, sender=Signalled)
