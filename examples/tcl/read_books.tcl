#!/usr/bin/env tclsh
# read_books.tcl -- a runnable tour of the Tcl client (modelpack.tcl, next to
# this file): an in-memory database with a few books, a `book` model over
# them, then packed rows, a deferred-field mask, batches, and a query read
# record by record with modelpack::foreach_record.  It is the Tcl twin of
# examples/c/read_books.c; test/tclclient.test runs it and checks its output.
#
#   tclsh examples/tcl/read_books.tcl [path/to/modelpack]
#
# The extension path is given without ".so", as load_extension() expects;
# default: $MODELPACK_SO, else ./modelpack at the repository root.

package require sqlite3

set here [file dirname [file normalize [info script]]]
source [file join $here modelpack.tcl]

if {[llength $argv] > 0} {
    set so [lindex $argv 0]
} elseif {[info exists env(MODELPACK_SO)] && $env(MODELPACK_SO) ne ""} {
    set so $env(MODELPACK_SO)
} else {
    set so [file join [file dirname [file dirname $here]] modelpack]
}

# The titles are not ASCII; do not let the locale decide how they print.
fconfigure stdout -encoding utf-8

sqlite3 db :memory:
db enable_load_extension 1
db eval {SELECT load_extension($so)}
# Loading is the only thing that needs the switch; leave it off afterwards.
db enable_load_extension 0

# Non-ASCII titles as escapes, so this file reads the same in any locale.
set emile "\u00c9mile, ou De l'\u00e9ducation"
set santi "\u4e09\u4f53"
db eval {
    CREATE TABLE book_rows(id INTEGER PRIMARY KEY, title TEXT NOT NULL,
                           price REAL, cover BLOB, in_print INTEGER,
                           author INTEGER);
    INSERT INTO book_rows VALUES
        (1, 'Dune',              9.5,  x'89504e47000d0a', 1, 10),
        (2, $emile,              NULL, NULL,            0, 11),
        (3, $santi,              12.25, x'',            1, NULL),
        (4, '',                  0.0,  x'00',           NULL, 12);
    CREATE VIRTUAL TABLE book USING modelpack(
        source    = 'book_rows',
        id        INTEGER PRIMARY KEY,
        title     TEXT NOT NULL,
        price     REAL,
        cover     BLOB,
        in_print  BOOLEAN,
        author_id INTEGER COLUMN author
    );
}

# BLOB values are byte arrays; hex makes them printable.
proc show {rec} {
    set out {}
    dict for {k v} $rec {
        if {$k eq "cover" && $v ne "<null>"} {
            binary scan $v H* v
            set v x'$v'
        }
        lappend out "$k=$v"
    }
    return [join $out "  "]
}

puts "== one blob per row, every field (NULL shown as <null>)"
set all [modelpack::decoder db book -null <null>]
puts "   layout: mask [dict get $all mask], record_size [dict get $all record_size],\
      fingerprint [format %016llx [dict get $all fingerprint]]"
db eval {SELECT packed FROM book ORDER BY id} {
    foreach rec [modelpack::decode $all $packed hdr] {
        puts "   [show $rec]   ([string length $packed] bytes, safe=[dict get $hdr safe])"
    }
}

puts "== mask id,title: the other fields are not read and not in the dicts"
set narrow [modelpack::decoder db book -mask {id title}]
set m [dict get $narrow mask]
db eval {SELECT packed FROM book WHERE mask = $m ORDER BY title} {
    foreach rec [modelpack::decode $narrow $packed] {
        puts "   [show $rec]   ([string length $packed] bytes)"
    }
}

puts "== batches of 3, safe mode: one header and heap per blob"
db eval {SELECT packed FROM book WHERE batch = 3 AND mode = 'safe' ORDER BY id} {
    set recs [modelpack::decode $all $packed hdr]
    puts "   blob of [dict get $hdr count] records, batch=[dict get $hdr batch]\
          safe=[dict get $hdr safe], [string length $packed] bytes"
    foreach rec $recs { puts "      [show $rec]" }
}

puts "== modelpack::foreach_record over a query (batches under the hood)"
set n [modelpack::foreach_record -params {5} -batch 2 -null <null> db book \
        {SELECT id, title, price FROM book_rows WHERE price < ?1 OR price IS NULL ORDER BY id} \
        rec {
    puts "   [show $rec]"
}]
puts "   $n records"

puts "== a damaged blob is refused before anything is read"
set blob [db onecolumn {SELECT packed FROM book WHERE id = 1}]
set cut [string range $blob 0 end-1]
if {[catch {modelpack::decode $all $cut} err]} { puts "   $err" }

db close
