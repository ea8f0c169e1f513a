#!/bin/sh
# Run the official KDL 2.0 test suite through `vulcan kdl fmt --canonical`.
#   run_suite.sh VULCAN_BINARY SUITE_DIR [-v]
# For each SUITE_DIR/input/NAME.kdl: when SUITE_DIR/expected_kdl/NAME.kdl exists the
# output must equal it byte for byte (an expected file holding only a newline means
# empty output); otherwise vulcan must exit with status 1 and print nothing on stdout.
# Prints every failing case, then "N passed, M failed"; exits 1 when any case failed.
set -u
vulcan=${1:?usage: run_suite.sh VULCAN SUITE_DIR [-v]}
suite=${2:?usage: run_suite.sh VULCAN SUITE_DIR [-v]}
verbose=${3:-}
if [ ! -x "$vulcan" ]; then
    echo "run_suite: '$vulcan' is not an executable" >&2
    exit 2
fi
if [ ! -d "$suite/input" ]; then
    echo "run_suite: no test suite at '$suite' (tests/kdl/spec in the repository)" >&2
    exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
pass=0
fail=0
for in in "$suite"/input/*.kdl; do
    name=$(basename "$in")
    exp="$suite/expected_kdl/$name"
    "$vulcan" kdl fmt --canonical "$in" >"$tmp/out" 2>"$tmp/err"
    status=$?
    if [ -f "$exp" ]; then
        # An empty document prints nothing; the suite's file for it holds "\n".
        if [ "$status" -eq 0 ] && [ ! -s "$tmp/out" ] && [ "$(cat "$exp")" = "" ] &&
            [ "$(wc -c <"$exp")" -le 1 ]; then
            pass=$((pass + 1))
            continue
        fi
        if [ "$status" -eq 0 ] && cmp -s "$tmp/out" "$exp"; then
            pass=$((pass + 1))
        else
            fail=$((fail + 1))
            echo "FAIL $name (must parse; exit $status)"
            if [ -n "$verbose" ]; then
                sed 's/^/    stderr: /' "$tmp/err"
                echo "    expected:"; sed 's/^/      /' "$exp"
                echo "    got:"; sed 's/^/      /' "$tmp/out"
            fi
        fi
    else
        if [ "$status" -eq 1 ] && [ ! -s "$tmp/out" ] && [ -s "$tmp/err" ]; then
            pass=$((pass + 1))
        else
            fail=$((fail + 1))
            echo "FAIL $name (must be rejected; exit $status)"
            if [ -n "$verbose" ]; then
                echo "    got:"; sed 's/^/      /' "$tmp/out"
            fi
        fi
    fi
done
echo "kdl-suite: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
