"""Django app config: add "modelpack.django" to INSTALLED_APPS and set
MODELPACK_TRANSPARENT = True to run every SQLite queryset through modelpack
(install()); without the setting the app only makes `packed()` available.
"""
from django.apps import AppConfig
from django.conf import settings


class ModelpackConfig(AppConfig):
    name = "modelpack.django"
    label = "modelpack"
    verbose_name = "modelpack"

    def ready(self):
        if getattr(settings, "MODELPACK_TRANSPARENT", False):
            from . import install
            install()
