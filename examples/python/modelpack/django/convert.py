"""Reproduce, for packed values, both conversions stock Django applies.

1. The binding's.  Django opens SQLite connections with PARSE_DECLTYPES, so
   Python's sqlite3 converts a column whose declared type's first word has a
   registered converter (Django registers `bool`, `time`, `datetime`,
   `timestamp`; Python registers `date`) from the value's bytes *before*
   Django sees it.  Such fields are packed as TEXT -- SQLite's own text
   rendering of whatever is stored, the bytes the binding would pass -- and
   `binding()` applies the same converter to them.
2. Django's: `get_db_converters` (dates made aware, decimals quantized,
   UUIDs, JSON, booleans, `from_db_value`), applied unchanged.

Date and datetime parsing (regular expressions in Django, `split` in
Python's `convert_date`) is most of a packed read's remaining time, so for
the exact text Django writes -- `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS[.ffffff]`
-- `fromisoformat` (C) is used; it gives the same value, and any other text
goes to the registered converter itself, so results never differ.
"""
import datetime
import sqlite3

from django.utils.dateparse import parse_datetime

_date_iso = datetime.date.fromisoformat
_dt_iso = datetime.datetime.fromisoformat


def decltype_converter(field, connection):
    """The converter Python's sqlite3 applies to field's column, or None."""
    opts = connection.settings_dict.get("OPTIONS", {})
    detect = opts.get("detect_types", sqlite3.PARSE_DECLTYPES
                      | sqlite3.PARSE_COLNAMES)
    if not detect & sqlite3.PARSE_DECLTYPES:
        return None
    decl = field.db_type(connection) or ""
    word = decl.split("(")[0].split(" ")[0].upper()
    return sqlite3.converters.get(word)


def _wraps(conv, fn):
    """Django's decoder(fn) is a lambda whose closure holds fn."""
    cells = getattr(conv, "__closure__", None) or ()
    return any(c.cell_contents is fn for c in cells)


def binding(conv):
    """A (value, expression, connection) converter doing what the binding
    does with conv to a TEXT value (NULL is never converted)."""
    if _wraps(conv, parse_datetime):
        def convert(v, e, c):
            if v is None:
                return None
            if (len(v) in (19, 26) and v[10] == " " and v[4] == "-"
                    and v[13] == ":" and (len(v) == 19 or v[19] == ".")):
                try:
                    return _dt_iso(v)
                except ValueError:
                    pass
            return conv(v.encode())
        return convert
    if (getattr(conv, "__name__", "") == "convert_date"
            and getattr(conv, "__module__", "").startswith("sqlite3")):
        def convert(v, e, c):
            if v is None:
                return None
            if len(v) == 10 and v[4] == "-" and v[7] == "-":
                try:
                    return _date_iso(v)
                except ValueError:
                    pass
            return conv(v.encode())
        return convert

    def convert(v, e, c):
        return None if v is None else conv(v.encode())
    return convert
