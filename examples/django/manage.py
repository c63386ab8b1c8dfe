#!/usr/bin/env python3
"""The example project's manage.py (run it with /usr/bin/python3: Debian's
Python, whose sqlite3 can load extensions).  It puts the repository's
examples/python on the path, so modelpack needs no install."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bookshop.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
