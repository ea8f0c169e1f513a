#!/bin/sh
# `checkout { depth 1 }` (issue 12 item 7) through `vulcan run --commit`: the script's work
# tree has one commit of history, a run without it has all; VULCAN_CHECKOUT_SHA is the commit.
# Usage: test_checkout_opts.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"

proj="$tmp/proj"
mkdir -p "$proj/.vulcan"
cd "$proj" || exit 1
git init -q -b main .
git config user.email t@example.com
git config user.name t
for i in 1 2 3; do echo "$i" >f.txt && git add f.txt && git commit -qm "c$i"; done
cat >"$proj/.vulcan/shallow.kdl" <<'KDL'
version "0.1"
triggers "push"
chain {
    machine "default"
    checkout { depth 1 }
    fragment { name "s"; run "echo count=$(git rev-list --count HEAD) f=$(cat f.txt) sha=$VULCAN_CHECKOUT_SHA" }
}
KDL
sed '/checkout/d' "$proj/.vulcan/shallow.kdl" >"$proj/.vulcan/full.kdl"
git add -A && git commit -qm workflows
head=$(git rev-parse HEAD)

"$vulcan" run --commit HEAD .vulcan/shallow.kdl >"$tmp/out" 2>"$tmp/err"
check "a run with checkout { depth 1 } exits 0" $?
grep -q "count=1 f=3 sha=$head" "$tmp/out"
check "depth 1: one commit of history, the right content, VULCAN_CHECKOUT_SHA = HEAD" $?

"$vulcan" run --commit HEAD .vulcan/full.kdl >"$tmp/out" 2>"$tmp/err"
grep -q "count=4 f=3 sha=$head" "$tmp/out"
check "without checkout: the full history" $?

sed 's/depth 1/depth 0/' .vulcan/shallow.kdl >"$tmp/bad.kdl"
"$vulcan" run --commit HEAD "$tmp/bad.kdl" >"$tmp/out" 2>"$tmp/err"
check "depth 0 exits 1" $([ $? -eq 1 ]; echo $?)
grep -q "bad.kdl:5:22: error: 'depth' takes one whole number from 1" "$tmp/err"
check "depth 0 is named with file:line:col" $?

finish
