#!/bin/sh
# vulcan logs / chains show (issue 12 item 12): a chain by id, unique start or end of an
# id, a fragment by name within a chain; headers with verdicts; the chain's result as exit
# status; ambiguous and unknown ids and names explained; chains show lists fragment ids.
# Usage: test_logs.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"

cat >"$tmp/ci.kdl" <<'KDL'
version "0.1"
triggers "push"
chain {
    machine "default"
    fragment { name "prepare"; run "echo preparing the tree" }
    fragment { name "unit (gcc)"; run "echo gcc says hello; exit 3" }
    fragment { name "deploy"; run "echo never printed" }
}
KDL

server_pid=
trap '[ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
"$vulcan" server --no-auth --listen 127.0.0.1:0 --data-dir "$tmp/data" --log-format json \
    --worker-sandbox none --workers 1 2>"$tmp/server.log" &
server_pid=$!
url=
i=0
while [ -z "$url" ] && [ $i -lt 100 ]; do
    url=$(sed -n 's/.*"vulcan server started".*"url":"\([^"]*\)".*/\1/p' "$tmp/server.log" | head -1)
    i=$((i + 1))
    sleep 0.1
done
export VULCAN_SERVER="$url"

timeout 60 "$vulcan" submit --follow "$tmp/ci.kdl" >"$tmp/out" 2>"$tmp/err"
check "the chain with a failing fragment fails" $([ $? -eq 1 ]; echo $?)
chain=$("$vulcan" chains ls --json | sed -n 's/.*"id": "\([0-9a-f-]*\)".*/\1/p' | head -1)
[ ${#chain} -eq 36 ]
check "chains ls gives the chain's id" $?
flat=$(echo "$chain" | tr -d -)
tail8=$(echo "$flat" | cut -c25-32)
head8=$(echo "$flat" | cut -c1-8)

"$vulcan" logs "$chain" >"$tmp/out" 2>"$tmp/err"
check "logs CHAIN exits 1 for a failed chain" $([ $? -eq 1 ]; echo $?)
grep -q "^── prepare \[[0-9a-f]\{8\}\] succeeded$" "$tmp/out" &&
    grep -q "^── unit (gcc) \[[0-9a-f]\{8\}\] failed: exit 3$" "$tmp/out" &&
    grep -q "^── deploy \[[0-9a-f]\{8\}\] skipped" "$tmp/out"
check "each fragment's header has its verdict" $?
grep -q "^preparing the tree$" "$tmp/out" && grep -q "^gcc says hello$" "$tmp/out" &&
    ! grep -q "never printed" "$tmp/out"
check "each fragment's log follows its header" $?

"$vulcan" logs "$tail8" >"$tmp/out2" 2>"$tmp/err"
check "logs with the last 8 digits of the chain exits 1 (the chain's result)" $([ $? -eq 1 ]; echo $?)
cmp -s "$tmp/out" "$tmp/out2"
check "... and prints the same as the full id" $?
"$vulcan" logs "$(echo "$flat" | cut -c1-20)" >"$tmp/out2" 2>"$tmp/err"
cmp -s "$tmp/out" "$tmp/out2"
check "a unique start of the chain id (20 digits) works too" $?

"$vulcan" logs "$chain" "unit (gcc)" >"$tmp/out" 2>"$tmp/err"
check "logs CHAIN NAME exits 0" $?
[ "$(cat "$tmp/out")" = "gcc says hello" ]
check "logs CHAIN NAME prints that fragment's log only" $?
"$vulcan" logs "$tail8" deploy >"$tmp/out" 2>"$tmp/err"
check "logs SHORT NAME of a skipped fragment exits 0" $?

"$vulcan" logs "$chain" "unit" >"$tmp/out" 2>"$tmp/err"
check "an unknown name exits 1" $([ $? -eq 1 ]; echo $?)
grep -q 'no fragment "unit"; its fragments: "prepare", "unit (gcc)", "deploy"' "$tmp/err"
check "an unknown name lists the chain's fragment names" $?

# The chain and its fragments were made in the same millisecond: UUIDv7 ids share the
# first 12 digits (the time), so the first 8 match all four.
"$vulcan" logs "$head8" >"$tmp/out" 2>"$tmp/err"
check "an ambiguous id exits 2" $([ $? -eq 2 ]; echo $?)
grep -q "'$head8' is ambiguous; it matches 4:" "$tmp/err" && grep -q "^  chain  *$chain" "$tmp/err" &&
    grep -q "^  fragment  *[0-9a-f-]\{36\}  unit (gcc)$" "$tmp/err"
check "the ambiguous id's candidates are listed with ids and names" $?
"$vulcan" logs 12 >"$tmp/out" 2>"$tmp/err"
check "fewer than 4 hex digits is bad usage" $([ $? -eq 2 ]; echo $?)
"$vulcan" logs ffffffff >"$tmp/out" 2>"$tmp/err"
check "an id matching nothing exits 1" $([ $? -eq 1 ]; echo $?)
grep -q "no chain or fragment matches 'ffffffff'" "$tmp/err"
check "... and says so" $?

"$vulcan" chains show "$chain" >"$tmp/out" 2>"$tmp/err"
check "chains show exits 0" $?
frag=$(sed -n 's/^\([0-9a-f]\{8\}\) unit (gcc) .*/\1/p' "$tmp/out")
[ -n "$frag" ] && grep -q "^[0-9a-f]\{8\} prepare " "$tmp/out" && grep -q "^ID  *FRAGMENT" "$tmp/out"
check "chains show lists short fragment ids with names" $?
"$vulcan" logs "$frag" >"$tmp/out2" 2>"$tmp/err"
[ "$(cat "$tmp/out2")" = "gcc says hello" ]
check "logs with a fragment's short id from chains show prints its log" $?
"$vulcan" chains show -v "$chain" >"$tmp/out" 2>"$tmp/err"
grep -q "^[0-9a-f-]\{36\} unit (gcc) " "$tmp/out"
check "chains show -v lists full fragment ids" $?
"$vulcan" chains show --json "$chain" | grep -q "\"id\": \"[0-9a-f-]*$frag\""
check "chains show --json has the full ids" $?
"$vulcan" chains show "$tail8" >"$tmp/out" 2>"$tmp/err" && grep -q "^chain  *$chain$" "$tmp/out"
check "chains show takes the chain's short id" $?
"$vulcan" chains show "$head8" >"$tmp/out" 2>"$tmp/err" && grep -q "^chain  *$chain$" "$tmp/out"
check "chains show matches chains only: the first 8 digits are unique among them" $?
"$vulcan" chains show nope >"$tmp/out" 2>"$tmp/err"
check "chains show of a non-id exits 2" $([ $? -eq 2 ]; echo $?)
"$vulcan" chains rerun "$tail8" >"$tmp/out" 2>"$tmp/err" && grep -q "^[0-9a-f-]\{36\}$" "$tmp/out"
check "chains rerun takes the chain's short id" $?

finish
