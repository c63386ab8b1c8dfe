#!/bin/sh
# demo.sh -- what `make demo` runs: build a sample database, show a shell
# session with packed rows, then time packed reads against plain column
# reads with the C benchmark (smaller run than `make bench`).
set -e
cd "$(dirname "$0")/../.."
mkdir -p build
rm -f build/demo.db
sqlite3 build/demo.db <<'SQL'
CREATE TABLE book_rows(id INTEGER PRIMARY KEY, title TEXT NOT NULL, price REAL,
                       in_print INTEGER, author INTEGER);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
INSERT INTO book_rows
  SELECT i, 'Book number ' || i || ' — édition ' || (i % 7),
         CASE WHEN i % 5 = 0 THEN NULL ELSE round(5 + (i % 400) / 10.0, 2) END,
         i % 3 != 0, 1 + i % 50
  FROM n;
SQL
echo "== sample database: build/demo.db (20,000 books)"
sqlite3 build/demo.db < examples/shell/demo.sql
echo
echo "== timing: plain sqlite3_column_* loop vs packed rows decoded with include/modelpack.h"
./build/bench_core ./modelpack --rows 20000 --rounds 3 --no-memory
