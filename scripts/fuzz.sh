#!/bin/sh
# Run every libFuzzer target in $FUZZ_BUILD for $FUZZ_SECONDS seconds each,
# seeded from fuzz/seeds/<target>/ (and, for KDL, the official suite inputs).
# Exits non-zero on the first finding. See docs/fuzzing.md.
set -eu
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
found=0
for bin in "$FUZZ_BUILD"/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    corpus=$(mktemp -d)
    seeds=""
    [ -d "$root/fuzz/seeds/$name" ] && seeds="$seeds $root/fuzz/seeds/$name"
    case "$name" in
    fuzz_kdl*) seeds="$seeds $root/tests/kdl/spec/input" ;;
    esac
    dict=""
    [ -f "$root/fuzz/$name.dict" ] && dict="-dict=$root/fuzz/$name.dict"
    echo "fuzz: $name for ${FUZZ_SECONDS}s"
    # shellcheck disable=SC2086
    if ! "$bin" -max_total_time="$FUZZ_SECONDS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=0 $dict -artifact_prefix="$FUZZ_BUILD/" "$corpus" $seeds \
        >"$FUZZ_BUILD/$name.log" 2>&1; then
        echo "fuzz: $name found a problem; see $FUZZ_BUILD/$name.log"
        tail -n 40 "$FUZZ_BUILD/$name.log"
        found=1
    else
        grep -E '^#[0-9]+.*DONE' "$FUZZ_BUILD/$name.log" | tail -n 1 || true
    fi
    rm -rf "$corpus"
done
exit $found
