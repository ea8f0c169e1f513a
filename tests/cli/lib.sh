# Shared by the tests/cli scripts (sourced): a temporary directory removed at exit, and
# check NAME RESULT, which counts RESULT 0 as passed and prints NAME (with the head of
# $tmp/out and $tmp/err, the last command's output) otherwise. finish prints the counts
# and is the script's exit status.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

check() { # name, condition result (0 = ok)
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAILED: $1"
        sed 's/^/    /' "$tmp/out" "$tmp/err" 2>/dev/null | head -40
    fi
}

finish() {
    echo "$(basename "$0"): $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
