-- demo.sql -- a readable modelpack session for the sqlite3 shell.
-- Run from the repository root:  sqlite3 build/demo.db < examples/shell/demo.sql
-- (make demo does this after building the extension and the sample data.)
.load ./modelpack
.headers on
.mode box

-- A model over the sample table: the layout every packed row uses.
DROP TABLE IF EXISTS temp.book;
CREATE VIRTUAL TABLE temp.book USING modelpack(
  source    = 'main.book_rows',
  id        INTEGER PRIMARY KEY,
  title     TEXT NOT NULL,
  price     REAL,
  in_print  BOOLEAN,
  author_id INTEGER COLUMN author
);

SELECT '-- three packed rows, decoded by modelpack_json' AS step;
SELECT id, length(packed) AS bytes, modelpack_json('book', packed) AS record
  FROM book WHERE id <= 3;

SELECT '-- defer everything but id and title: smaller records, fewer columns read' AS step;
SELECT length(packed) AS bytes, modelpack_json('book', packed) AS record
  FROM book WHERE mask = modelpack_mask('book', 'id,title') AND id = 2;

SELECT '-- a record back as a row of the model''s columns' AS step;
SELECT * FROM book WHERE unpack = (SELECT packed FROM book WHERE id = 2);

SELECT '-- the layout any client builds its decoder from' AS step;
SELECT json_extract(modelpack_layout('book'), '$.struct') AS python_struct,
       json_extract(modelpack_layout('book'), '$.record_size') AS record_size,
       json_extract(modelpack_layout('book'), '$.fingerprint') AS fingerprint;

SELECT '-- hooks decide fast or safe packing (auto mode)' AS step;
SELECT mode FROM book LIMIT 1;
SELECT modelpack_hooks('book', 'setattr:price') AS hooks;
SELECT mode AS mode_with_price FROM book LIMIT 1;
SELECT mode AS mode_price_deferred FROM book WHERE mask = modelpack_mask('book', 'id,title') LIMIT 1;
SELECT modelpack_hooks('book', '') AS hooks_cleared;

SELECT '-- WHERE id = ? reaches the source index (see the index string)' AS step;
EXPLAIN QUERY PLAN SELECT packed FROM book WHERE id = 42;
