"""The example Django project (examples/django) runs: migrate, seed and
compare in a fresh process each, against a temporary database."""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.normpath(os.path.join(HERE, "..", "..", "django"))


class ExampleProject(unittest.TestCase):
    def manage(self, env, *args):
        r = subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT,
                           env=env, capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def test_migrate_seed_compare(self):
        with tempfile.TemporaryDirectory() as d:
            env = dict(os.environ, BOOKSHOP_DB=os.path.join(d, "shop.db"),
                       DJANGO_SETTINGS_MODULE="bookshop.settings")
            if "pypy" in sys.executable:
                env["PYTHONPATH"] = "/usr/lib/python3/dist-packages"
            self.manage(env, "migrate", "-v0")
            self.assertIn("200 books", self.manage(env, "seed", "200"))
            out = self.manage(env, "compare")
            self.assertIn("200 books; same instances: True", out)
            self.assertIn("System check identified no issues",
                          self.manage(env, "check"))


if __name__ == "__main__":
    unittest.main()
