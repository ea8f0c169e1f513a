#!/bin/sh
# `vulcan parse` as a user runs it: verdicts, exit codes, diagnostics, --json, --quiet.
# Usage: test_parse.sh VULCAN_BINARY SOURCE_DIR
set -u
vulcan=$1
src=$2
. "$(dirname "$0")/lib.sh"

cat >"$tmp/bad.kdl" <<'KDL'
version "0.1"
triggers "push"
chain {
    machine "default"
    fragment { run "make"; from "x.kdl" }
}
KDL

"$vulcan" parse "$src/examples/hello.kdl" >"$tmp/out" 2>"$tmp/err"
check "a valid file exits 0" $?
grep -q "unit-tests" "$tmp/out"
check "the tree names the fragments" $?

"$vulcan" parse "$src/examples/hello.kdl" "$tmp/bad.kdl" >"$tmp/out" 2>"$tmp/err"
check "one invalid file among several exits 1" $([ $? -eq 1 ]; echo $?)
grep -q "bad.kdl:5:" "$tmp/err"
check "the error names file:line:col" $?
grep -q "\^" "$tmp/err"
check "the error shows a caret" $?

"$vulcan" parse --json "$src/examples/hello.kdl" "$src/examples/parallel.kdl" >"$tmp/out"
check "--json with two valid files exits 0" $?
[ "$(head -c 1 "$tmp/out")" = "[" ]
check "--json with several files prints an array" $?

"$vulcan" parse --quiet "$src/examples/hello.kdl" >"$tmp/out" 2>&1
check "--quiet exits 0" $?
[ ! -s "$tmp/out" ]
check "--quiet prints nothing" $?

"$vulcan" parse --help >"$tmp/out"
check "--help exits 0" $?
grep -q "usage: vulcan parse" "$tmp/out"
check "--help prints the usage" $?

"$vulcan" parse --no-such-flag "$src/examples/hello.kdl" >/dev/null 2>&1
check "an unknown option exits 2" $([ $? -eq 2 ]; echo $?)

"$vulcan" parse "$tmp/missing.kdl" >/dev/null 2>"$tmp/err"
check "a missing file exits 1" $([ $? -eq 1 ]; echo $?)
grep -q "missing.kdl" "$tmp/err"
check "a missing file is named" $?

finish
