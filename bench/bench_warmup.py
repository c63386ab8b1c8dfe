"""Warm-up, as in the PyPy blog post: the same mixed query workload, in
sets of 100 queries, from a cold process, for CPython and PyPy, stock and
with modelpack (transparent install(): the workload code is the same).

Each configuration runs in a fresh process, which prints one line per set:
the process's CPU seconds since it started, and the set's duration.  The
parent plots them (bench/out/warmup.png, matplotlib from Debian) and prints
the checks the issue asks for.

    /usr/bin/python3 bench/bench_warmup.py [--seconds S] [--json FILE]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
CONFIGS = [("CPython stock", "/usr/bin/python3", False),
           ("PyPy stock", "pypy3", False),
           ("CPython + modelpack", "/usr/bin/python3", True),
           ("PyPy + modelpack", "pypy3", True)]


def child(seconds, packed):
    """Run the workload; print 'cpu set_ms' per set of 100 queries."""
    sys.path[:0] = [os.path.join(ROOT, "examples", "python"), ROOT]
    os.environ.setdefault("MODELPACK_EXTENSION",
                          os.path.join(ROOT, "modelpack"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.djbench.settings"
    import django
    django.setup()
    from django.db import connection
    from bench.djbench.models import Book, MultiField
    with connection.schema_editor() as ed:
        ed.create_model(Book)
        ed.create_model(MultiField)
    Book.objects.bulk_create([Book(title="A Book %d" % i)
                              for i in range(1000)])
    MultiField.objects.bulk_create([MultiField(**{
        "field%d" % k: "value %d %d" % (i, k) for k in range(1, 11)})
        for i in range(500)])
    if packed:
        import modelpack.django
        modelpack.django.install()

    def workload(i):
        k = i % 4
        if k == 0:
            return list(Book.objects.all()[:300])
        if k == 1:
            return list(MultiField.objects.only("id", "field1")[:200])
        if k == 2:
            return list(Book.objects.filter(id__gt=i % 700)[:100])
        return list(MultiField.objects.all()[:100])

    n = 0
    while time.process_time() < seconds:
        t = time.perf_counter()
        for _ in range(100):
            workload(n)
            n += 1
        print("%.4f %.4f" % (time.process_time(), (time.perf_counter() - t) * 1e3),
              flush=True)


def run(label, exe, packed, seconds):
    env = dict(os.environ)
    if "pypy" in exe:
        env["PYTHONPATH"] = "/usr/lib/python3/dist-packages"
    r = subprocess.run([exe, os.path.abspath(__file__), "--child",
                        "--seconds", str(seconds)] + (["--packed"] if packed else []),
                       env=env, capture_output=True, text=True, timeout=seconds * 10 + 120)
    if r.returncode:
        raise SystemExit("%s failed:\n%s" % (label, r.stderr[-2000:]))
    pts = [tuple(map(float, line.split())) for line in r.stdout.split("\n") if line]
    return pts


def plot(series, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for label, pts in series.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".",
                linewidth=1, label=label)
    ax.set_xlabel("process CPU seconds since start")
    ax.set_ylabel("ms per set of 100 queries")
    ax.set_yscale("log")
    ax.set_title("Warm-up: the same Django query mix, sets of 100 queries")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--packed", action="store_true")
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.child:
        return child(args.seconds, args.packed)
    series = {label: run(label, exe, packed, args.seconds)
              for label, exe, packed in CONFIGS}
    os.makedirs(OUT, exist_ok=True)
    png = os.path.join(OUT, "warmup.png")
    plot(series, png)

    def steady(pts):
        half = pts[len(pts) // 2:]
        return statistics.median(p[1] for p in half)
    print("Warm-up: %g CPU seconds per configuration, sets of 100 queries;"
          " plot: %s" % (args.seconds, os.path.relpath(png, ROOT)))
    print()
    print("%-22s %6s %12s %12s %10s" % ("configuration", "sets", "first set",
                                         "steady", "first/steady"))
    rows = []
    for label, pts in series.items():
        first, st = pts[0][1], steady(pts)
        print("%-22s %6d %10.1fms %10.1fms %9.2fx" % (label, len(pts), first,
                                                      st, first / st))
        rows.append({"config": label, "sets": len(pts), "first_ms": first,
                     "steady_ms": st})
    cp = series["CPython + modelpack"]
    pypy_steady = steady(series["PyPy stock"])
    first_vs_steady = cp[0][1] / steady(cp)
    vs_pypy = cp[0][1] / pypy_steady
    print()
    print("CPython + modelpack, first set / its steady speed: %.2fx  target: "
          "<= 1.2 (already steady) %s" % (first_vs_steady, "met"
                                          if first_vs_steady <= 1.2 else "NOT met"))
    print("CPython + modelpack, first set / warmed PyPy stock: %.2fx  target: "
          "<= 0.5 %s" % (vs_pypy, "met" if vs_pypy <= 0.5 else "NOT met"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "first_vs_steady": first_vs_steady,
                       "first_vs_pypy": vs_pypy,
                       "series": series}, f)


if __name__ == "__main__":
    main()
