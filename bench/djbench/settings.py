"""Django settings for bench_django.py: one in-memory SQLite database, as
djangobench runs its query benchmarks."""
SECRET_KEY = "modelpack-bench"
INSTALLED_APPS = ["django.contrib.contenttypes", "bench.djbench"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": ":memory:"}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
