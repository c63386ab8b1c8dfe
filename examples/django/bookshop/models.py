"""Authors and books.  Book's manager is a PackedQuerySet, for explicit
`.packed()` calls; with MODELPACK_TRANSPARENT the plain manager is packed
too."""
from django.db import models

from modelpack.django import PackedQuerySet


class Author(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self):
        return self.name


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    published = models.DateField()
    price = models.DecimalField(max_digits=8, decimal_places=2)
    in_print = models.BooleanField(default=True)

    objects = PackedQuerySet.as_manager()

    def __str__(self):
        return self.title
