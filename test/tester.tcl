# tester.tcl -- a small test harness for modelpack, in the style of SQLite's.
#
# Every test file starts with
#     source [file join [file dirname [info script]] tester.tcl]
# and ends with `finish_test`.  test/all.tcl runs every test/*.test in its
# own child interpreter and prints the one summary line; a test file can also
# be run alone (`MODELPACK_SO=/path/modelpack tclsh test/decl.test`).
#
# Test commands (NAME must be unique within a file):
#   do_test NAME SCRIPT EXPECTED          result of SCRIPT equals EXPECTED
#   do_test_glob NAME SCRIPT PATTERN      result matches a glob pattern
#   do_test_regexp NAME SCRIPT RE         result matches a regular expression
#   do_execsql_test NAME SQL EXPECTED     `db eval SQL` equals the list EXPECTED
#   do_catchsql_test NAME SQL {RC MSG}    {0 result} or {1 message}, exactly
#   do_catchsql_glob NAME SQL {RC PAT}    the same, message matched by glob
#   do_catchsql_has NAME SQL WORDS        fails, message starts "modelpack"
#                                         and contains every word of WORDS
#                                         (case-insensitive, any order)
#   do_catch_has NAME SCRIPT WORDS        the same for a Tcl script
#   mp_skip NAME WHY                      print a note; counts as neither
#
# SQL and scripts run in the caller's scope, so $vars bind as in `db eval`.
# An error raised by a test script is a failure (with its stack), never a
# crash of the run.

package require sqlite3

if {![info exists ::mp_tester_loaded]} {
set ::mp_tester_loaded 1

set ::mp_testdir [file normalize [file dirname [info script]]]
set ::mp_root [file dirname $::mp_testdir]
if {![info exists ::env(MODELPACK_SO)] || $::env(MODELPACK_SO) eq ""} {
  set ::env(MODELPACK_SO) [file join $::mp_root modelpack]
}
set ::mp_so $::env(MODELPACK_SO)
if {[info exists ::env(MODELPACK_TEST_BIN)] && $::env(MODELPACK_TEST_BIN) ne ""} {
  set ::mp_bin $::env(MODELPACK_TEST_BIN)
} else {
  set ::mp_bin [file join $::mp_root build]
}

set ::mp_npass 0
set ::mp_nfail 0
set ::mp_failed {}
set ::mp_names [dict create]
if {![info exists ::mp_under_all]} {set ::mp_under_all 0}
if {![info exists ::mp_current_file]} {
  set ::mp_current_file [file tail [info script]]
}

# ---------------------------------------------------------------- reporting

proc mp_short {s {max 600}} {
  if {[string length $s] > $max} {
    return "[string range $s 0 $max]... ([string length $s] chars)"
  }
  return $s
}

proc mp_pass {name} {
  incr ::mp_npass
}

proc mp_fail {name why} {
  incr ::mp_nfail
  lappend ::mp_failed $name
  puts "FAIL $::mp_current_file $name"
  foreach line [split $why \n] {puts "    $line"}
  flush stdout
}

proc mp_register_name {name} {
  if {[dict exists $::mp_names $name]} {
    mp_fail $name "duplicate test name $name (each test needs its own name)"
    return 0
  }
  dict set ::mp_names $name 1
  return 1
}

proc mp_report {name ok expected got {how "expected"}} {
  if {$ok} {
    mp_pass $name
  } else {
    mp_fail $name "$how: [mp_short $expected]\ngot:      [mp_short $got]"
  }
}

# Run SCRIPT at caller level LEVEL; returns {code result errorinfo}.
proc mp_run {level script} {
  set code [catch {uplevel #$level $script} res opts]
  set info ""
  if {$code == 1} {set info [dict get $opts -errorinfo]}
  return [list $code $res $info]
}

proc mp_script_error {name res info} {
  mp_fail $name "test script raised an error: [mp_short $res]\n[mp_short $info 1500]"
}

# Two lists are equal element by element (string comparison).
proc mp_lequal {a b} {
  if {[catch {llength $a} na] || [catch {llength $b} nb]} {return [string equal $a $b]}
  if {$na != $nb} {return 0}
  foreach x $a y $b {
    if {![string equal $x $y]} {return 0}
  }
  return 1
}

# ---------------------------------------------------------------- tests

proc do_test {name script expected} {
  if {![mp_register_name $name]} return
  lassign [mp_run [expr {[info level] - 1}] $script] code res info
  if {$code == 1} {mp_script_error $name $res $info; return}
  mp_report $name [string equal $res $expected] $expected $res
}

proc do_test_glob {name script pattern} {
  if {![mp_register_name $name]} return
  lassign [mp_run [expr {[info level] - 1}] $script] code res info
  if {$code == 1} {mp_script_error $name $res $info; return}
  mp_report $name [string match $pattern $res] $pattern $res "expected (glob)"
}

proc do_test_regexp {name script re} {
  if {![mp_register_name $name]} return
  lassign [mp_run [expr {[info level] - 1}] $script] code res info
  if {$code == 1} {mp_script_error $name $res $info; return}
  mp_report $name [regexp -- $re $res] $re $res "expected (regexp)"
}

proc do_execsql_test {name sql expected} {
  if {![mp_register_name $name]} return
  lassign [mp_run [expr {[info level] - 1}] [list db eval $sql]] code res info
  if {$code == 1} {
    mp_fail $name "SQL failed: [mp_short $res]\nSQL: [mp_short $sql]"
    return
  }
  mp_report $name [mp_lequal $res $expected] $expected $res
}

proc do_catchsql_test {name sql expected} {
  if {![mp_register_name $name]} return
  set code [catch {uplevel 1 [list db eval $sql]} res]
  set got [list [expr {$code ? 1 : 0}] $res]
  mp_report $name [mp_lequal $got $expected] $expected $got
}

proc do_catchsql_glob {name sql expected} {
  if {![mp_register_name $name]} return
  set code [catch {uplevel 1 [list db eval $sql]} res]
  set got [list [expr {$code ? 1 : 0}] $res]
  lassign $expected erc pat
  set ok [expr {[lindex $got 0] == $erc && [string match $pat $res]}]
  mp_report $name $ok $expected $got "expected (glob)"
}

# The message starts with "modelpack" and contains every word (nocase).
proc mp_msg_has {msg words} {
  if {![string match -nocase "modelpack*" $msg]} {return 0}
  foreach w $words {
    if {[string first [string tolower $w] [string tolower $msg]] < 0} {return 0}
  }
  return 1
}

proc do_catchsql_has {name sql words} {
  if {![mp_register_name $name]} return
  set code [catch {uplevel 1 [list db eval $sql]} res]
  set ok [expr {$code == 1 && [mp_msg_has $res $words]}]
  mp_report $name $ok "an error mentioning: $words" [list $code $res]
}

proc do_catch_has {name script words} {
  if {![mp_register_name $name]} return
  set code [catch {uplevel 1 $script} res]
  set ok [expr {$code == 1 && [mp_msg_has $res $words]}]
  mp_report $name $ok "an error mentioning: $words" [list $code $res]
}

proc mp_skip {name why} {
  puts "SKIP $::mp_current_file $name: $why"
}

# Called at the end of every test file.
proc finish_test {} {
  catch {db close}
  if {$::mp_under_all} return
  puts "$::mp_npass passed, $::mp_nfail failed"
  mp_cleanup_tmp
  exit [expr {$::mp_nfail > 0}]
}

# ---------------------------------------------------------------- helpers

# Open a database (default: in-memory) with the extension loaded.
proc mp_open {{name db} {file :memory:}} {
  catch {$name close}
  sqlite3 $name $file
  $name enable_load_extension 1
  $name eval {SELECT load_extension($::mp_so)}
  return $name
}

# Temporary files live in one directory per run.
proc mp_tmpdir {} {
  if {![info exists ::mp_tmp]} {
    set base /tmp
    if {[info exists ::env(TMPDIR)] && [file isdirectory $::env(TMPDIR)]} {
      set base $::env(TMPDIR)
    }
    set ::mp_tmp [file join $base "modelpack-test-[pid]-[clock clicks]"]
    file mkdir $::mp_tmp
  }
  return $::mp_tmp
}
proc mp_tmpfile {name} {
  set f [file join [mp_tmpdir] $name]
  foreach sfx {"" -journal -wal -shm} {file delete -force $f$sfx}
  return $f
}
proc mp_cleanup_tmp {} {
  if {[info exists ::mp_tmp]} {
    catch {file delete -force $::mp_tmp}
    unset ::mp_tmp
  }
}

# The standard example: book_rows and the book model from docs/SQL.md.
proc mp_book_schema {{db db}} {
  $db eval {
    CREATE TABLE book_rows(id INTEGER PRIMARY KEY, title TEXT NOT NULL,
                           price REAL, cover BLOB, in_print INTEGER,
                           author INTEGER);
    CREATE INDEX book_rows_author ON book_rows(author);
    CREATE INDEX book_rows_title ON book_rows(title);
    CREATE VIRTUAL TABLE book USING modelpack(
      source = 'book_rows',
      id INTEGER PRIMARY KEY,
      title TEXT NOT NULL,
      price REAL,
      cover BLOB,
      in_print BOOLEAN,
      author_id INTEGER COLUMN author
    );
  }
}
set ::mp_book_types {INTEGER TEXT REAL BLOB BOOLEAN INTEGER}
set ::mp_book_names {id title price cover in_print author_id}
set ::mp_book_cols  {id title price cover in_print author}

# Fill book_rows with N deterministic rows (a few NULLs, varied values).
proc mp_book_fill {{db db} {n 40}} {
  for {set i 1} {$i <= $n} {incr i} {
    set title "title [format %03d [expr {($i * 37) % 101}]]"
    if {$i % 7 == 0} {set title "Émile ünïcode $i"}
    set price [expr {$i % 5 == 0 ? "NULL" : ($i * 1.25)}]
    set cover [expr {$i % 3 == 0 ? "NULL" : "x'[format %02x%02x%02x $i [expr {255 - $i}] 0]'"}]
    set in_print [expr {$i % 4 == 0 ? "NULL" : ($i % 2)}]
    set author [expr {$i % 6 == 0 ? "NULL" : ($i % 9)}]
    $db eval "INSERT INTO book_rows VALUES($i, '$title', $price, $cover, $in_print, $author)"
  }
}

# Seeded random numbers (deterministic across runs: the seed is printed on
# failure by the tests that use it).
proc mp_srand {seed} { expr {srand($seed)} }
proc mp_rand {n} { expr {int(rand() * $n)} }

# Bits.
proc mp_popcount {x} {
  set n 0
  while {$x != 0} { incr n [expr {$x & 1}]; set x [expr {$x >> 1}] }
  return $n
}
proc mp_u64 {x} { expr {$x & 0xFFFFFFFFFFFFFFFF} }
proc mp_s64 {x} {
  set x [expr {$x & 0xFFFFFFFFFFFFFFFF}]
  expr {$x >= (1 << 63) ? $x - (1 << 64) : $x}
}

# FNV-1a 64 fingerprint of a layout, computed here from include/modelpack.h's
# definition: each field's name, a 0 byte, its type code; then the mask as 8
# little-endian bytes.
array set ::mp_type_code {INTEGER 1 REAL 2 TEXT 3 BLOB 4 BOOLEAN 5}
proc mp_fnv {h bytes} {
  binary scan $bytes cu* list
  foreach b $list {
    set h [expr {(($h ^ $b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF}]
  }
  return $h
}
proc mp_fingerprint {names types mask} {
  set h 0xcbf29ce484222325
  foreach n $names t $types {
    set h [mp_fnv $h [encoding convertto utf-8 $n]]
    set h [mp_fnv $h [binary format cc 0 $::mp_type_code([string toupper $t])]]
  }
  return [mp_fnv $h [binary format w [mp_s64 $mask]]]
}

# Decode a packed blob with Tcl's `binary scan`, following include/modelpack.h.
# TYPES lists the model's field types in order.  Returns a dict:
#   magic version flags count record_size fingerprint mask varmask heap_size
#   reserved length records problems
# records: one list per record with one {kind value} per field, kind being
#   deferred, null, integer, boolean, real, text or blob (text/blob values
#   are the raw bytes).
# problems: layout violations found while decoding (empty for a good blob).
proc mp_decode {blob types} {
  set len [string length $blob]
  set p {}
  if {$len < 48} { return [dict create length $len problems [list "short blob ($len bytes)"] records {}] }
  binary scan $blob a4susuiuiuwuwuwuiuiu magic version flags count rsize fp mask varmask heap reserved
  set d [dict create magic $magic version $version flags $flags count $count \
      record_size $rsize fingerprint $fp mask $mask varmask $varmask \
      heap_size $heap reserved $reserved length $len]
  set n [llength $types]
  if {$magic ne "MPAK"} {lappend p "magic $magic"}
  if {$version != 1} {lappend p "version $version"}
  if {$flags & ~7} {lappend p "unknown flags $flags"}
  if {$reserved != 0} {lappend p "reserved $reserved"}
  if {$count < 1} {lappend p "count $count"}
  if {$rsize != 8 + 8 * [mp_popcount $mask]} {lappend p "record_size $rsize for mask $mask"}
  if {$rsize % 8} {lappend p "record_size $rsize not 8-aligned"}
  set all [expr {$n >= 64 ? 0xFFFFFFFFFFFFFFFF : (1 << $n) - 1}]
  if {$mask & ~$all} {lappend p "mask $mask beyond $n fields"}
  set var 0
  set i 0
  foreach t $types {
    if {$t eq "TEXT" || $t eq "BLOB"} {set var [expr {$var | (1 << $i)}]}
    incr i
  }
  if {$varmask != ($var & $mask)} {lappend p "varmask $varmask, expected [expr {$var & $mask}]"}
  if {48 + $count * $rsize + $heap != $len} {
    lappend p "length $len != 48 + $count*$rsize + $heap"
    dict set d problems $p
    dict set d records {}
    return $d
  }
  set heap0 [expr {48 + $count * $rsize}]
  set records {}
  for {set r 0} {$r < $count} {incr r} {
    set base [expr {48 + $r * $rsize}]
    if {$base % 8} {lappend p "record $r at unaligned offset $base"}
    binary scan $blob @${base}wu nulls
    if {$nulls & ~$mask} {lappend p "record $r: null bits $nulls outside mask $mask"}
    set slot [expr {$base + 8}]
    set rec {}
    for {set i 0} {$i < $n} {incr i} {
      set t [lindex $types $i]
      if {!(($mask >> $i) & 1)} { lappend rec {deferred {}}; continue }
      binary scan $blob @${slot}wu raw
      if {($nulls >> $i) & 1} {
        if {$raw != 0} {lappend p "record $r field $i: NULL with non-zero slot"}
        lappend rec {null {}}
      } else {
        switch -- $t {
          INTEGER { binary scan $blob @${slot}w v; lappend rec [list integer $v] }
          BOOLEAN {
            binary scan $blob @${slot}w v
            if {$v != 0 && $v != 1} {lappend p "record $r field $i: BOOLEAN slot $v"}
            lappend rec [list boolean $v]
          }
          REAL { binary scan $blob @${slot}q v; lappend rec [list real $v] }
          TEXT - BLOB {
            binary scan $blob @${slot}iuiu off vlen
            if {$off + $vlen + 1 > $heap} {
              lappend p "record $r field $i: value $off+$vlen past heap $heap"
              lappend rec [list [string tolower $t] {}]
            } else {
              set a [expr {$heap0 + $off}]
              set bytes [string range $blob $a [expr {$a + $vlen - 1}]]
              binary scan $blob @[expr {$a + $vlen}]cu nul
              if {$nul != 0} {lappend p "record $r field $i: value not NUL-terminated"}
              lappend rec [list [string tolower $t] $bytes]
            }
          }
          default { lappend p "unknown type $t" }
        }
      }
      incr slot 8
    }
    lappend records $rec
  }
  dict set d records $records
  dict set d problems $p
  return $d
}

# The expected decoded record of each source row, computed from the source
# with SQLite's own conversions (CAST follows the same rules as
# sqlite3_value_int64/_double/_text/_blob, i.e. fast packing).
# COLS: source columns; TYPES: field types; MASK: loaded fields.
# Returns a list of {pk record} pairs in ORDER BY order (default: pk column).
proc mp_expected_records {db table cols types mask {where ""} {order ""}} {
  set exprs {}
  set i 0
  foreach c $cols t $types {
    set q "\"$c\""
    lappend exprs "$q IS NULL"
    switch -- $t {
      INTEGER { lappend exprs "CAST($q AS INTEGER)" }
      BOOLEAN { lappend exprs "CAST($q AS INTEGER) != 0" }
      REAL    { lappend exprs "CAST($q AS REAL)" }
      TEXT    { lappend exprs "CAST(CAST($q AS TEXT) AS BLOB)" }
      BLOB    { lappend exprs "CAST($q AS BLOB)" }
    }
    incr i
  }
  if {$order eq ""} {set order "\"[lindex $cols 0]\""}
  set sql "SELECT \"[lindex $cols 0]\", [join $exprs ,] FROM $table $where ORDER BY $order"
  set out {}
  set n [llength $cols]
  $db eval $sql row {
    set rec {}
    set vals {}
    foreach c [lrange $row(*) 1 end] {lappend vals $row($c)}
    for {set i 0} {$i < $n} {incr i} {
      set t [lindex $types $i]
      set isnull [lindex $vals [expr {2 * $i}]]
      set v [lindex $vals [expr {2 * $i + 1}]]
      if {!(($mask >> $i) & 1)} { lappend rec {deferred {}}
      } elseif {$isnull} { lappend rec {null {}}
      } else { lappend rec [list [string tolower $t] $v] }
    }
    lappend out [list $row([lindex $row(*) 0]) $rec]
  }
  return $out
}

# Compare two decoded records; returns "" or a description of the first
# difference.  Reals compare by bit pattern, bytes exactly.
proc mp_record_diff {got exp {names {}}} {
  if {[llength $got] != [llength $exp]} {return "field count [llength $got] != [llength $exp]"}
  set i 0
  foreach g $got e $exp {
    lassign $g gk gv
    lassign $e ek ev
    set same [expr {$gk eq $ek}]
    if {$same} {
      switch -- $gk {
        real {
          set same [expr {[binary format q $gv] eq [binary format q $ev]}]
        }
        text - blob { set same [string equal $gv $ev] }
        default { set same [expr {$gv eq $ev}] }
      }
    }
    if {!$same} {
      set fname [expr {[llength $names] ? [lindex $names $i] : $i}]
      if {$gk in {text blob}} {
        binary scan $gv H* gv
        set gv [mp_short $gv 80]
      }
      if {$ek in {text blob}} {
        binary scan $ev H* ev
        set ev [mp_short $ev 80]
      }
      return "field $fname: got {$gk $gv}, expected {$ek $ev}"
    }
    incr i
  }
  return ""
}

# SQL statements the extension runs on its own (nested statements: the
# trace shows them with a leading "-- "), while SCRIPT runs; EXPLAIN
# statements (the extension may plan the source's query) are left out.
proc mp_nested_sql {db script} {
  set ::mp_traced {}
  $db trace_v2 [list apply {{stmt sql} {
    if {[string match "-- *" $sql] && ![string match -nocase "-- EXPLAIN*" $sql]} {
      lappend ::mp_traced [string range $sql 3 end]
    }
  }}] statement
  set code [catch {uplevel 1 $script} res opts]
  $db trace_v2 {}
  if {$code} {return -options $opts $res}
  return $::mp_traced
}

# The details of EXPLAIN QUERY PLAN for SQL.
proc mp_eqp {db sql} {
  set out {}
  $db eval "EXPLAIN QUERY PLAN $sql" r { lappend out $r(detail) }
  return $out
}

# Patch bytes of a blob: FMT/VALUE as for `binary format`, at OFFSET.
# The result is a pure byte array, so it binds as a BLOB.
proc mp_patch {blob offset fmt args} {
  set bytes [binary format $fmt {*}$args]
  set head [string range $blob 0 [expr {$offset - 1}]]
  set tail [string range $blob [expr {$offset + [string length $bytes]}] end]
  return [binary format a*a*a* $head $bytes $tail]
}

# Assemble a batch (docs/FORMAT.md, "Batches") from per-row blobs of one
# model and mask: records end to end, one heap, offsets shifted, count set
# and MP_FLAG_BATCH added.
proc mp_make_batch {blobs} {
  set first [lindex $blobs 0]
  binary scan $first @6su@12iu@24wu@32wu flags rs mask varmask
  set records {}
  set heap {}
  foreach b $blobs {
    binary scan $b @40iu hs
    set rec [string range $b 48 [expr {48 + $rs - 1}]]
    binary scan $rec wu nulls
    set shift [string length $heap]
    set slot 8
    for {set i 0} {$i < 64} {incr i} {
      if {!(($mask >> $i) & 1)} continue
      if {(($varmask >> $i) & 1) && !(($nulls >> $i) & 1)} {
        binary scan $rec @${slot}iu off
        set rec [mp_patch $rec $slot i [expr {$off + $shift}]]
      }
      incr slot 8
    }
    append records $rec
    append heap [string range $b [expr {48 + $rs}] end]
  }
  set h [string range $first 0 47]
  set h [mp_patch $h 6 s [expr {$flags | 2}]]
  set h [mp_patch $h 8 i [llength $blobs]]
  set h [mp_patch $h 40 i [string length $heap]]
  return [binary format a*a*a* $h $records $heap]
}

# Random valid UTF-8 byte strings: ASCII, 2-, 3- and 4-byte sequences.
proc mp_rand_utf8 {maxchars} {
  set n [mp_rand [expr {$maxchars + 1}]]
  set out {}
  for {set i 0} {$i < $n} {incr i} {
    switch [mp_rand 6] {
      0 - 1 - 2 { set cp [expr {32 + [mp_rand 95]}] }
      3 { set cp [expr {0xA0 + [mp_rand 0x700]}] }
      4 { set cp [expr {0x800 + [mp_rand 0xD000]}]
          if {$cp >= 0xD800 && $cp <= 0xDFFF} {set cp 0x4E2D} }
      5 { set cp [expr {0x1F300 + [mp_rand 0x300]}] }
    }
    append out [mp_utf8_char $cp]
  }
  return $out
}
proc mp_utf8_char {cp} {
  if {$cp < 0x80} { return [binary format c $cp] }
  if {$cp < 0x800} {
    return [binary format cc [expr {0xC0 | ($cp >> 6)}] [expr {0x80 | ($cp & 0x3F)}]]
  }
  if {$cp < 0x10000} {
    return [binary format ccc [expr {0xE0 | ($cp >> 12)}] \
        [expr {0x80 | (($cp >> 6) & 0x3F)}] [expr {0x80 | ($cp & 0x3F)}]]
  }
  return [binary format cccc [expr {0xF0 | ($cp >> 18)}] \
      [expr {0x80 | (($cp >> 12) & 0x3F)}] [expr {0x80 | (($cp >> 6) & 0x3F)}] \
      [expr {0x80 | ($cp & 0x3F)}]]
}
proc mp_rand_bytes {n} {
  set l {}
  for {set i 0} {$i < $n} {incr i} {lappend l [mp_rand 256]}
  return [binary format c* $l]
}

# Split a comma list into a sorted list (for hook texts).
proc mp_csv_set {s} {
  set out {}
  foreach x [split $s ,] {
    set x [string trim $x]
    if {$x ne ""} {lappend out $x}
  }
  return [lsort $out]
}

# ---------------------------------------------------------------- batches, queries, stored models

# Problems of a decoded blob (mp_decode) beyond the layout itself: the
# ASCII flag (a hint) may only be set when every TEXT byte is below 0x80.
proc mp_ascii_problems {d types} {
  if {!([dict get $d flags] & 4)} {return {}}
  set r 0
  foreach rec [dict get $d records] {
    set i 0
    foreach f $rec {
      lassign $f kind v
      if {$kind eq "text"} {
        binary scan $v cu* bytes
        foreach b $bytes {
          if {$b >= 0x80} {return [list "ASCII flag set, record $r field $i has byte $b"]}
        }
      }
      incr i
    }
    incr r
  }
  return {}
}

# Decode a list of blobs (each a row or a batch) of one model.  Returns a
# dict: records (all records, in order), counts (records per blob), flags,
# masks, fingerprints (one per blob) and problems (layout or ASCII-flag
# violations, prefixed with the blob's index).
proc mp_decode_all {blobs types} {
  set out [dict create records {} counts {} flags {} masks {} fingerprints {} problems {}]
  set k 0
  foreach b $blobs {
    set d [mp_decode $b $types]
    set p [concat [dict get $d problems] [mp_ascii_problems $d $types]]
    foreach x $p { dict lappend out problems "blob $k: $x" }
    if {[dict exists $d count]} {
      dict lappend out counts [dict get $d count]
      dict lappend out flags [dict get $d flags]
      dict lappend out masks [dict get $d mask]
      dict lappend out fingerprints [dict get $d fingerprint]
    }
    foreach r [dict get $d records] { dict lappend out records $r }
    incr k
  }
  return $out
}

# Compare two lists of decoded records; "" or the first difference.
proc mp_records_diff {got exp {names {}}} {
  set n [expr {min([llength $got], [llength $exp])}]
  for {set i 0} {$i < $n} {incr i} {
    set diff [mp_record_diff [lindex $got $i] [lindex $exp $i] $names]
    if {$diff ne ""} {return "record $i: $diff"}
  }
  if {[llength $got] != [llength $exp]} {return "[llength $got] records, expected [llength $exp]"}
  return ""
}

# Strip the {pk record} pairing of mp_expected_records.
proc mp_only_records {pairs} { lmap p $pairs {lindex $p 1} }

# The expected decoded records of a query's rows packed into a model, by
# fast packing (SQLite's CAST rules).  SQL runs in the caller's scope (so
# $vars bind), wrapped as `SELECT ... FROM (SQL)`; FCOLS gives for each
# field the result column it reads, or "" for a deferred field; TYPES the
# field types.  Rows keep the query's order.
proc mp_query_expected {db sql fcols types} {
  set exprs {}
  set n 0
  foreach c $fcols t $types {
    if {$c eq ""} continue
    set q "mpq.\"$c\""
    lappend exprs "$q IS NULL"
    switch -- $t {
      INTEGER { lappend exprs "CAST($q AS INTEGER)" }
      BOOLEAN { lappend exprs "CAST($q AS INTEGER) != 0" }
      REAL    { lappend exprs "CAST($q AS REAL)" }
      TEXT    { lappend exprs "CAST(CAST($q AS TEXT) AS BLOB)" }
      BLOB    { lappend exprs "CAST($q AS BLOB)" }
    }
    incr n
  }
  set wrapped "SELECT [join $exprs ,] FROM ($sql) AS mpq"
  set flat [uplevel 1 [list $db eval $wrapped]]
  set out {}
  set per [expr {2 * $n}]
  for {set at 0} {$at < [llength $flat]} {incr at $per} {
    set vals [lrange $flat $at [expr {$at + $per - 1}]]
    set rec {}
    set j 0
    foreach c $fcols t $types {
      if {$c eq ""} { lappend rec {deferred {}}; continue }
      lassign [lrange $vals [expr {2 * $j}] [expr {2 * $j + 1}]] isnull v
      if {$isnull} { lappend rec {null {}} } else { lappend rec [list [string tolower $t] $v] }
      incr j
    }
    lappend out $rec
  }
  return $out
}

# The mask of the fields a FCOLS list (as for mp_query_expected) loads.
proc mp_fcols_mask {fcols} {
  set m 0
  set i 0
  foreach c $fcols {
    if {$c ne ""} {set m [expr {$m | (1 << $i)}]}
    incr i
  }
  return $m
}

# Check modelpack_unpack(MODEL, BLOB) against expected decoded records:
# one row per (record, loaded field) with the field's name, type and value.
# Returns "" or the first difference.
proc mp_unpack_diff {db model blob exp names types} {
  set rows [$db eval {SELECT record, field, name, type, typeof(value), value,
                             hex(CAST(value AS BLOB)) FROM modelpack_unpack($model, @blob)}]
  set want {}
  set r 0
  foreach rec $exp {
    set i 0
    foreach f $rec {
      lassign $f kind v
      if {$kind ne "deferred"} {lappend want [list $r $i $kind $v]}
      incr i
    }
    incr r
  }
  if {[llength $rows] != 7 * [llength $want]} {
    return "[expr {[llength $rows] / 7}] unpack rows, expected [llength $want]"
  }
  set k 0
  foreach {rec field name type tv val hex} $rows {
    lassign [lindex $want $k] er ei ekind ev
    set what "unpack row $k (record $rec field $field)"
    if {$rec != $er || $field != $ei} {return "$what: expected record $er field $ei"}
    if {$name ne [lindex $names $ei]} {return "$what: name $name"}
    if {$type ne [lindex $types $ei]} {return "$what: type $type"}
    switch -- $ekind {
      null { set ok [expr {$tv eq "null"}] }
      integer - boolean { set ok [expr {$tv eq "integer" && $val == $ev}] }
      real { set ok [expr {$tv eq "real" && [binary format q $val] eq [binary format q $ev]}] }
      text { binary scan $ev H* eh; set ok [expr {$tv eq "text" && [string equal -nocase $hex $eh]}] }
      blob { binary scan $ev H* eh; set ok [expr {$tv eq "blob" && [string equal -nocase $hex $eh]}] }
    }
    if {!$ok} {return "$what: got $tv [mp_short $val 60], expected $ekind [mp_short $ev 60]"}
    incr k
  }
  return ""
}

# Names of a table's columns that form its primary key (PRAGMA table_info).
proc mp_pk_columns {db table} {
  set out {}
  $db eval "PRAGMA table_info(\"$table\")" r { if {$r(pk)} {lappend out [list $r(pk) $r(name)]} }
  lmap x [lsort -integer -index 0 $out] {lindex $x 1}
}

# Problems of the blobs of one read: BLOBS should hold EXP (decoded records,
# in order), each blob with MASK, the fingerprint of NAMES/TYPES/MASK and the
# SAFE flag iff SAFE.  N = 0: one record per blob, BATCH flag clear; N > 0:
# batches of N records (the last one partial), BATCH flag set.  Returns ""
# or the first few problems, one a line.
proc mp_blobs_problems {blobs exp names types mask safe {n 0}} {
  set bad {}
  set d [mp_decode_all $blobs $types]
  lappend bad {*}[dict get $d problems]
  set want {}
  if {$n == 0} {
    set want [lrepeat [llength $exp] 1]
  } else {
    for {set left [llength $exp]} {$left > 0} {incr left -$n} {lappend want [expr {min($left, $n)}]}
  }
  if {[llength $blobs] != [llength $want]} {lappend bad "[llength $blobs] blobs, expected [llength $want]"}
  if {[dict get $d counts] ne $want} {lappend bad "counts [mp_short [dict get $d counts] 100], expected [mp_short $want 100]"}
  set fp [mp_fingerprint $names $types $mask]
  set k 0
  foreach f [dict get $d flags] m [dict get $d masks] p [dict get $d fingerprints] {
    if {($f & 2) != ($n > 0 ? 2 : 0)} {lappend bad "blob $k: flags $f, BATCH flag should be [expr {$n > 0}]"}
    if {($f & 1) != ($safe ? 1 : 0)} {lappend bad "blob $k: flags $f, SAFE flag should be $safe"}
    if {$m != $mask} {lappend bad "blob $k: mask $m, expected $mask"}
    if {$p != $fp} {lappend bad "blob $k: fingerprint [format %016llx $p], expected [format %016llx $fp]"}
    incr k
  }
  set diff [mp_records_diff [dict get $d records] $exp $names]
  if {$diff ne ""} {lappend bad $diff}
  return [join [lrange $bad 0 5] \n]
}

}
