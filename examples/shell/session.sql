-- session.sql -- an annotated sqlite3 shell session with modelpack: declare a
-- model, look at its layout, read packed rows, masks and batches, take blobs
-- apart with the inspection functions, and see what reaches the source's
-- index.  Everything happens in an in-memory database.
--
-- Run from the repository root, after `make`:
--     sqlite3 < examples/shell/session.sql
-- test/shellsession.test runs it (with the .load path of the build under
-- test) and checks the output.  For a session over a larger sample
-- database, see demo.sql / `make demo`.

.load ./modelpack
.headers on
.mode box --wrap 0

-- The rows an application stores: ordinary table, ordinary SQL.
CREATE TABLE book_rows(id INTEGER PRIMARY KEY, title TEXT NOT NULL, price REAL,
                       cover BLOB, in_print INTEGER, author INTEGER);
CREATE INDEX book_rows_title ON book_rows(title);
INSERT INTO book_rows VALUES
  (1, 'Dune',  9.5,  x'00ff00', 1, 10),
  (2, 'Émile', NULL, NULL,      0, 11),
  (3, '三体',  12.25, x'',      1, NULL);

-- The application's object layout, declared once.  The field order is the
-- record order; `COLUMN author` maps a field to a differently named column.
CREATE VIRTUAL TABLE book USING modelpack(
  source    = 'book_rows',
  id        INTEGER PRIMARY KEY,
  title     TEXT NOT NULL,
  price     REAL,
  cover     BLOB,
  in_print  BOOLEAN,
  author_id INTEGER COLUMN author
);

.print ""
.print "== 1. the layout a client builds its decoder from"
SELECT modelpack_version() AS version,
       json_extract(modelpack_layout('book'), '$.record_size') AS record_size,
       json_extract(modelpack_layout('book'), '$.struct') AS python_struct,
       json_extract(modelpack_layout('book'), '$.fingerprint') AS fingerprint;
-- Field by field: each loaded field has an 8-byte slot after the 8-byte
-- null bitmap; TEXT and BLOB slots point into the heap.
SELECT json_extract(value, '$.index') AS i, json_extract(value, '$.name') AS name,
       json_extract(value, '$.type') AS type, json_extract(value, '$.column') AS source_column,
       json_extract(value, '$.offset') AS slot_offset, json_extract(value, '$.format') AS format
  FROM json_each(modelpack_layout('book'), '$.fields');

.print ""
.print "== 2. masks: bit i = field i; the primary key is always loaded"
SELECT modelpack_mask('book') AS all_fields,
       modelpack_mask('book', 'title') AS title_mask,
       modelpack_mask('book', 'title,price') AS title_price_mask;
-- With a mask, deferred fields have no slot: records shrink, offsets move.
SELECT json_extract(modelpack_layout('book', modelpack_mask('book', 'title,price')), '$.record_size') AS record_size,
       json_extract(modelpack_layout('book', modelpack_mask('book', 'title,price')), '$.struct') AS python_struct;

.print ""
.print "== 3. packed rows: one blob per row, header magic MPAK"
SELECT id, length(packed) AS bytes, hex(substr(packed, 1, 4)) AS magic,
       modelpack_json('book', packed) AS as_json
  FROM book ORDER BY id;
-- Deferred fields are neither read from book_rows nor stored in the blob.
SELECT id, length(packed) AS bytes, modelpack_json('book', packed) AS as_json
  FROM book WHERE mask = modelpack_mask('book', 'title') ORDER BY id;

.print ""
.print "== 4. one value out of a blob: modelpack_get"
-- A field by name or by index; a NULL comes back as SQL NULL.
SELECT id, modelpack_get('book', packed, 'title') AS title,
       modelpack_get('book', packed, 2) AS price_by_index,
       typeof(modelpack_get('book', packed, 'price')) AS price_type
  FROM book WHERE id <= 2 ORDER BY id;

.print ""
.print "== 5. a blob as rows: modelpack_unpack (one row per record and field)"
SELECT record, field, name, type, quote(value) AS value
  FROM modelpack_unpack('book', (SELECT packed FROM book WHERE id = 1));

.print ""
.print "== 6. a blob back as a row of the model: WHERE unpack ="
SELECT id, title, price, hex(cover) AS cover, in_print, author_id
  FROM book WHERE unpack = (SELECT packed FROM book WHERE id = 3);

.print ""
.print "== 7. hooks choose the packing mode (auto: fast unless a hook applies)"
SELECT modelpack_hooks('book') AS hooks_now, (SELECT mode FROM book LIMIT 1) AS mode;
SELECT modelpack_hooks('book', 'post_init') AS hooks_set;
SELECT mode, hex(substr(packed, 7, 1)) AS flags_byte FROM book WHERE id = 1;
SELECT modelpack_hooks('book', '') AS hooks_cleared, (SELECT mode FROM book LIMIT 1) AS mode;

.print ""
.print "== 8. a batch: up to N records behind one header and one heap"
-- Three rows in batches of 2: a full batch, then the rest.  modelpack_get
-- takes a record number (from 0) for batches.
SELECT rowid AS batch_no, length(packed) AS bytes,
       (SELECT count(DISTINCT record) FROM modelpack_unpack('book', packed)) AS records,
       modelpack_get('book', packed, 'title', 0) AS first_title,
       modelpack_json('book', packed) AS as_json
  FROM book WHERE batch = 2 ORDER BY id;
-- Every SQL function that takes a blob reads batches too.
SELECT record, name, quote(value) AS value
  FROM modelpack_unpack('book', (SELECT packed FROM book WHERE batch = 3
                                 AND mask = modelpack_mask('book', 'title')))
  ORDER BY record, field;

.print ""
.print "== 9. any read-only query, packed: modelpack_query"
SELECT modelpack_json('book', packed) AS as_json
  FROM modelpack_query('book', 'SELECT id, title, author FROM book_rows WHERE price > ?1', 10);

.print ""
.print "== 10. what reaches the source: the index string and the source plan"
EXPLAIN QUERY PLAN SELECT packed FROM book WHERE id = 2;
EXPLAIN QUERY PLAN SELECT packed FROM book WHERE title = 'Dune' AND mask = 3;
