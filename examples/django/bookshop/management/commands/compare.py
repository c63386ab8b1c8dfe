"""manage.py compare: read every book stock and packed, check they are the
same instances, and time both (a quick look; bench/ has the real numbers)."""
import time

from django.core.management.base import BaseCommand

import modelpack.django as mpd
from bookshop.models import Book


def timed(fn, rounds=7):
    best = None
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn()
        t = time.perf_counter() - t
        best = t if best is None or t < best else best
    return out, best


class Command(BaseCommand):
    help = "Compare stock Django and modelpack on this database"

    def handle(self, **opts):
        was = mpd.installed()
        mpd.uninstall()
        stock, ts = timed(lambda: list(Book.objects.all()))
        packed, tp = timed(lambda: list(Book.objects.packed()))
        if was:
            mpd.install()
        same = [(type(o), {k: v for k, v in vars(o).items() if k != "_state"})
                for o in stock] == [
               (type(o), {k: v for k, v in vars(o).items() if k != "_state"})
               for o in packed]
        self.stdout.write("%d books; same instances: %s; stock %.1f ms, "
                          "packed %.1f ms (%.1fx)" % (
                              len(stock), same, ts * 1e3, tp * 1e3, ts / tp))
        if not same:
            raise SystemExit(1)
