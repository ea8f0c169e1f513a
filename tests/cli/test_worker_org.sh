#!/bin/sh
# Issue 13, "a worker token only claims work of its org and groups": a worker registered
# with a registration token of org `other` never gets a chain of org `default` in the
# same machine group; a worker of `default` then runs it.
# Usage: test_worker_org.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" --workers 0 \
    --log-format text >"$tmp/server.log" 2>&1 &
pids=$!
url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$tmp/server.log")
    [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
[ -n "$url" ]
check "the server starts" $?
export VULCAN_TOKEN
VULCAN_TOKEN=$(cat "$tmp/data/initial-admin-token")
"$vulcan" orgs create other --server "$url" >"$tmp/org.out" 2>&1
check "an org 'other' is made" $?
db="sqlite:$tmp/data/vulcan.db"
"$vulcan" admin create-registration-token --database "$db" --org other >"$tmp/reg-other"
check "a registration token of org 'other'" $?
"$vulcan" admin create-registration-token --database "$db" >"$tmp/reg-default"
check "and one of org 'default'" $?

"$vulcan" worker --server "$url" --group default --sandbox none --work-dir "$tmp/w1" \
    --name other-1 --registration-token-file "$tmp/reg-other" --log-format text \
    >"$tmp/w1.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 1 100); do
    grep -q "registered" "$tmp/w1.log" && break
    sleep 0.1
done
grep -q "registered" "$tmp/w1.log"
check "the worker of org 'other' registers in group default" $?

cat >"$tmp/wf.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment { name "job"; run "echo ran-on-$VULCAN_WORKER_ID"; }
}
KDL
chain=$("$vulcan" submit --server "$url" "$tmp/wf.kdl" 2>"$tmp/sub.err" | head -n 1)
[ -n "$chain" ]
check "a chain of org 'default' is submitted" $?
sleep 3
st=$(curl -s -H "Authorization: Bearer $VULCAN_TOKEN" "$url/api/v1/chains/$chain" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["fragments"][0]["status"])')
[ "$st" = ready ]
check "after 3 s its fragment is still ready: the other org's worker did not take it ($st)" $?

"$vulcan" worker --server "$url" --group default --sandbox none --work-dir "$tmp/w2" \
    --name default-1 --registration-token-file "$tmp/reg-default" --log-format text \
    >"$tmp/w2.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 1 200); do
    st=$(curl -s -H "Authorization: Bearer $VULCAN_TOKEN" "$url/api/v1/chains/$chain" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [ "$st" = completed ] && break
    sleep 0.1
done
[ "$st" = completed ]
check "a worker of org 'default' runs it" $?
w=$(curl -s -H "Authorization: Bearer $VULCAN_TOKEN" "$url/api/v1/chains/$chain" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["fragments"][0]["worker_id"])')
grep -q "worker_id=$w" "$tmp/w2.log"
check "the one that ran it is the default org's worker" $?
finish
