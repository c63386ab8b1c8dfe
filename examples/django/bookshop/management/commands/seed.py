"""manage.py seed [N]: N books (default 3000) by 50 authors."""
import datetime
import decimal

from django.core.management.base import BaseCommand

from bookshop.models import Author, Book


class Command(BaseCommand):
    help = "Fill the bookshop with sample books"

    def add_arguments(self, parser):
        parser.add_argument("count", nargs="?", type=int, default=3000)

    def handle(self, count, **opts):
        Book.objects.all().delete()
        Author.objects.all().delete()
        Author.objects.bulk_create(Author(name="Author %d" % i)
                                   for i in range(50))
        authors = list(Author.objects.all())
        day = datetime.date(2000, 1, 1)
        Book.objects.bulk_create(Book(
            title="Book %05d" % i, author=authors[i % 50],
            published=day + datetime.timedelta(days=i),
            price=decimal.Decimal(i % 5000) / 100) for i in range(count))
        self.stdout.write("%d books" % count)
