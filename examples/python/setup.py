"""Build and install the modelpack Python package (examples/python).

Installs the pure-Python package `modelpack` (with `modelpack.django`) and,
when a C compiler and the Python headers are at hand, its optional
accelerator `modelpack._modelpack` (modelpack/_modelpack.c, which reads the
layout from the repository's include/modelpack.h).  A failed accelerator
build is reported and skipped: the package works without it, only slower.
Set MODELPACK_REQUIRE_ACCEL=1 to make that failure fatal instead (CI), and
MODELPACK_STRICT=1 to add -Werror.

    python3 setup.py build_ext --inplace     # _modelpack*.so beside the package
    python3 -m pip install .
"""
import glob
import os
import platform
import shutil
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "..", "..", "include", "modelpack.h")


def _required():
    return os.environ.get("MODELPACK_REQUIRE_ACCEL") == "1"


class OptionalBuildExt(build_ext):
    """build_ext that falls back to pure Python when compiling fails."""

    def build_extensions(self):
        if self.compiler.compiler_type == "unix":
            # The C file is kept warning-free under these; -Werror is opt-in
            # because a newer compiler's new warning should not silently
            # cost users the accelerator.
            flags = ["-std=c11", "-Wall", "-Wextra"]
            if os.environ.get("MODELPACK_STRICT") == "1":
                flags.append("-Werror")
            for ext in self.extensions:
                ext.extra_compile_args = flags + ext.extra_compile_args
        super().build_extensions()

    def run(self):
        try:
            super().run()
        except Exception as e:  # no compiler, no Python.h, ...
            self._skip(e)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            self._skip(e)
            # A library left by an earlier build would otherwise be copied
            # in place or installed as if it were this source's.
            stale = self.get_ext_fullpath(ext.name)
            if os.path.exists(stale):
                os.remove(stale)
            self.failed = getattr(self, "failed", set()) | {ext.name}

    def copy_extensions_to_source(self):
        failed = getattr(self, "failed", set())
        kept = self.extensions
        self.extensions = [e for e in kept if e.name not in failed]
        try:
            super().copy_extensions_to_source()
        finally:
            self.extensions = kept

    def _skip(self, e):
        if _required():
            raise
        sys.stderr.write(
            "warning: modelpack: C accelerator not built (%s); installing "
            "the pure-Python decoder only\n" % e)


# PyPy runs the pure decoder faster than cpyext runs C (see accel.py).
EXT_MODULES = [] if platform.python_implementation() != "CPython" else [
    Extension(
        "modelpack._modelpack",
        sources=["modelpack/_modelpack.c"],
        depends=["modelpack/_modelpack.c", HEADER],
    )]

# Installing from the repository also builds the SQLite extension itself
# into modelpack/lib/, where core.extension_path() finds it: `pip install`
# then needs no `make` and no MODELPACK_EXTENSION.  Its file name starts
# with "modelpack.", so SQLite derives the entry point sqlite3_modelpack_init.
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))


def stage_sqlite_sources():
    """Copy ext/ and include/ under build/ (setuptools puts each object
    beside its source's relative path, which must stay inside this tree);
    [] when not building from the repository."""
    if not os.path.isdir(os.path.join(REPO, "ext")):
        return []
    stage = os.path.join("build", "sqlite-src")
    for sub, pat in (("ext", "*.[ch]"), ("include", "*.h")):
        os.makedirs(os.path.join(HERE, stage, sub), exist_ok=True)
        for f in glob.glob(os.path.join(REPO, sub, pat)):
            shutil.copy2(f, os.path.join(HERE, stage, sub))
    return sorted(os.path.join(stage, "ext", os.path.basename(f))
                  for f in glob.glob(os.path.join(REPO, "ext", "*.c")))


SQLITE_SRC = stage_sqlite_sources()
if SQLITE_SRC:
    EXT_MODULES.append(Extension(
        "modelpack.lib.modelpack",
        sources=SQLITE_SRC,
        libraries=["m"],
    ))

setup(
    name="modelpack",
    version="1.0.0",
    description="Read SQLite rows packed by the modelpack extension",
    packages=find_packages(include=["modelpack", "modelpack.*"]),
    python_requires=">=3.8",
    ext_modules=EXT_MODULES,
    cmdclass={"build_ext": OptionalBuildExt},
    zip_safe=False,
)
