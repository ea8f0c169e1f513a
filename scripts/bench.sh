#!/bin/sh
# Run every benchmark built under $1/bench and print their figures.
# Benchmarks print numbers; they are not timed tests and never fail CI.
set -eu
build=${1:-build}
for b in "$build"/bench/*; do
    [ -x "$b" ] && [ -f "$b" ] || continue
    echo "== $(basename "$b")"
    "$b" || echo "(benchmark exited with status $?)"
    echo
done
