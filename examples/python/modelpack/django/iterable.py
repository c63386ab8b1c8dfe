"""Run a Django queryset through modelpack, or hand it back to Django.

`PackedModelIterable` is a drop-in for Django's `ModelIterable`: Django
compiles the queryset's SQL as usual (filter, exclude, only/defer, order_by,
slicing, extra(where=...)), and the statement runs inside
`modelpack_query(model, sql, params...) WHERE batch = N`, so each batch of
rows reaches Python as one blob.  Anything it cannot reproduce exactly --
another database, select_related, annotations and extra select columns,
multi-table inheritance, a field type it cannot map, a safe-packing refusal
-- goes to Django's own iterable instead, so results never differ.
"""
import logging
import operator
import sqlite3

from django.core.exceptions import EmptyResultSet
from django.db import connections, utils
from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX
from django.db.models.query import ModelIterable

from . import hooks
from .builder import DjangoBuilder
from .lazy import DjangoLazy
from .schema import shape_of, state_of

BATCH = 1000
# The binding's error, and Django's wrapper of it (Django's cursor raises that)
DB_ERRORS = (sqlite3.OperationalError, utils.OperationalError)
_stock_iter = ModelIterable.__iter__
log = logging.getLogger("modelpack.django")

# Queries served packed and handed back to Django, since the process
# started: how a user (or a test) sees that the fast path is taken.
stats = {"packed": 0, "fallback": 0, "safe_batches": 0}


def fell_back(why):
    stats["fallback"] += 1
    log.debug("modelpack: Django's own path: %s", why)


class Unsupported(Exception):
    """This queryset takes Django's own path."""


def _plan(queryset):
    """(state, model, builder, compiler, sql, params) or Unsupported."""
    db = queryset.db
    connection = connections[db]
    if connection.vendor != "sqlite":
        raise Unsupported("not SQLite")
    query = queryset.query
    if query.select_related or query.combinator or query.extra_select:
        raise Unsupported("query shape")
    cls = queryset.model
    shape = shape_of(cls, connection)
    if not shape.supported:
        raise Unsupported("model")
    compiler = query.get_compiler(using=db)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        raise Unsupported("empty")
    klass = compiler.klass_info
    if (klass is None or klass["model"] is not cls or compiler.annotation_col_map
            or klass["select_fields"] != list(range(len(compiler.select)))):
        raise Unsupported("select list")
    table = shape.table
    for col, _sql, _alias in compiler.select:
        if getattr(col, "alias", None) != table:
            raise Unsupported("column from another table")
    st = state_of(connection)
    if st is None:
        raise Unsupported("extension not loadable")
    return st, shape, cls, compiler, sql, params


def _builder(st, shape, cls, alias, lazy=False):
    key = (cls, alias, lazy)
    b = st.builders.get(key)
    if b is None:
        if lazy:
            b = DjangoLazy(_builder(st, shape, cls, alias))
        else:
            b = DjangoBuilder(cls, alias, shape, connections[alias])
        b.static_hooks = hooks.static_parts(cls, shape)
        st.builders[key] = b
    return b


def qmark(sql):
    """Django's %s placeholders as SQLite's ?, the way its sqlite backend
    converts them, so the text can run inside modelpack_query."""
    return FORMAT_QMARK_REGEX.sub("?", sql).replace("%%", "%")


def blobs(connection, name, sql, params, batch, logged_sql=None):
    """A Django cursor over the packed batches of sql.  Through Django's
    cursor, so query logging, assertNumQueries, execute_wrapper and the
    debug toolbar see one query, as they would for stock Django; the
    query log shows logged_sql (Django's own text), as stock Django does."""
    cur = connection.cursor()
    cur.execute("SELECT packed FROM modelpack_query(%%s, %%s%s) "
                "WHERE batch = %%s" % (", %s" * len(params)),
                [name, sql, *params, batch])
    if logged_sql is not None and connection.queries_logged:
        log = connection.queries_log
        if log and log[-1]["sql"].startswith("SELECT packed FROM modelpack_query("):
            log[-1]["sql"] = connection.ops.last_executed_query(
                cur.cursor, logged_sql, params)
    return cur


# modelpack_query takes at most 100 parameters, and SQLite re-tests its
# arguments after the 16th (model, sql and batch come first), where a NULL
# never passes: the extension refuses it, so such a query goes to Django.
MAX_PARAMS = 100
FIRST_RETESTED = 13


def fetch(st, shape, cls, builder, sql, params, batch, stream,
          logged_sql=None):
    """(model, batches) for sql with the hooks of cls set, or Unsupported."""
    if len(params) > MAX_PARAMS:
        raise Unsupported("more than %d parameters" % MAX_PARAMS)
    if any(p is None for p in params[FIRST_RETESTED:]):
        raise Unsupported("a NULL parameter after the %dth" % FIRST_RETESTED)
    alias = builder.alias
    for attempt in (1, 2):
        try:
            model = st.model(shape)
            model.hooks(hooks.spec(cls, builder.static_hooks))
            cur = blobs(connections[alias], shape.name, sql, params, batch,
                        logged_sql)
            return model, (cur if stream else cur.fetchall())
        except DB_ERRORS as e:
            # The temp model may have vanished with a rolled-back
            # transaction: declare it again, once.  Otherwise (say, safe
            # packing refused a value Django would take) let Django do it.
            st.forget(shape)
            if attempt == 2:
                raise Unsupported(str(e))


def packed_objects(queryset, batch=BATCH, stream=False, lazy=False):
    """The queryset's model instances via modelpack, or raise Unsupported.

    Unless stream, every batch is fetched before the first object is made,
    so a refusal (say, safe packing meeting a value Django would accept)
    can still fall back without a partial result."""
    st, shape, cls, compiler, sql, params = _plan(queryset)
    alias = queryset.db
    builder = _builder(st, shape, cls, alias, lazy)
    model, cur = fetch(st, shape, cls, builder, qmark(sql), params,
                       batch, stream, logged_sql=sql)
    stats["packed"] += 1
    related = _known_related(queryset)
    if stream:
        return _stream(model, builder, cur, related)
    objs = []
    for (blob,) in cur:
        stats["safe_batches"] += blob[6] & 1
        model.decode(blob, builder, objs)
    if related:
        _set_related(objs, related)
    return iter(objs)  # list(qs) copies a list iterator in one step


def _stream(model, builder, rows, related):
    try:
        for (blob,) in rows:
            stats["safe_batches"] += blob[6] & 1
            objs = model.decode(blob, builder)
            if related:
                _set_related(objs, related)
            yield from objs
    finally:
        rows.close()  # as Django's cursor_iter does, also when abandoned


def _known_related(queryset):
    """Django's known_related_objects: the parent object a related manager
    came from, set on each child (ModelIterable does the same)."""
    return [
        (field, objs, operator.attrgetter(*[
            field.attname if f == "self"
            else queryset.model._meta.get_field(f).attname
            for f in field.from_fields]))
        for field, objs in queryset._known_related_objects.items()]


def _set_related(objs, related):
    for obj in objs:
        for field, rel_objs, getter in related:
            if field.is_cached(obj):
                continue
            try:
                rel = rel_objs[getter(obj)]
            except KeyError:
                continue
            setattr(obj, field.name, rel)


def iterate(iterable, lazy=False):
    """A ModelIterable's objects through modelpack, else Django's own."""
    try:
        return packed_objects(iterable.queryset, batch=batch_of(iterable),
                              stream=iterable.chunked_fetch, lazy=lazy)
    except Unsupported as e:
        fell_back(e)
        return _stock_iter(iterable)


def batch_of(iterable):
    """Rows per packed batch: iterator(chunk_size=n) asks for n at a time."""
    return iterable.chunk_size if iterable.chunked_fetch else BATCH


class PackedModelIterable(ModelIterable):
    """ModelIterable through modelpack, falling back to Django's."""

    def __iter__(self):
        return iterate(self)


class LazyPackedModelIterable(ModelIterable):
    """PackedModelIterable with lazy fields (`.packed(lazy=True)`)."""

    def __iter__(self):
        return iterate(self, lazy=True)
