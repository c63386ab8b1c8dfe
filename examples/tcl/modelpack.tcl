# modelpack.tcl -- a pure-Tcl client for modelpack's packed rows.
#
# The C extension (ext/) packs rows into the binary layout of
# docs/FORMAT.md; this package is the Tcl side of that contract, the
# counterpart of include/modelpack.h for C.  It needs only Tcl 8.6 and the
# `sqlite3` package: the layout is read with SQLite's built-in JSON
# functions, so no JSON package (tcllib) is required.
#
#   source examples/tcl/modelpack.tcl
#   # (or: package ifneeded modelpack 1.0 [list source $path]; package require modelpack)
#   set dec [modelpack::decoder db book -mask {id title}]
#   db eval {SELECT packed FROM book WHERE mask = $m AND batch = 500} {
#     foreach rec [modelpack::decode $dec $packed] { puts [dict get $rec title] }
#   }
#   modelpack::foreach_record db book {SELECT id, title FROM book_rows} rec {
#     puts "[dict get $rec id] [dict get $rec title]"
#   }
#
# A decoder is a plain dict (the layout of one model and mask), so it can be
# kept, passed around and compared like any Tcl value.  Records are dicts of
# the loaded fields in declaration order; deferred fields are absent, NULL is
# the decoder's null value.  Blobs are validated in full (the rules of
# docs/FORMAT.md, "Validating untrusted blobs", with the same messages)
# before any value is returned; a bad blob raises an error whose message
# starts "modelpack: <model>:" and whose -errorcode is
# {MODELPACK BLOB <model> <reason>}.

package require Tcl 8.6
package provide modelpack 1.0

namespace eval ::modelpack {
    namespace export decoder decode header foreach_record
    variable HEADER_SIZE 48
    variable LAYOUT_VERSION 1
    variable KNOWN_FLAGS 0x0007
    variable FLAG_SAFE 0x0001
    variable FLAG_BATCH 0x0002
    variable FLAG_ASCII 0x0004
}

# Options of the form -name value; anything unknown is an error so that a
# typo does not silently fall back to a default.
proc ::modelpack::ParseOptions {cmd argList defaults} {
    set opts $defaults
    if {[llength $argList] % 2} {
        return -code error -errorcode {MODELPACK USAGE} \
            "$cmd: options must be -name value pairs, got \"$argList\""
    }
    foreach {k v} $argList {
        if {![dict exists $defaults $k]} {
            return -code error -errorcode {MODELPACK USAGE} \
                "$cmd: unknown option \"$k\" (known: [join [dict keys $defaults] {, }])"
        }
        dict set opts $k $v
    }
    return $opts
}

# A mask given as field names goes through modelpack_mask() so that the
# extension, not this client, decides what the names mean.
proc ::modelpack::ResolveMask {db model mask} {
    if {$mask eq ""} {return ""}
    if {[string is entier -strict $mask]} {return $mask}
    set names [join $mask ,]
    return [$db onecolumn {SELECT modelpack_mask($model, $names)}]
}

# modelpack::decoder db model ?-mask m? ?-null value?
#
# Reads modelpack_layout(model, mask) and returns a decoder: a dict with
# model, mask (the effective one, primary key included), varmask,
# fingerprint (unsigned), record_size, null, names (all fields), fields
# (the loaded ones: {index name type} each) and scan (a `binary scan`
# format for one record).  -mask is an integer or a list of field names;
# without it every field is loaded.
proc ::modelpack::decoder {db model args} {
    variable HEADER_SIZE
    variable LAYOUT_VERSION
    set o [ParseOptions modelpack::decoder $args {-mask "" -null ""}]
    set mask [ResolveMask $db $model [dict get $o -mask]]
    if {$mask eq ""} {
        set layout [$db onecolumn {SELECT modelpack_layout($model)}]
    } else {
        set layout [$db onecolumn {SELECT modelpack_layout($model, $mask)}]
    }
    # The header facts and the field list come out of the JSON through
    # SQLite itself: JSON1 is built into every SQLite this extension loads in.
    $db eval {
        SELECT json_extract($layout, '$.layout_version') AS version,
               json_extract($layout, '$.header_size') AS hsize,
               json_extract($layout, '$.mask') AS emask,
               json_extract($layout, '$.fingerprint') AS fphex,
               json_extract($layout, '$.record_size') AS rsize
    } break
    if {$version != $LAYOUT_VERSION || $hsize != $HEADER_SIZE} {
        return -code error -errorcode [list MODELPACK LAYOUT $model] \
            "modelpack: $model: layout version $version (header $hsize bytes) is not the v$LAYOUT_VERSION this client reads"
    }
    set names {}
    set fields {}
    set scan wu
    set varmask 0
    set slot 8
    $db eval {
        SELECT json_extract(value, '$.index') AS idx,
               json_extract(value, '$.name') AS name,
               json_extract(value, '$.type') AS type,
               json_extract(value, '$.loaded') AS loaded,
               json_extract(value, '$.offset') AS offset
        FROM json_each($layout, '$.fields') ORDER BY CAST(key AS INTEGER)
    } {
        lappend names $name
        if {!$loaded} continue
        # The scan format below assumes slots are consecutive; a layout that
        # says otherwise is a newer or broken writer, better refused here
        # than decoded into garbage.
        if {$offset != $slot} {
            return -code error -errorcode [list MODELPACK LAYOUT $model] \
                "modelpack: $model: field $name at offset $offset, expected $slot"
        }
        incr slot 8
        switch -- $type {
            INTEGER - BOOLEAN { append scan w }
            REAL              { append scan q }
            TEXT - BLOB {
                append scan iuiu
                set varmask [expr {$varmask | (1 << $idx)}]
            }
            default {
                return -code error -errorcode [list MODELPACK LAYOUT $model] \
                    "modelpack: $model: field $name has unknown type $type"
            }
        }
        lappend fields [list $idx $name $type]
    }
    if {$slot != $rsize} {
        return -code error -errorcode [list MODELPACK LAYOUT $model] \
            "modelpack: $model: record_size $rsize does not match [llength $fields] loaded fields"
    }
    dict create model $model mask $emask varmask $varmask \
        fingerprint [expr {"0x$fphex" + 0}] record_size $rsize \
        null [dict get $o -null] names $names fields $fields scan $scan
}

# modelpack::header blob
#
# The header fields of a blob as a dict, unvalidated (for display and
# diagnostics): magic version flags count record_size fingerprint mask
# varmask heap_size reserved, plus safe/batch/ascii as 0 or 1.  Errors only
# when the blob is shorter than a header.
proc ::modelpack::header {blob} {
    variable HEADER_SIZE
    if {[string length $blob] < $HEADER_SIZE} {
        return -code error -errorcode {MODELPACK BLOB {} short} \
            "modelpack: too short for a modelpack header"
    }
    binary scan $blob a4susuiuiuwuwuwuiuiu magic version flags count rsize \
        fp mask varmask heap reserved
    dict create magic $magic version $version flags $flags count $count \
        record_size $rsize fingerprint $fp mask $mask varmask $varmask \
        heap_size $heap reserved $reserved \
        safe [expr {$flags & 1}] batch [expr {($flags >> 1) & 1}] \
        ascii [expr {($flags >> 2) & 1}]
}

proc ::modelpack::Refuse {model reason {detail ""}} {
    set msg "modelpack: $model: $reason"
    if {$detail ne ""} {append msg " ($detail)"}
    return -code error -level 2 -errorcode [list MODELPACK BLOB $model $reason] $msg
}

proc ::modelpack::Popcount {x} {
    set n 0
    while {$x} { set x [expr {$x & ($x - 1)}]; incr n }
    return $n
}

# Header checks 1-10 of docs/FORMAT.md, in its order and with its words,
# then this decoder's own expectations.  Returns the header dict.
proc ::modelpack::CheckHeader {dec blob} {
    variable HEADER_SIZE
    variable LAYOUT_VERSION
    variable KNOWN_FLAGS
    set model [dict get $dec model]
    set len [string length $blob]
    if {$len < $HEADER_SIZE} {
        Refuse $model "too short for a modelpack header" "$len bytes"
    }
    set h [header $blob]
    dict with h {}
    if {$magic ne "MPAK"} { Refuse $model "not a modelpack blob (bad magic)" }
    if {$version != $LAYOUT_VERSION} { Refuse $model "unsupported layout version" "version $version" }
    if {$flags & ~$KNOWN_FLAGS} { Refuse $model "unknown header flags" [format 0x%04x $flags] }
    if {$reserved != 0} { Refuse $model "reserved header bytes are not zero" }
    if {$mask == 0 || ($varmask & ~$mask)} { Refuse $model "inconsistent field masks" }
    if {$record_size != 8 * (1 + [Popcount $mask])} {
        Refuse $model "record size does not match the mask"
    }
    if {$count < 1} { Refuse $model "no records" }
    # The fingerprint hashes the mask, so a blob of the right model read
    # with another mask fails here too; naming both masks says which.
    if {$fingerprint != [dict get $dec fingerprint]} {
        set detail [format "blob %016llx, expected %016llx" $fingerprint [dict get $dec fingerprint]]
        if {$mask != [dict get $dec mask]} {
            append detail "; blob mask $mask, decoder mask [dict get $dec mask]"
        }
        Refuse $model "blob belongs to another model or mask (fingerprint mismatch)" $detail
    }
    # Bignum arithmetic: no overflow to guard against, unlike in C.
    if {$HEADER_SIZE + $count * $record_size + $heap_size != $len} {
        Refuse $model "blob length does not match its header" \
            "$len bytes, header says [expr {$HEADER_SIZE + $count * $record_size + $heap_size}]"
    }
    # A forged header can carry the right fingerprint with a different
    # mask or varmask; the decoder reads slots by its own layout, so these
    # must agree exactly before the slots are trusted.
    if {$mask != [dict get $dec mask] || $varmask != [dict get $dec varmask]} {
        Refuse $model "inconsistent field masks" "header does not match the layout"
    }
    return $h
}

# modelpack::decode decoder blob ?headerVar?
#
# Validates BLOB (a per-row blob or a batch) against DECODER and returns
# its records: a list of dicts, field name -> value, loaded fields only.
# INTEGER is a wide int, BOOLEAN 0 or 1, REAL a double, TEXT a string
# (decoded from UTF-8), BLOB a byte array, NULL the decoder's null value.
# With headerVar, that variable is set to the header dict (see
# modelpack::header) -- e.g. `dict get $h safe` for the SAFE flag.
proc ::modelpack::decode {dec blob {headerVar ""}} {
    variable HEADER_SIZE
    if {$headerVar ne ""} { upvar 1 $headerVar hdr }
    set model [dict get $dec model]
    set h [CheckHeader $dec $blob]
    set count [dict get $h count]
    set rsize [dict get $h record_size]
    set mask [dict get $h mask]
    set heap_size [dict get $h heap_size]
    set heap0 [expr {$HEADER_SIZE + $count * $rsize}]
    set fields [dict get $dec fields]
    set null [dict get $dec null]
    # Variable names for one `binary scan` per record, built once per blob.
    set vars {nulls}
    foreach f $fields {
        lassign $f i name type
        if {$type in {TEXT BLOB}} { lappend vars off($i) len($i) } else { lappend vars val($i) }
    }
    set fmt [dict get $dec scan]
    set out {}
    for {set r 0} {$r < $count} {incr r} {
        set base [expr {$HEADER_SIZE + $r * $rsize}]
        binary scan $blob @$base$fmt {*}$vars
        if {$nulls & ~$mask} {
            Refuse $model "null bit set for a deferred field" "record $r"
        }
        set rec [dict create]
        set slot [expr {$base + 8}]
        foreach f $fields {
            lassign $f i name type
            if {($nulls >> $i) & 1} {
                # Raw bits: a REAL -0.0 would read as zero as a double.
                binary scan $blob @${slot}wu raw
                if {$raw != 0} {
                    Refuse $model "NULL field with a non-zero slot" "record $r, field $name"
                }
                dict set rec $name $null
            } else {
                switch -- $type {
                    INTEGER - REAL { dict set rec $name $val($i) }
                    BOOLEAN        { dict set rec $name [expr {$val($i) != 0}] }
                    TEXT - BLOB {
                        set o $off($i)
                        set n $len($i)
                        if {$o + $n + 1 > $heap_size} {
                            Refuse $model "value past the end of the heap" \
                                "record $r, field $name: offset $o + length $n, heap $heap_size"
                        }
                        set a [expr {$heap0 + $o}]
                        if {[string index $blob [expr {$a + $n}]] ne "\0"} {
                            Refuse $model "heap value not NUL-terminated" "record $r, field $name"
                        }
                        if {$type eq "TEXT"} {
                            dict set rec $name [encoding convertfrom utf-8 \
                                [string range $blob $a [expr {$a + $n - 1}]]]
                        } elseif {$n == 0} {
                            # An empty `string range` is a plain string and
                            # would bind back to SQLite as TEXT, not BLOB.
                            dict set rec $name [binary decode hex ""]
                        } else {
                            dict set rec $name [string range $blob $a [expr {$a + $n - 1}]]
                        }
                    }
                }
            }
            incr slot 8
        }
        lappend out $rec
    }
    set hdr $h
    return $out
}

# modelpack::foreach_record ?options? db model sql varName body
#
# Runs SQL (a read-only SELECT) through modelpack_query(model, sql, ...)
# in batches and evaluates BODY once per record, with varName set to the
# record dict.  The result columns choose the fields, as in modelpack_query;
# fields the query does not return are absent from the dicts.  Memory stays
# at about one batch whatever the result size.  break, continue, return and
# errors in BODY behave as in `foreach`.  Returns the number of records read.
#
#   -params list   values bound to ?1, ?2, ... of SQL (never spliced in)
#   -batch n       records per blob (default 1000)
#   -mask m        load only these fields of the result (integer or names)
#   -mode m        fast, safe or auto (default: the extension's, auto)
#   -null value    value of NULL fields (default "")
#   -header var    set to the current blob's header dict before each record
proc ::modelpack::foreach_record {args} {
    if {[llength $args] < 5} {
        return -code error -errorcode {MODELPACK USAGE} \
            {wrong # args: should be "modelpack::foreach_record ?-option value ...? db model sql varName body"}
    }
    lassign [lrange $args end-4 end] db model sql varName body
    set o [ParseOptions modelpack::foreach_record [lrange $args 0 end-5] \
        {-params {} -batch 1000 -mask "" -mode "" -null "" -header ""}]
    upvar 1 $varName rec
    if {[dict get $o -header] ne ""} { upvar 1 [dict get $o -header] hdr }

    # Parameters are bound as Tcl variables of this frame: p1, p2, ...
    set batch [dict get $o -batch]
    set call {modelpack_query($model, $sql}
    set i 0
    foreach v [dict get $o -params] {
        incr i
        set p$i $v
        append call ", \$p$i"
    }
    append call )
    set where {batch = $batch}
    set mask [ResolveMask $db $model [dict get $o -mask]]
    if {$mask ne ""} { append where { AND mask = $mask} }
    set mode [dict get $o -mode]
    if {$mode ne ""} { append where { AND mode = $mode} }

    # One decoder per mask met; a query's mask is only known from its blobs.
    set decoders [dict create]
    set n 0
    set ctl ok
    $db eval "SELECT packed FROM $call WHERE $where" {
        if {[string length $packed] >= 32} {
            binary scan $packed @24wu bmask
        } else {
            set bmask 0
        }
        if {![dict exists $decoders $bmask]} {
            if {[catch {decoder $db $model -mask $bmask -null [dict get $o -null]} dec]} {
                # A mask the model cannot have: the blob is corrupt or foreign.
                set dec [decoder $db $model -null [dict get $o -null]]
            }
            dict set decoders $bmask $dec
        }
        set records [decode [dict get $decoders $bmask] $packed hdr]
        foreach rec $records {
            incr n
            set code [catch {uplevel 1 $body} result options]
            switch -- $code {
                0 - 4 {}
                3 { set ctl break; break }
                default { set ctl exit; break }
            }
        }
        if {$ctl ne "ok"} break
    }
    if {$ctl eq "exit"} {
        dict incr options -level
        return -options $options $result
    }
    return $n
}
