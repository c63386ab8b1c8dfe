"""djangobench's query benchmarks: stock Django against modelpack, one run.

Every contender of a case reads the same rows into the same model instances
(class, __dict__ and _state checked equal before timing).  Rounds alternate
the contenders, so machine noise hits all of them alike; each cell is the
median of the rounds, and the table prints ratios to stock Django.

    cd <repo> && /usr/bin/python3 bench/bench_django.py [--rounds N] [--quick]

Contenders: stock Django; the #19501-style `from_db` override; modelpack
`.packed()` with the C accelerator, with the pure-Python decoder, and lazy;
transparent `install()`; and the floor: the same instances built from
in-memory tuples by the pure-Python fast path (no database at all).
"""
import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "examples", "python"), ROOT]
os.environ.setdefault("MODELPACK_EXTENSION", os.path.join(ROOT, "modelpack"))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.djbench.settings"

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

import modelpack  # noqa: E402
import modelpack.django as mpd  # noqa: E402
from modelpack.django.builder import packed_state  # noqa: E402
from modelpack import accel  # noqa: E402
from bench.djbench.models import (Author, Book, BookFromDb, Event,  # noqa
                                 MultiField, MultiFieldFromDb, SignalledBook,
                                 SRBook)


def fill():
    with connection.schema_editor() as ed:
        for m in (Author, Book, SRBook, MultiField, SignalledBook, Event):
            ed.create_model(m)
    import datetime
    import decimal
    Author.objects.bulk_create(
        [Author(author="Author %d" % i) for i in range(100)])
    authors = list(Author.objects.order_by("id"))
    Book.objects.bulk_create([Book(title="A Book %d" % i)
                              for i in range(3000)])
    SRBook.objects.bulk_create(
        [SRBook(title="A Book %d" % i, author=authors[i % 100])
         for i in range(100)])
    MultiField.objects.bulk_create([MultiField(**{
        "field%d" % k: "%s %d" % ("abcdefghij"[k - 1] * 8, i)
        for k in range(1, 11)}) for i in range(3000)])
    SignalledBook.objects.bulk_create(
        [SignalledBook(title="A Book %d" % i) for i in range(3000)])
    t0 = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    Event.objects.bulk_create([Event(
        when=t0 + datetime.timedelta(minutes=i),
        amount=decimal.Decimal(i) / 100) for i in range(1000)])


def floor_for(sample):
    """Build sample's instances from in-memory tuples -- the same instances the
    packed path builds (its per-alias ModelState, fields in order) in the
    cheapest pure-Python way, one compiled dict display per row: the cost
    of the objects themselves, the least any client can pay on CPython."""
    cls = type(sample[0])
    names = [f.attname for f in cls._meta.concrete_fields
             if f.attname in sample[0].__dict__]
    rows = [tuple(o.__dict__[n] for n in names) for o in sample]
    vs = ["v%d" % i for i in range(len(names))]
    src = ("def floor():\n"
           "    out = []\n    ap = out.append\n"
           "    for %s, in rows:\n"
           "        o = new(cls)\n"
           "        o.__dict__ = {'_state': new(MS), %s}\n"
           "        ap(o)\n"
           "    return out\n" % (", ".join(vs), ", ".join(
               "%r: %s" % (n, v) for n, v in zip(names, vs))))
    env = {"rows": rows, "new": object.__new__, "cls": cls,
           "MS": packed_state("default")}
    exec(src, env)
    return env["floor"]


def pure(fn):
    def run():
        accel.enabled = False
        try:
            return fn()
        finally:
            accel.enabled = True
    return run


def installed(fn):
    def run():
        mpd.install()
        try:
            return fn()
        finally:
            mpd.uninstall()
    return run


def contenders(qs, fromdb_qs, run):
    """The usual contenders for `run(queryset)`."""
    return {
        "stock": lambda: run(qs.all()),
        "from_db": lambda: run(fromdb_qs.all()),
        "packed": lambda: run(qs.packed()),
        "pure": pure(lambda: run(qs.packed())),
        "lazy": lambda: run(qs.packed(lazy=True)),
        "install": installed(lambda: run(qs.all())),
        "floor": floor_for(run(qs.all()))}


def iterated(qs):
    return list(qs.iterator())


def cases():
    """(name, rows, {contender: fn}); every fn returns the instances."""
    c = []
    c.append(("query_all", 3000, contenders(
        Book.objects.all(), BookFromDb.objects.all(), iterated)))
    c.append(("query_all_multifield", 3000, contenders(
        MultiField.objects.all(), MultiFieldFromDb.objects.all(), iterated)))
    # The lazy contender's case: a listing that shows two of eleven fields.
    def shown(objs):
        for o in objs:
            o.id, o.field1
        return objs
    c.append(("listing: 2 of 11 fields read", 3000, {
        "stock": lambda: shown(list(MultiField.objects.all())),
        "packed": lambda: shown(list(MultiField.objects.packed())),
        "pure": pure(lambda: shown(list(MultiField.objects.packed()))),
        "lazy": lambda: shown(list(MultiField.objects.packed(lazy=True)))}))
    c.append(("query_defer", 1000, contenders(
        MultiField.objects.only("id", "field1"),
        MultiFieldFromDb.objects.only("id", "field1"),
        lambda qs: list(qs[:1000]))))
    def raw(sql, sample):
        return {
            "stock": lambda: list(MultiField.objects.raw(sql)),
            "from_db": lambda: list(MultiFieldFromDb.objects.raw(sql)),
            "packed": lambda: list(MultiField.objects.packed_raw(sql)),
            "pure": pure(lambda: list(MultiField.objects.packed_raw(sql))),
            "floor": floor_for(list(sample[:1000]))}
    c.append(("query_raw", 1000, raw(
        "SELECT * FROM djbench_multifield LIMIT 1000", MultiField.objects.all())))
    c.append(("query_raw_deferred", 1000, raw(
        "SELECT id FROM djbench_multifield LIMIT 1000",
        MultiField.objects.only("id"))))
    c.append(("query_get", 1, {
        "stock": lambda: [Book.objects.get(id=1)],
        "from_db": lambda: [BookFromDb.objects.get(id=1)],
        "packed": lambda: [Book.objects.packed().get(id=1)],
        "install": installed(lambda: [Book.objects.get(id=1)])}))
    sr = SRBook.objects.select_related("author")
    c.append(("query_select_related (falls back)", 100, {
        "stock": lambda: [list(sr.all()) for _ in range(20)][-1],
        "packed": lambda: [list(sr.packed()) for _ in range(20)][-1],
        "install": installed(lambda: [list(sr.all()) for _ in range(20)][-1])}))
    c.append(("query_values_list (no instances)", 3000, {
        "stock": lambda: list(Book.objects.values_list("id", "title")),
        "packed": lambda: list(Book.objects.packed().values_list(
            "id", "title"))}))
    c.append(("model_init_self_signals (safe)", 3000, {
        "stock": lambda: list(SignalledBook.objects.iterator()),
        "packed": lambda: list(SignalledBook.objects.packed().iterator()),
        "install": installed(lambda: list(SignalledBook.objects.iterator()))}))
    c.append(("converters (DateTime+Decimal)", 1000, {
        "stock": lambda: list(Event.objects.iterator()),
        "packed": lambda: list(Event.objects.packed().iterator()),
        "pure": pure(lambda: list(Event.objects.packed().iterator())),
        "floor": floor_for(list(Event.objects.all()))}))
    return c


TARGETS = {"query_all": 8, "query_all_multifield": 6, "query_defer": 10,
           "query_raw": 5, "query_raw_deferred": 8,
           "model_init_self_signals (safe)": 1.5}
COLS = ["stock", "from_db", "packed", "pure", "lazy", "install", "floor"]


def same(a, b):
    key = (lambda o: (type(o)._meta.concrete_model, {k: v for k, v in vars(o).items()
                                if k != "_state"}, o._state.db)
           if hasattr(o, "_state") else o)
    return [key(o) for o in a] == [key(o) for o in b]


def measure(fns, rounds, loops):
    times = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            t = time.perf_counter()
            for _ in range(loops):
                fns[k]()
            times[k].append((time.perf_counter() - t) / loops)
    return {k: statistics.median(v) for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", help="also write the results here (report.py)")
    args = ap.parse_args()
    rounds = 5 if args.quick else args.rounds
    fill()
    impl = "%s %s" % ("PyPy" if sys.implementation.name == "pypy"
                      else "CPython", sys.version.split()[0])
    results = []
    warm = 30 if sys.implementation.name == "pypy" else 1
    print("Django %s on %s; C accelerator %s; %d rounds, medians"
          % (django.get_version(), impl,
             "on" if accel.available else "absent", rounds))
    print()
    print("%-36s %6s" % ("case (rows)", "stock") + "".join(
        " %9s" % c for c in COLS[1:]) + "   target")
    for name, n, fns in cases():
        if not accel.available:
            fns.pop("pure", None)  # the only decoder here: "packed" is it
        lazy = fns.get("lazy")
        ref = fns["stock"]()
        for k, fn in fns.items():
            if k not in ("lazy", "floor") and not same(ref, fn()):
                raise SystemExit("%s: %s gives other instances" % (name, k))
        loops = 20 if n == 1 else 1
        # A JIT measures its steady state only after warming up (the
        # warm-up itself is bench_warmup.py's subject).
        for _ in range(warm):
            for fn in fns.values():
                fn()
        med = measure(fns, rounds, loops)
        for k, v in med.items():
            results.append({"impl": impl, "case": name, "rows": n,
                            "contender": k, "ms": v * 1e3,
                            "ratio": med["stock"] / v,
                            "target": TARGETS.get(name) if k == "packed"
                            else None})
        if "floor" in med:
            results.append({"impl": impl, "case": name, "rows": n,
                            "contender": "packed / floor",
                            "ms": None, "ratio": med["packed"] / med["floor"],
                            "target": 1.2 if name == "query_all" else None})
        cells = ["%6.2fms" % (med["stock"] * 1e3)]
        for c in COLS[1:]:
            cells.append("%8.1fx" % (med["stock"] / med[c]) if c in med
                         else "%9s" % "-")
        line = "%-36s" % ("%s (%d)" % (name, n)) + " ".join(cells)
        if name in TARGETS:
            got = med["stock"] / med["packed"]
            line += "  >=%gx %s" % (TARGETS[name], "met" if got >= TARGETS[name]
                                    else "MISSED by %.0f%%" % (
                                        100 * (1 - got / TARGETS[name])))
        print(line)
        if "floor" in med:
            print("%-36s packed / floor = %.2f%s%s" % (
                "", med["packed"] / med["floor"],
                " (target <= 1.2)" if name == "query_all" else "",
                "" if lazy is None else ", lazy / floor = %.2f"
                % (med["lazy"] / med["floor"])))
    print()
    print("Ratios are stock time / contender time (higher is faster).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
