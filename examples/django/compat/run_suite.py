#!/usr/bin/python3
"""Run Django's own ORM tests stock and with modelpack's transparent mode.

    /usr/bin/python3 examples/django/compat/run_suite.py \
        --tests /work/django-src/python-django-3.2.25/tests [app ...]

For every test app, Django's tests/runtests.py (default `test_sqlite`
settings, `--parallel 1`) runs twice, each time in a fresh process:

* stock:   as shipped;
* install: `modelpack.django.install()` first, so every ModelIterable goes
           through modelpack (or falls back to Django's own path).

Every test's outcome (ok / fail / error / skip / xfail / xpass) is
recorded in both runs and compared: transparent mode must not change any.
The install run also counts the querysets served packed and the ones that
fell back (modelpack.django.stats), with the fallback reasons, per test.

Results go to --out (default /tmp/modelpack-django-compat): one JSON file
per (app, mode), plus summary.json and summary.md (the README's table).
Options: --package DIR puts DIR on sys.path instead of examples/python
(to try a patched copy of the package); --only install|stock re-runs one
side; --keep reuses JSON files already in --out; --stock-dir DIR reuses
the stock results of an earlier run.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
PACKAGE_DIR = os.path.join(REPO, "examples", "python")
DEFAULT_TESTS = "/work/django-src/python-django-3.2.25/tests"

APPS = """basic queries lookup model_fields defer defer_regress custom_managers
many_to_one many_to_many one_to_one model_inheritance proxy_models raw_query
ordering select_related prefetch_related expressions annotations aggregation
dates datetimes null_queries get_or_create update delete signals model_forms
fixtures serializers pagination generic_relations custom_pk model_regress
timezones known_related_objects distinct_on_fields extra_regress
queryset_pickle bulk_create transactions select_for_update
model_inheritance_regress select_related_regress select_related_onetoone
m2m_through m2m_regress many_to_one_null null_fk
generic_relations_regress custom_columns reverse_lookup string_lookup
expressions_case aggregation_regress or_lookups field_defaults
foreign_object from_db_value filtered_relation db_functions
""".split()


# --------------------------------------------------------------- child side

def _record_outcomes(results):
    """Patch unittest's result class: test id -> (outcome, detail)."""
    import unittest

    R = unittest.TextTestResult

    def wrap(name, outcome, detail_of=None):
        orig = getattr(R, name)

        def method(self, test, *args):
            tid = test.id()
            detail = detail_of(self, test, args) if detail_of else ""
            prev = results.get(tid)
            # a failing subtest makes the whole test fail
            if prev is None or prev[0] in ("ok", "skip"):
                results[tid] = [outcome, detail]
            return orig(self, test, *args)
        setattr(R, name, method)

    def err_text(self, test, args):
        try:
            return self._exc_info_to_string(args[0], test)[-4000:]
        except Exception:
            return repr(args[0][1])[-4000:]

    wrap("addSuccess", "ok")
    wrap("addFailure", "fail", err_text)
    wrap("addError", "error", err_text)
    wrap("addSkip", "skip", lambda self, t, a: str(a[0])[:200])
    wrap("addExpectedFailure", "xfail")
    wrap("addUnexpectedSuccess", "xpass")

    orig_sub = R.addSubTest

    def addSubTest(self, test, subtest, err):
        if err is not None:
            tid = test.id()
            bad = "fail" if issubclass(err[0], test.failureException) else "error"
            prev = results.get(tid)
            if prev is None or prev[0] in ("ok", "skip"):
                results[tid] = [bad, "subtest %s\n%s" % (
                    subtest.id(), err_text(self, test, (err,)))]
        return orig_sub(self, test, subtest, err)
    R.addSubTest = addSubTest



def _install_counting(per_test, reasons, current):
    """install() transparent mode, counting packed / fallback per test."""
    import modelpack.django as mpd
    from modelpack.django import iterable

    mpd.install()
    stats = mpd.stats

    def counting(orig):
        def fell_back(why):
            reasons[current[0] + " :: " + str(why)[:120]] += 1
            return orig(why)
        return fell_back

    # _transparent_iter looks `fell_back` up in the package's globals,
    # PackedModelIterable and packed_raw in their modules'.
    for mod in (mpd, iterable, sys.modules.get("modelpack.django.raw")):
        if mod is not None and hasattr(mod, "fell_back"):
            mod.fell_back = counting(mod.fell_back)

    import unittest
    R = unittest.TextTestResult
    orig_start, orig_stop = R.startTest, R.stopTest

    def startTest(self, test):
        current[0] = test.id()
        current[1] = dict(stats)
        return orig_start(self, test)

    def stopTest(self, test):
        before = current[1] or {}
        d = {k: stats.get(k, 0) - before.get(k, 0) for k in stats}
        if any(d.values()):
            per_test[test.id()] = d
        current[0] = "<outside a test>"
        current[1] = None
        return orig_stop(self, test)
    R.startTest, R.stopTest = startTest, stopTest
    return stats


def child(args):
    tests = os.path.abspath(args.tests)
    sys.path.insert(0, args.package)
    sys.path.insert(0, tests)
    os.chdir(tests)
    results, per_test, reasons = {}, {}, collections.Counter()
    current = ["<outside a test>", None]
    _record_outcomes(results)
    stats = None
    info = {"mode": args.mode, "app": args.apps, "package": args.package}
    if args.mode == "install":
        stats = _install_counting(per_test, reasons, current)
        import modelpack.django.iterable as it
        from modelpack import accel
        info["accelerator"] = accel.available
        info["module_file"] = it.__file__
        info["extension"] = os.environ.get("MODELPACK_EXTENSION")
    rc = None
    t0 = time.time()
    sys.argv = [os.path.join(tests, "runtests.py"), "--parallel", "1",
                "-v", "1"] + args.apps
    import runpy
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
        rc = 0
    except SystemExit as e:
        rc = e.code
    except BaseException:
        info["crash"] = traceback.format_exc()
        rc = "crash"
    info["seconds"] = round(time.time() - t0, 2)
    info["rc"] = rc
    info["stats"] = dict(stats) if stats is not None else None
    info["fallback_reasons"] = dict(reasons)
    info["per_test_stats"] = per_test
    info["results"] = results
    with open(args.json, "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
    os._exit(0 if rc in (0, None) else 1)


# -------------------------------------------------------------- parent side

def run_one(args, app, mode):
    path = os.path.join(args.out, "%s.%s.json" % (app, mode))
    if mode == "stock" and args.stock_dir:
        path = os.path.join(args.stock_dir, "%s.%s.json" % (app, mode))
    if (args.keep or (mode == "stock" and args.stock_dir)) and \
            os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    cmd = [sys.executable, os.path.abspath(__file__), "--child",
           "--mode", mode, "--json", path, "--tests", args.tests,
           "--package", args.package, app]
    log = os.path.join(args.out, "%s.%s.log" % (app, mode))
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if args.extension:
        env["MODELPACK_EXTENSION"] = os.path.abspath(args.extension)
    if args.pure:
        env["MODELPACK_PURE"] = "1"
    with open(log, "w") as lf:
        p = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env,
                           timeout=args.timeout)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"mode": mode, "rc": "no result (exit %s), see %s"
                % (p.returncode, log), "results": {}, "stats": None,
                "fallback_reasons": {}, "per_test_stats": {}}


def count(results, outcome):
    return sum(1 for r in results.values() if r[0] == outcome)


def compare(app, stock, inst):
    a, b = stock["results"], inst["results"]
    diffs = []
    for tid in sorted(set(a) | set(b)):
        oa = a.get(tid, ["missing", ""])[0]
        ob = b.get(tid, ["missing", ""])[0]
        if oa != ob:
            diffs.append({"test": tid, "stock": oa, "install": ob,
                          "detail": b.get(tid, ["", ""])[1]
                          or a.get(tid, ["", ""])[1]})
    return diffs


def summarize(args, rows):
    lines = ["| app | tests | stock ok/fail/err/skip | install ok/fail/err/skip"
             " | packed | fallback | differences |",
             "|---|---:|---|---|---:|---:|---|"]
    tot = collections.Counter()
    for app, stock, inst, diffs in rows:
        def oc(r):
            res = r["results"]
            ok = count(res, "ok") + count(res, "xfail")
            return "%d/%d/%d/%d" % (ok, count(res, "fail"), count(res, "error"),
                                    count(res, "skip"))
        st = inst.get("stats") or {}
        n = len(stock["results"])
        tot["tests"] += n
        tot["packed"] += st.get("packed", 0)
        tot["fallback"] += st.get("fallback", 0)
        tot["diffs"] += len(diffs)
        extra = ""
        if stock.get("rc") not in (0, 1) or inst.get("rc") not in (0, 1):
            extra = " (rc stock=%s install=%s)" % (stock.get("rc"),
                                                  inst.get("rc"))
        lines.append("| %s | %d | %s | %s | %d | %d | %s%s |" % (
            app, n, oc(stock), oc(inst), st.get("packed", 0),
            st.get("fallback", 0),
            ", ".join("%s: %s->%s" % (d["test"].split(".")[-2] + "."
                                      + d["test"].split(".")[-1],
                                      d["stock"], d["install"])
                      for d in diffs) or "none", extra))
    lines.append("| **total** | %d | | | %d | %d | %d |" % (
        tot["tests"], tot["packed"], tot["fallback"], tot["diffs"]))
    return "\n".join(lines)


def parent(args):
    os.makedirs(args.out, exist_ok=True)
    apps = args.apps or APPS
    rows, allreasons = [], collections.Counter()
    for app in apps:
        t0 = time.time()
        stock = run_one(args, app, "stock") if args.only != "install" else \
            json.load(open(os.path.join(args.out, app + ".stock.json")))
        inst = run_one(args, app, "install") if args.only != "stock" else \
            json.load(open(os.path.join(args.out, app + ".install.json")))
        diffs = compare(app, stock, inst)
        rows.append((app, stock, inst, diffs))
        for k, v in (inst.get("fallback_reasons") or {}).items():
            allreasons[k.split(" :: ", 1)[-1]] += v
        st = inst.get("stats") or {}
        print("%-28s tests=%4d packed=%6d fallback=%6d diffs=%d  (%.0fs)" % (
            app, len(stock["results"]), st.get("packed", 0),
            st.get("fallback", 0), len(diffs), time.time() - t0), flush=True)
        for d in diffs:
            print("   DIFF %s: stock=%s install=%s" % (
                d["test"], d["stock"], d["install"]), flush=True)
        table = summarize(args, rows)
        with open(os.path.join(args.out, "summary.md"), "w") as f:
            f.write(table + "\n\nFallback reasons (all apps):\n\n")
            for k, v in allreasons.most_common():
                f.write("- %d x %s\n" % (v, k))
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump({"apps": [
                {"app": a, "tests": len(s["results"]),
                 "stats": i.get("stats"), "diffs": d,
                 "rc": [s.get("rc"), i.get("rc")]}
                for a, s, i, d in rows],
                "fallback_reasons": dict(allreasons)}, f, indent=1)
    print()
    print(summarize(args, rows))
    return 1 if any(r[3] for r in rows) else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("apps", nargs="*")
    p.add_argument("--tests", default=os.environ.get(
        "DJANGO_TESTS", DEFAULT_TESTS), help="Django's tests/ directory")
    p.add_argument("--package", default=PACKAGE_DIR,
                   help="directory holding the modelpack package")
    p.add_argument("--out", default="/tmp/modelpack-django-compat")
    p.add_argument("--only", choices=["stock", "install"])
    p.add_argument("--keep", action="store_true")
    p.add_argument("--extension", help="modelpack.so to load (sets "
                   "MODELPACK_EXTENSION; default: the package's own lookup)")
    p.add_argument("--pure", action="store_true",
                   help="MODELPACK_PURE=1: no C accelerator")
    p.add_argument("--stock-dir", help="reuse the stock results in this "
                   "directory (from an earlier run)")
    p.add_argument("--timeout", type=int, default=1800)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=["stock", "install"],
                   help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.package = os.path.abspath(args.package)
    if args.child:
        child(args)
    else:
        sys.exit(parent(args))


if __name__ == "__main__":
    main()
