#!/bin/sh
# `checkout { depth 1 }` (issue 12 item 7) through `vulcan run --commit`: the script's work
# tree has one commit of history, a run without it has all; VULCAN_CHECKOUT_SHA is the commit.
# `checkout { submodules #true }` brings a submodule; `checkout #false` leaves it empty.
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
# a submodule (a file:// URL: vulcan run checks out a snapshot in its own directory, so a
# relative URL would resolve next to the snapshot), and checkout #false
lib="$tmp/lib"
git init -q -b main "$lib"
(cd "$lib" && echo lib >lib.txt && git add lib.txt &&
    git -c user.email=t@example.com -c user.name=t commit -qm lib)
git config -f .gitmodules submodule.lib.path lib
git config -f .gitmodules submodule.lib.url "file://$lib"
git update-index --add --cacheinfo "160000,$(git -C "$lib" rev-parse HEAD),lib"
mkdir lib
sed -e 's/depth 1/submodules #true/' -e 's/run ".*"/run "cat lib\/lib.txt"/' \
    "$proj/.vulcan/shallow.kdl" >"$proj/.vulcan/sub.kdl"
sed -e 's/checkout { depth 1 }/checkout #false/' \
    -e 's/run ".*"/run "echo n=$(ls -A | wc -l) sha=[$VULCAN_CHECKOUT_SHA]"/' \
    "$proj/.vulcan/shallow.kdl" >"$proj/.vulcan/none.kdl"
git add -A && git commit -qm workflows
head=$(git rev-parse HEAD)

"$vulcan" run --commit HEAD .vulcan/shallow.kdl >"$tmp/out" 2>"$tmp/err"
check "a run with checkout { depth 1 } exits 0" $?
grep -q "count=1 f=3 sha=$head" "$tmp/out"
check "depth 1: one commit of history, the right content, VULCAN_CHECKOUT_SHA = HEAD" $?

"$vulcan" run --commit HEAD .vulcan/full.kdl >"$tmp/out" 2>"$tmp/err"
grep -q "count=4 f=3 sha=$head" "$tmp/out"
check "without checkout: the full history" $?

"$vulcan" run --commit HEAD .vulcan/sub.kdl >"$tmp/out" 2>"$tmp/err"
check "checkout { submodules #true } exits 0" $?
grep -q "\] lib$" "$tmp/out"
check "submodules #true: the submodule is checked out" $?

"$vulcan" run --commit HEAD .vulcan/none.kdl >"$tmp/out" 2>"$tmp/err"
grep -q "n=0 sha=\[\]" "$tmp/out"
check "checkout #false: an empty workspace and no VULCAN_CHECKOUT_SHA" $?

sed 's/depth 1/depth 0/' .vulcan/shallow.kdl >"$tmp/bad.kdl"
"$vulcan" run --commit HEAD "$tmp/bad.kdl" >"$tmp/out" 2>"$tmp/err"
check "depth 0 exits 1" $([ $? -eq 1 ]; echo $?)
grep -q "bad.kdl:5:22: error: 'depth' takes one whole number from 1" "$tmp/err"
check "depth 0 is named with file:line:col" $?

finish
