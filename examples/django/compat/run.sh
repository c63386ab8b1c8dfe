#!/bin/sh
# Django's own ORM test apps, stock and with modelpack.django.install().
# Needs root for the apt steps (only done when the source is missing).
# Usage: examples/django/compat/run.sh [run_suite.py options] [app ...]
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
SRC=${DJANGO_SRC:-/work/django-src}
TESTS=$(ls -d "$SRC"/python-django-*/tests 2>/dev/null | head -n 1)
if [ -z "$TESTS" ]; then
    # deb-src beside the existing Debian sources (deb822 or one-line format)
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && sed -i 's/^Types: deb$/Types: deb deb-src/' "$f"
    done
    if [ -f /etc/apt/sources.list ] && ! grep -q '^deb-src' /etc/apt/sources.list; then
        sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list >> /etc/apt/sources.list
    fi
    apt-get update
    mkdir -p "$SRC"
    # The security pocket's .dsc may be missing on a mirror: fall back to
    # any version apt knows (the tests are what matter; Django itself is
    # Debian's installed python3-django).
    (cd "$SRC" && { apt-get source python-django || for v in $(apt-cache showsrc python-django | sed -n 's/^Version: //p'); do
        apt-get source "python-django=$v" && break; done; })
    TESTS=$(ls -d "$SRC"/python-django-*/tests | head -n 1)
fi
[ -f "$REPO/modelpack.so" ] || make -C "$REPO" modelpack.so
exec /usr/bin/python3 "$HERE/run_suite.py" --tests "$TESTS" "$@"
