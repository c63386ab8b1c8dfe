"""Faster equivalents of Django's SQLite converters for dates and datetimes.

Django parses every DateField and DateTimeField value with a regular
expression (`parse_date`, `parse_datetime`); on a packed read that is most
of the time left.  For the exact text Django itself writes --
`YYYY-MM-DD` and `YYYY-MM-DD HH:MM:SS[.ffffff]` -- `fromisoformat` (C) gives
the same value; anything else goes to Django's own converter, so results
never differ.  Settings (USE_TZ) and the connection's time zone are read on
every call, as Django does, so override_settings keeps working.
"""
import datetime

from django.conf import settings
from django.db.backends.sqlite3.operations import DatabaseOperations
from django.utils import timezone

_date_iso = datetime.date.fromisoformat
_dt_iso = datetime.datetime.fromisoformat
_UTC = {datetime.timezone.utc, getattr(timezone, "utc", None)}


def _fast_date(stock):
    def convert(value, expression, connection):
        if (value.__class__ is str and len(value) == 10
                and value[4] == "-" and value[7] == "-"):
            try:
                return _date_iso(value)
            except ValueError:
                pass
        return stock(value, expression, connection)
    return convert


def _fast_datetime(stock, ops):
    def convert(value, expression, connection):
        if (value.__class__ is str and len(value) in (19, 26)
                and value[10] == " " and value[4] == "-" and value[13] == ":"
                and (len(value) == 19 or value[19] == ".")):
            try:
                dt = _dt_iso(value)
            except ValueError:
                return stock(value, expression, connection)
            if not settings.USE_TZ:
                return dt
            tz = ops.connection.timezone
            if tz in _UTC:
                return dt.replace(tzinfo=tz)
            return timezone.make_aware(dt, tz)
        return stock(value, expression, connection)
    return convert


def faster(fns):
    """fns with Django's date and datetime converters swapped for the fast
    ones above; every other converter kept as it is."""
    out = []
    for fn in fns:
        f = getattr(fn, "__func__", None)
        if f is DatabaseOperations.convert_datefield_value:
            out.append(_fast_date(fn))
        elif f is DatabaseOperations.convert_datetimefield_value:
            out.append(_fast_datetime(fn, fn.__self__))
        else:
            out.append(fn)
    return out
