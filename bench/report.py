"""`make bench`: run every benchmark in one go and print one table.

Runs, in order: bench_core (C: plain column reads vs packed rows, batches,
modelpack_query and stored records; peak memory of a 1,000,000-row
streamed read vs fetchall()), bench_django.py on CPython and on PyPy
(djangobench's queries, every contender), and bench_warmup.py (cold
processes, the plot).  Each writes its raw output to bench/out/; this
script folds their figures into one table -- every figure a ratio measured
in the same run -- and writes it to bench/out/report.md as well.

    /usr/bin/python3 bench/report.py [--quick] [--readme]

--readme also puts the table and the warm-up plot into README.md (between
the `bench:begin` / `bench:end` markers, and docs/img/warmup.png), so the
README's figures are always a pasted run, never typed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
PY, PYPY = "/usr/bin/python3", "pypy3"


def run(cmd, log, env=None):
    print("bench: %s" % " ".join(cmd), file=sys.stderr, flush=True)
    t = time.time()
    with open(os.path.join(OUT, log), "w") as f:
        r = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                           env=env)
    if r.returncode:
        raise SystemExit("bench: %s failed, see bench/out/%s" % (cmd[0], log))
    print("bench:   %.0f s" % (time.time() - t), file=sys.stderr, flush=True)


def verdict(ratio, target, higher_is_better):
    if target is None:
        return ""
    ok = ratio >= target if higher_is_better else ratio <= target
    miss = 100 * abs(1 - (ratio / target if higher_is_better else target / ratio))
    return "met" if ok else "missed by %.*f%%" % (1 if miss < 10 else 0, miss)


def django_rows(path, section, targets=True):
    """Rows of one bench_django.py run; the issue's targets are ratios to
    stock Django on CPython, so other interpreters' rows carry none."""
    rows = []
    for r in json.load(open(path)):
        if not targets:
            r["target"] = None
        if r["contender"] == "packed / floor":
            rows.append((section, "%s (%d)" % (r["case"], r["rows"]),
                         "packed / floor", "", "%.2fx" % r["ratio"],
                         "<= %.1fx" % r["target"] if r["target"] else "",
                         verdict(r["ratio"], r["target"], False)))
            continue
        rows.append((section, "%s (%d)" % (r["case"], r["rows"]),
                     r["contender"], "%.2f ms" % r["ms"],
                     "%.2fx" % r["ratio"],
                     ">= %gx" % r["target"] if r["target"] else "",
                     verdict(r["ratio"], r["target"], True)))
    return rows


def core_rows(path):
    rows = []
    for line in open(path):
        sec, case, who, value, unit, ratio, target = line.rstrip("\n").split("\t")
        t = float(target[2:]) if target else None
        label = "C, ratio to plain" if sec == "C" else "memory"
        rows.append((label, case, who, "%s %s" % (value, unit),
                     "%.2fx" % float(ratio), "<= %.2fx" % t if t else "",
                     verdict(float(ratio), t, False)))
    return rows


def warmup_rows(path):
    w = json.load(open(path))
    rows = [("warm-up", "set of 100 queries", r["config"],
             "first %.1f ms, steady %.1f ms" % (r["first_ms"], r["steady_ms"]),
             "%.2fx" % (r["first_ms"] / r["steady_ms"]), "", "")
            for r in w["rows"]]
    rows.append(("warm-up", "CPython + modelpack", "first set / own steady",
                 "", "%.2fx" % w["first_vs_steady"], "<= 1.2x",
                 verdict(w["first_vs_steady"], 1.2, False)))
    rows.append(("warm-up", "CPython + modelpack", "first set / warmed PyPy stock",
                 "", "%.2fx" % w["first_vs_pypy"], "<= 0.5x",
                 verdict(w["first_vs_pypy"], 0.5, False)))
    return rows


def table(rows):
    head = ("section", "case", "contender", "measured", "ratio", "target", "")
    w = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    fmt = "| " + " | ".join("%%-%ds" % n for n in w) + " |"
    lines = [fmt % head, "|" + "|".join("-" * (n + 2) for n in w) + "|"]
    lines += [fmt % r for r in rows]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true",
                    help="fewer rows and rounds (a smoke run, not figures)")
    ap.add_argument("--readme", action="store_true")
    ap.add_argument("--no-run", action="store_true",
                    help="only fold the outputs already in bench/out/")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if not args.no_run:
        run_all(args.quick)
    report(args.readme)


def run_all(q):
    run(["./build/bench_core", "./modelpack", "--tsv", "bench/out/core.tsv"]
        + (["--rows", "20000", "--rounds", "3", "--memory-rows", "100000"]
           if q else []), "core.txt")
    run([PY, "bench/bench_django.py", "--json", "bench/out/django-cpython.json"]
        + (["--quick"] if q else []), "django-cpython.txt")
    env = dict(os.environ, PYTHONPATH="/usr/lib/python3/dist-packages")
    run([PYPY, "bench/bench_django.py", "--json", "bench/out/django-pypy.json"]
        + (["--quick"] if q else ["--rounds", "11"]), "django-pypy.txt", env)
    run([PY, "bench/bench_warmup.py", "--json", "bench/out/warmup.json",
         "--seconds", "4" if q else "12"], "warmup.txt")


def report(to_readme):
    rows = (django_rows(os.path.join(OUT, "django-cpython.json"), "Django, CPython")
            + django_rows(os.path.join(OUT, "django-pypy.json"), "Django, PyPy",
                          targets=False)
            + warmup_rows(os.path.join(OUT, "warmup.json"))
            + core_rows(os.path.join(OUT, "core.tsv")))
    text = table(rows)
    head = open(os.path.join(OUT, "django-cpython.txt")).readline().strip()
    note = ("Django rows: time per query (median of alternating rounds) and "
            "stock time / contender time; *packed / floor* is packed time / "
            "floor time.  C rows: ns per row and contender / plain loop.  "
            "Memory rows: peak MiB and fetchall / batched.  " + head + ".")
    print(text)
    print()
    print(note)
    with open(os.path.join(OUT, "report.md"), "w") as f:
        f.write(text + "\n\n" + note + "\n")
    if to_readme:
        readme(text, note)


def readme(text, note):
    img = os.path.join(ROOT, "docs", "img")
    os.makedirs(img, exist_ok=True)
    shutil.copy(os.path.join(OUT, "warmup.png"), os.path.join(img, "warmup.png"))
    path = os.path.join(ROOT, "README.md")
    s = open(path).read()
    a, b = s.index("<!-- bench:begin -->"), s.index("<!-- bench:end -->")
    block = ("<!-- bench:begin -->\n<!-- written by `make bench-readme`; do "
             "not edit -->\n\n" + text + "\n\n" + note +
             "\n\n![warm-up](docs/img/warmup.png)\n\n")
    open(path, "w").write(s[:a] + block + s[b:])


if __name__ == "__main__":
    main()
