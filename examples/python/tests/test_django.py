"""modelpack.django against stock Django: the same instances, every time.

Each test builds a queryset, reads it the stock way and the packed way, and
compares class, `__dict__` (minus `_state`) and `_state.db`/`adding`.  The
`stats` counters prove which path ran: a test of a supported shape fails if
it silently fell back, and an unsupported shape must fall back.
"""
import datetime
import decimal
import os
import pickle
import unittest
import uuid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.djsettings")
import django  # noqa: E402

django.setup()

from django import forms  # noqa: E402
from django.db import connection, connections, transaction  # noqa: E402
from django.db.models import F, signals  # noqa: E402
from django.test import TestCase  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

import modelpack.django as mpd  # noqa: E402
from modelpack.django import packed, packed_raw, stats  # noqa: E402
from tests.djapp.models import (Author, Book, BookProxy, Document,  # noqa
                                Initialised, MultiField, Place, Restaurant,
                                Signalled, Typed)

MODELS = (Author, Book, MultiField, Typed, Document, Initialised, Signalled,
          Place, Restaurant)


_tables = []


def setUpModule():
    if _tables:  # test_lazy shares these tables
        return
    _tables.append(True)
    setup_test_environment()
    for alias in ("default", "other"):
        with connections[alias].schema_editor() as ed:
            for m in MODELS:
                ed.create_model(m)


def snapshot(objs):
    out = []
    for o in objs:
        d = {k: v for k, v in vars(o).items() if k != "_state"}
        out.append((type(o), d, o._state.db, o._state.adding))
    return out


class Base(TestCase):
    databases = {"default", "other"}

    @classmethod
    def setUpTestData(cls):
        cls.a1 = Author.objects.create(name="Ann")
        cls.a2 = Author.objects.create(name="Bob")
        for i in range(30):
            Book.objects.create(title="title %02d" % i,
                                author=(cls.a1, cls.a2, None)[i % 3])
        for i in range(12):
            MultiField.objects.create(**{"field%d" % k: "v%d-%d" % (i, k)
                                         for k in range(1, 11)})

    def same(self, qs, path="packed"):
        """packed(qs) gives what qs gives, by the expected path."""
        before = dict(stats)
        want = snapshot(list(qs))
        got = snapshot(list(packed(qs)))
        self.assertEqual(got, want)
        self.assertEqual(stats[path], before[path] + 1, "expected " + path)
        return got


class QuerySetShapes(Base):
    def test_all_and_filters(self):
        self.same(Book.objects.all())
        self.same(Book.objects.filter(title__startswith="title 1"))
        self.same(Book.objects.exclude(author=None).order_by("-title"))
        self.same(Book.objects.filter(author__name="Ann"))
        self.same(Book.objects.order_by("author__name", "id"))
        self.same(Book.objects.all()[5:9])
        self.same(Book.objects.extra(where=["id % 2 = 0"]))
        self.same(Book.objects.filter(id__in=[1, 5, 7]))
        self.same(Book.objects.filter(title=F("title")))
        self.same(Book.objects.distinct())

    def test_many_parameters(self):
        self.same(Book.objects.filter(id__in=list(range(1, 40))))
        self.same(Book.objects.filter(id__in=list(range(1, 1200))),
                  "fallback")
        self.assertEqual(len(Book.objects.packed().in_bulk(
            list(range(1, 31)))), 30)

    def test_query_log_shows_djangos_sql(self):
        from django.test.utils import CaptureQueriesContext
        qs = Book.objects.filter(title__startswith="title 1")
        with CaptureQueriesContext(connection) as stock:
            list(qs)
        with CaptureQueriesContext(connection) as mine:
            list(packed(qs))
        self.assertEqual([q["sql"] for q in mine.captured_queries],
                         [q["sql"] for q in stock.captured_queries])

    def test_iterator_chunk_size_and_abandon(self):
        it = Book.objects.order_by("id").packed().iterator(chunk_size=4)
        self.assertEqual([next(it).pk for _ in range(5)], [1, 2, 3, 4, 5])
        it.close()
        self.same(Book.objects.all())

    def test_only_and_defer(self):
        got = self.same(MultiField.objects.only("id", "field1"))
        self.assertEqual(set(got[0][1]), {"id", "field1"})
        self.same(MultiField.objects.defer("field3", "field9"))
        obj = packed(MultiField.objects.only("field2")).get(pk=3)
        self.assertEqual(obj.get_deferred_fields(),
                         {"field%d" % k for k in range(1, 11)} - {"field2"})
        with self.assertNumQueries(1):
            self.assertEqual(obj.field7, "v2-7")

    def test_empty_results(self):
        self.same(Book.objects.filter(id__gt=10**6))
        self.assertEqual(list(packed(Book.objects.none())), [])
        self.assertEqual(list(packed(Book.objects.filter(id__in=[]))), [])

    def test_iterator_get_first(self):
        want = snapshot(Book.objects.order_by("id").iterator(chunk_size=7))
        got = snapshot(Book.objects.order_by("id").packed().iterator())
        self.assertEqual(got, want)
        self.assertEqual(snapshot([Book.objects.packed().get(pk=4)]),
                         snapshot([Book.objects.get(pk=4)]))
        self.assertEqual(snapshot([Book.objects.packed().first()]),
                         snapshot([Book.objects.first()]))

    def test_fallback_shapes(self):
        self.same(Book.objects.select_related("author"), "fallback")
        self.same(Book.objects.annotate(n=F("author__name")), "fallback")
        self.same(Book.objects.extra(select={"x": "1"}), "fallback")
        self.same(Book.objects.filter(id=1).union(
            Book.objects.filter(id=2)), "fallback")
        self.same(Restaurant.objects.all(), "fallback")
        self.assertEqual(list(packed(Book.objects.order_by("id").values_list("id")))[:1],
                         [(1,)])

    def test_other_database_and_proxy(self):
        Book.objects.using("other").create(title="elsewhere")
        got = self.same(Book.objects.using("other").all())
        self.assertEqual(got[0][2], "other")
        got = self.same(BookProxy.objects.all())
        self.assertIs(got[0][0], BookProxy)

    def test_known_related_objects_and_prefetch(self):
        books = list(self.a1.book_set.all().packed())
        with self.assertNumQueries(0):
            self.assertTrue(all(b.author is self.a1 for b in books))
        with self.assertNumQueries(2):
            authors = list(Author.objects.prefetch_related("book_set")
                           .packed())
            self.assertEqual(len(authors[0].book_set.all()), 10)

    def test_raw(self):
        sql = "SELECT * FROM djapp_book WHERE id > %s ORDER BY id"
        before = stats["packed"]
        want = snapshot(Book.objects.raw(sql, [20]))
        self.assertEqual(snapshot(packed_raw(Book, sql, [20])), want)
        self.assertEqual(stats["packed"], before + 1)
        deferred = packed_raw(Book, "SELECT id FROM djapp_book")
        self.assertEqual(snapshot(deferred),
                         snapshot(Book.objects.raw("SELECT id FROM djapp_book")))
        tr = {"a": "id", "b": "title"}
        q = "SELECT id AS a, title AS b FROM djapp_book"
        self.assertEqual(snapshot(packed_raw(Book, q, translations=tr)),
                         snapshot(Book.objects.raw(q, translations=tr)))
        q = "SELECT id, title, 1 AS extra FROM djapp_book"
        before = stats["fallback"]
        got = list(Book.objects.packed_raw(q))
        self.assertEqual(stats["fallback"], before + 1)
        self.assertEqual(got[0].extra, 1)


class Instances(Base):
    def test_state_and_model_methods(self):
        b = Book.objects.packed().get(pk=2)
        self.assertFalse(b._state.adding)
        self.assertEqual(b._state.db, "default")
        b.title = "renamed"
        b.save()
        self.assertEqual(Book.objects.get(pk=2).title, "renamed")
        b.title = "stale"
        b.refresh_from_db()
        self.assertEqual(b.title, "renamed")
        self.assertEqual(b.author.name, "Bob")
        b.delete()
        self.assertFalse(Book.objects.filter(pk=2).exists())
        c = pickle.loads(pickle.dumps(Book.objects.packed().get(pk=3)))
        self.assertEqual((c.pk, c.title, c._state.db), (3, "title 02", "default"))

    def test_deferred_save_only_saves_loaded(self):
        b = Book.objects.only("title").packed().get(pk=5)
        b.title = "changed"
        with self.assertNumQueries(1):
            b.save()
        self.assertEqual(Book.objects.get(pk=5).author_id, self.a2.pk)

    def test_model_form(self):
        class BookForm(forms.ModelForm):
            class Meta:
                model = Book
                fields = ["title", "author"]
        b = Book.objects.packed().get(pk=7)
        f = BookForm({"title": "form", "author": self.a2.pk}, instance=b)
        self.assertTrue(f.is_valid(), f.errors)
        f.save()
        self.assertEqual(Book.objects.get(pk=7).title, "form")
        self.assertIn('value="form"', str(BookForm(instance=b)))

    def test_admin_change_view_data(self):
        from django.contrib import admin
        ma = admin.ModelAdmin(Book, admin.AdminSite())
        form = ma.get_form(None, fields=["title"])(instance=Book.objects.packed().get(pk=1))
        self.assertEqual(form.initial["title"], "title 00")


class Converters(Base):
    def test_types_come_out_as_django_types(self):
        tz = datetime.timezone.utc
        Typed.objects.create(
            when=datetime.datetime(2021, 5, 6, 7, 8, 9, 123456, tzinfo=tz),
            day=datetime.date(2020, 2, 29), at=datetime.time(23, 59, 1),
            price=decimal.Decimal("12.50"), ratio=0.25, flag=True,
            maybe=False, token=uuid.UUID(int=7), data={"k": [1, None]},
            raw=b"\x00\xff", span=datetime.timedelta(days=2, microseconds=3),
            mask=5, batch="b")
        Typed.objects.create()
        got = self.same(Typed.objects.order_by("id"))
        self.assertIsInstance(got[0][1]["price"], decimal.Decimal)
        self.assertIsInstance(got[0][1]["token"], uuid.UUID)
        self.assertIs(got[0][1]["flag"], True)
        self.assertEqual(got[0][1]["mask"], 5)
        self.same(Typed.objects.only("id", "when", "batch"))


    def test_odd_date_texts_match_django(self):
        """Text Django did not write goes through Django's own parser."""
        texts = [("2020-01-05 10:11:12", "2020-01-05"),
                 ("2020-01-05 10:11:12.5", "2020-1-5"),
                 ("2020-01-05T10:11:12", "20200105"),
                 ("2020-01-05 10:11:12+02:00", "2020-01-05 "),
                 ("2020-01-05 10:11", "2020-13-05"),
                 ("20200105T101112", None)]
        with connection.cursor() as c:
            for when, day in texts:
                c.execute("INSERT INTO djapp_typed(\"when\", day, flag, "
                          "token, mask, batch) VALUES (%s, %s, 0, %s, 0, '')",
                          [when, day, uuid.uuid4().hex])
            c.execute("INSERT INTO djapp_typed(flag, maybe, token, mask, "
                      "batch) VALUES (5, 1.0, 'x', 0, '')")
        self.same(Typed.objects.only("id", "flag", "maybe"))
        for use_tz in (True, False):
            with self.settings(USE_TZ=use_tz):
                for qs in (Typed.objects.only("id", "when"),
                           Typed.objects.only("id", "day").extra(
                               where=["day IS NOT '2020-13-05'"])):
                    try:
                        want = snapshot(list(qs))
                    except Exception as e:
                        with self.assertRaises(type(e)):
                            list(packed(qs))
                        continue
                    self.assertEqual(snapshot(list(packed(qs))), want)


class Hooks(Base):
    def count_inits(self):
        calls = []

        def rec(sender, **kw):
            calls.append(sender)
        return calls, rec

    def test_custom_init_and_signals_take_safe_path(self):
        Initialised.objects.create(name="i")
        Signalled.objects.create(name="s")
        got = self.same(Initialised.objects.all())
        self.assertTrue(got[0][1]["seen"])
        got = self.same(Signalled.objects.all())
        self.assertEqual(got[0][1]["inits"], 1)

    def test_receivers_connected_at_any_time(self):
        calls, rec = self.count_inits()
        list(Book.objects.packed())
        self.assertEqual(calls, [])
        signals.pre_init.connect(rec, sender=Book)
        try:
            n = len(list(Book.objects.packed()))
            self.assertEqual(len(calls), n)
        finally:
            signals.pre_init.disconnect(rec, sender=Book)
        del calls[:]
        list(Book.objects.packed())
        self.assertEqual(calls, [])

    def test_file_field_descriptor(self):
        Document.objects.create(name="d", upload="docs/a.txt")
        before = stats["safe_batches"]
        self.same(Document.objects.all())
        self.assertEqual(stats["safe_batches"], before + 1)
        self.same(Document.objects.only("id", "name"))
        self.assertEqual(stats["safe_batches"], before + 1)  # fast: deferred
        self.assertEqual(packed(Document.objects.all())[0].upload.name,
                         "docs/a.txt")

    def test_safe_path_only_when_hooked(self):
        before = stats["safe_batches"]
        self.same(Book.objects.all())
        self.assertEqual(stats["safe_batches"], before)
        Signalled.objects.create(name="s")
        self.same(Signalled.objects.all())
        self.assertEqual(stats["safe_batches"], before + 1)


class Transparent(Base):
    def test_install_routes_plain_querysets(self):
        want = snapshot(Book.objects.filter(title__contains="1"))
        mpd.install()
        try:
            before = stats["packed"]
            got = snapshot(Book.objects.filter(title__contains="1"))
            self.assertEqual(stats["packed"], before + 1)
            self.assertEqual(got, want)
            self.assertEqual(Book.objects.get(pk=3).title, "title 02")
            before = stats["fallback"]
            list(Book.objects.select_related("author"))
            self.assertEqual(stats["fallback"], before + 1)
        finally:
            mpd.uninstall()
        before = stats["packed"]
        list(Book.objects.all())
        self.assertEqual(stats["packed"], before)

    def test_install_before_settings(self):
        """install() at import time, before Django is configured (as a
        test runner or a settings module may do), must not touch settings."""
        import subprocess
        import sys
        env = {k: v for k, v in os.environ.items()
               if k != "DJANGO_SETTINGS_MODULE"}
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        r = subprocess.run([sys.executable, "-c",
                            "import modelpack.django as m; m.install(); "
                            "m.uninstall(); print('ok')"],
                           cwd=here, env=env, capture_output=True, text=True,
                           timeout=120)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "ok"), r.stderr)

    def test_rolled_back_declaration_is_redone(self):
        c = connection
        c.ensure_connection()
        c._modelpack_state = None
        try:
            with transaction.atomic():
                list(Author.objects.packed())   # declares the temp model
                raise RuntimeError
        except RuntimeError:
            pass
        self.same(Author.objects.all())


if __name__ == "__main__":
    unittest.main()
