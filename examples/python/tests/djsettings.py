"""Settings for the modelpack Django tests (an in-memory SQLite database)."""
SECRET_KEY = "modelpack-tests"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth",
                  "modelpack.django", "tests.djapp"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": ":memory:"},
             "other": {"ENGINE": "django.db.backends.sqlite3",
                       "NAME": ":memory:"}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
MEDIA_ROOT = "/tmp/modelpack-media"
