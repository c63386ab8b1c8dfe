# all.tcl -- run every test/*.test, each in a fresh child interpreter, and
# print one summary line "N passed, M failed".  Exits non-zero if anything
# failed, including a test file that raised an uncaught error.
#
#   MODELPACK_SO=/work/main/modelpack tclsh test/all.tcl [PATTERN ...]
#
# PATTERNs (globs on the file name, e.g. `mask*`) select some files only.

set testdir [file normalize [file dirname [info script]]]
source [file join $testdir tester.tcl]

set files [lsort [glob -nocomplain -directory $testdir *.test]]
if {[llength $argv]} {
  set sel {}
  foreach f $files {
    foreach pat $argv {
      if {[string match $pat [file tail $f]] || [string match $pat.test [file tail $f]]} {
        lappend sel $f
        break
      }
    }
  }
  set files $sel
}

puts "modelpack tests: extension $::mp_so, test programs in $::mp_bin"
set total_pass 0
set total_fail 0
set failed_names {}
set t_start [clock milliseconds]

foreach f $files {
  set tail [file tail $f]
  set t0 [clock milliseconds]
  set child [interp create]
  $child eval [list set ::mp_under_all 1]
  $child eval [list set ::mp_current_file $tail]
  $child eval [list set ::argv0 $f]
  $child eval [list set ::argv {}]
  set code [catch {
    $child eval [list source [file join $testdir tester.tcl]]
    $child eval [list source $f]
  } msg opts]
  set np 0
  set nf 0
  catch {set np [$child eval {set ::mp_npass}]}
  catch {set nf [$child eval {set ::mp_nfail}]}
  catch {foreach n [$child eval {set ::mp_failed}] {lappend failed_names "$tail:$n"}}
  if {$code} {
    incr nf
    lappend failed_names "$tail:(uncaught error)"
    puts "ERROR $tail: uncaught error: $msg"
    foreach line [split [dict get $opts -errorinfo] \n] {puts "    $line"}
  }
  catch {$child eval {mp_cleanup_tmp}}
  catch {interp delete $child}
  incr total_pass $np
  incr total_fail $nf
  set ms [expr {[clock milliseconds] - $t0}]
  puts [format "== %-18s %4d ok, %3d failing  (%.1fs)" $tail $np $nf [expr {$ms / 1000.0}]]
  flush stdout
}

if {[llength $failed_names]} {
  puts "failing tests:"
  foreach n $failed_names {puts "    $n"}
}
if {[llength $files] == 0} {
  puts "no test files found"
  incr total_fail
}
puts [format "(%.1fs)" [expr {([clock milliseconds] - $t_start) / 1000.0}]]
puts "$total_pass passed, $total_fail failed"
flush stdout
mp_cleanup_tmp
exit [expr {$total_fail > 0 ? 1 : 0}]
