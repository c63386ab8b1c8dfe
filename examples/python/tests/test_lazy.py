"""Lazy fields, plain classes and Django: values decoded on first read are
the values an eager read gives, nothing is decoded before it is read, and
Django sees lazy fields as deferred ones."""
import os
import pickle
import unittest

import modelpack
from modelpack import Lazy
from tests.test_core import FIELDS, ROWS, expected, make_db

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.djsettings")
from tests import test_django  # noqa: E402  (sets Django up)
from tests.djapp.models import Book, MultiField, Typed  # noqa: E402
from modelpack.django import packed  # noqa: E402

setUpModule = test_django.setUpModule


class Plain:
    pass


class LazyPlain(unittest.TestCase):
    def test_values_match_eager_and_decode_on_read(self):
        db = make_db()
        m = db.declare("m", "src", FIELDS)
        objs = m.select(into=Lazy(Plain), order_by="id", batch=2)
        self.assertTrue(all(isinstance(o, Plain) for o in objs))
        names = ["id", "title", "price", "data", "ok", "big"]
        self.assertEqual(set(vars(objs[0])), {"id", "_mp_lazy"})
        for o, row in zip(objs, ROWS):
            self.assertEqual(tuple(getattr(o, n) for n in names),
                             expected(row))
        self.assertIn("title", vars(objs[0]))

    def test_bad_slot_found_on_read(self):
        db = make_db()
        m = db.declare("m", "src", FIELDS)
        blob = bytearray(db.execute(
            "SELECT packed FROM m WHERE batch = 10").fetchone()[0])
        blob[48 + 16:48 + 20] = (2**31).to_bytes(4, "little")
        objs = m.decode(bytes(blob), Lazy(Plain))
        with self.assertRaises(modelpack.BlobError):
            objs[0].title
        self.assertEqual(objs[1].title, None)


class LazyDjango(test_django.Base):
    def test_lazy_instances(self):
        want = test_django.snapshot(MultiField.objects.order_by("id"))
        objs = list(MultiField.objects.order_by("id").packed(lazy=True))
        self.assertIs(type(objs[0]), MultiField)
        self.assertEqual(set(vars(objs[0])), {"_state", "id"})
        with self.assertNumQueries(0):
            for o in objs:
                for k in range(1, 11):
                    getattr(o, "field%d" % k)
        self.assertEqual(test_django.snapshot(objs), want)

    def test_lazy_is_deferred_to_django(self):
        b = packed(Book.objects.all(), lazy=True).get(pk=4)
        self.assertEqual(b.get_deferred_fields(), {"title", "author_id"})
        b.title = "lazy"
        b.save()
        self.assertEqual(Book.objects.get(pk=4).title, "lazy")
        self.assertEqual(Book.objects.get(pk=4).author_id, b.author_id)
        c = pickle.loads(pickle.dumps(packed(Book.objects.all(),
                                             lazy=True).get(pk=5)))
        with self.assertNumQueries(1):
            self.assertEqual(c.title, "title 04")

    def test_lazy_converters(self):
        import datetime
        import decimal
        Typed.objects.create(when=datetime.datetime(
            2020, 1, 2, tzinfo=datetime.timezone.utc),
            price=decimal.Decimal("3.10"))
        t = Typed.objects.packed(lazy=True).get()
        self.assertEqual(t.price, decimal.Decimal("3.10"))
        self.assertEqual(t.when.year, 2020)


if __name__ == "__main__":
    unittest.main()
