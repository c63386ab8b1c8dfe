"""modelpack: read SQLite rows already packed into your model's layout.

    import modelpack
    db = modelpack.connect("app.db")            # loads the extension
    book = db.declare("book", source="book_rows",
                      fields=["id INTEGER PRIMARY KEY", "title TEXT"])
    books = book.select(into=Book)              # Book instances, fast path

See examples/python/README.md.  Django: modelpack.django.
"""
from .builders import DictBuilder, ObjectBuilder, TupleBuilder
from .core import Database, Model, connect, extension_path, load
from .decoder import Decoder
from .errors import DEFERRED, BlobError, ModelpackError
from .layout import Layout
from .lazy import Lazy
from . import accel

__version__ = "1.0.0"
__all__ = ["Database", "Model", "connect", "load", "extension_path",
           "Decoder", "Layout", "TupleBuilder", "DictBuilder",
           "ObjectBuilder", "Lazy", "DEFERRED", "BlobError", "ModelpackError",
           "accel"]
