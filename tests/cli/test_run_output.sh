#!/bin/sh
# `vulcan run` output (issue 12 item 15): the server's and workers' log records stay out of
# the terminal (a file, named when the run fails; -v shows them), and a retried fragment
# shows every attempt's output with a line between attempts.
# Usage: test_run_output.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"

# Fails on attempt 1 (no marker yet), succeeds on attempt 2. --sandbox none: the marker
# lives outside the fragment's work directory, which is new for each attempt.
cat >"$tmp/retry.kdl" <<'KDL'
version "0.1"
triggers "push"
chain {
    machine "default"
    fragment {
        name "build"
        retry 2
        run "if [ -e \"$MARK\" ]; then echo second-attempt-output; else touch \"$MARK\"; echo first-attempt-output; exit 1; fi"
    }
}
KDL
cat >"$tmp/fail.kdl" <<'KDL'
version "0.1"
triggers "push"
chain {
    machine "default"
    fragment { name "boom"; run "echo about to fail; exit 3" }
}
KDL
mkdir "$tmp/plain"
cd "$tmp/plain" || exit 1
export GIT_CEILING_DIRECTORIES="$tmp"
# A record has "time=... level=..." (text) or {"time":...,"level":...} (JSON).
records='level=\|"level":'

"$vulcan" run --sandbox none --env MARK="$tmp/mark1" "$tmp/retry.kdl" >"$tmp/out" 2>"$tmp/err"
check "a fragment that succeeds on attempt 2 exits 0" $?
grep -q "^\[build\] first-attempt-output$" "$tmp/out"
check "attempt 1's output is shown" $?
grep -q "^\[build\] second-attempt-output$" "$tmp/out"
check "attempt 2's output is shown" $?
grep -q "^\[build\] ── attempt 1 of 3 failed; attempt 2 follows$" "$tmp/out" &&
    [ "$(grep -n 'first-attempt' "$tmp/out" | cut -d: -f1)" -lt "$(grep -n 'attempt 1 of 3 failed' "$tmp/out" | cut -d: -f1)" ] &&
    [ "$(grep -n 'attempt 1 of 3 failed' "$tmp/out" | cut -d: -f1)" -lt "$(grep -n 'second-attempt' "$tmp/out" | cut -d: -f1)" ]
check "a line separates attempt 1 from attempt 2, in order" $?
! grep -q "$records" "$tmp/out" "$tmp/err"
check "no log records on stdout or stderr without -v" $?
! grep -q "records are in" "$tmp/err"
check "a run that succeeds names no log file" $?

"$vulcan" run --log-level info --sandbox none --env MARK="$tmp/mark3" "$tmp/retry.kdl" >"$tmp/out" 2>"$tmp/err"
check "--log-level info without -v exits 0" $?
! grep -q "$records" "$tmp/out" "$tmp/err"
check "--log-level info without -v keeps info records off the terminal" $?

"$vulcan" run -v --sandbox none --env MARK="$tmp/mark2" "$tmp/retry.kdl" >"$tmp/out" 2>"$tmp/err"
check "-v: the run exits 0" $?
grep -q "level=info" "$tmp/err" && grep -q "component=worker" "$tmp/err"
check "-v shows the server's and workers' records on stderr" $?
! grep -q "$records" "$tmp/out"
check "-v keeps records off stdout" $?

"$vulcan" run --sandbox none "$tmp/fail.kdl" >"$tmp/out" 2>"$tmp/err"
check "a failing run exits 1" $([ $? -eq 1 ]; echo $?)
log=$(sed -n 's/^vulcan run: server and worker records are in \(.*\)$/\1/p' "$tmp/err")
[ -n "$log" ] && [ -f "$log" ] && grep -q "level=" "$log"
check "a failing run names the file that holds the records" $?
! grep -q "$records" "$tmp/out" "$tmp/err"
check "a failing run prints no records" $?
[ -n "$log" ] && rm -f "$log"

"$vulcan" run --help >"$tmp/out"
grep -q -- "--verbose" "$tmp/out"
check "run --help documents -v" $?

finish
