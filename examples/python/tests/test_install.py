"""`pip install` from the repository gives a working package on its own:
the accelerator and the SQLite extension built into it, found without
MODELPACK_EXTENSION and without the repository on the path."""
import os
import platform
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.normpath(os.path.join(HERE, ".."))

SCRIPT = """
import modelpack, sys
assert modelpack.__file__.startswith(sys.argv[1]), modelpack.__file__
assert modelpack.extension_path().startswith(sys.argv[1]), modelpack.extension_path()
db = modelpack.connect(":memory:")
db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
db.execute("INSERT INTO t VALUES (1, 'x'), (2, NULL)")
m = db.declare("m", "t", ["id INTEGER PRIMARY KEY", "v TEXT"])
print(m.select(), modelpack.accel.available)
"""


@unittest.skipIf(platform.python_implementation() != "CPython",
                 "pip installs for CPython here")
class PipInstall(unittest.TestCase):
    def test_pip_install_from_repo(self):
        with tempfile.TemporaryDirectory() as target:
            r = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--no-build-isolation",
                 "--no-index", "--no-deps", "--target", target, PKG],
                capture_output=True, text=True, timeout=600)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            env = {k: v for k, v in os.environ.items()
                   if k not in ("MODELPACK_EXTENSION", "MODELPACK_PURE",
                                "PYTHONPATH")}
            env["PYTHONPATH"] = target
            r = subprocess.run([sys.executable, "-c", SCRIPT, target],
                               cwd=tempfile.gettempdir(), env=env,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip(), "[(1, 'x'), (2, None)] True")


if __name__ == "__main__":
    unittest.main()
