#!/bin/sh
# Issue 16: `vulcan-worker`, the worker without the server's libraries. It links none of
# libmicrohttpd, SQLite, libpq, xmlsec or argon2; `vulcan server --workers N` starts it
# when it sits next to `vulcan` (and its fragments run); it takes `vulcan worker`'s options
# and hands --metrics-listen to `vulcan worker`, which has the HTTP server for /metrics.
# Usage: test_lean_worker.sh VULCAN_BINARY
set -u
vulcan=$1
lean=$(dirname "$vulcan")/vulcan-worker
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

[ -x "$lean" ]
check "vulcan-worker is built next to vulcan" $?
readelf -d "$lean" >"$tmp/out" 2>&1
! grep -E 'microhttpd|sqlite|libpq|xmlsec|argon2|libxml2' "$tmp/out"
check "vulcan-worker needs none of the server's libraries" $?
"$lean" --help >"$tmp/out" 2>&1
[ $? -eq 0 ] && grep -q -- '--concurrency' "$tmp/out"
check "vulcan-worker --help prints the worker's options" $?

"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" --log-format text --no-auth \
    --workers 1 --worker-sandbox none >"$tmp/server.log" 2>&1 &
spid=$!
pids="$pids $spid"
url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$tmp/server.log")
    [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
[ -n "$url" ]
check "the server starts with one local worker" $?
child=
for _ in $(seq 1 50); do
    child=$(pgrep -P "$spid" | head -1)
    [ -n "$child" ] && break
    sleep 0.1
done
exe=$(readlink "/proc/$child/exe" 2>/dev/null)
cp "$tmp/server.log" "$tmp/out"
[ "${exe##*/}" = vulcan-worker ]
check "server --workers starts vulcan-worker (${exe:-none})" $?

printf 'version "0.1"\ntriggers "manual"\nchain {\n    machine "default"\n    fragment { name "f"; run "echo lean-ok"; }\n}\n' >"$tmp/wf.kdl"
python3 -c 'import json,sys; print(json.dumps({"content": open(sys.argv[1]).read()}))' \
    "$tmp/wf.kdl" >"$tmp/body.json"
cid=$(curl -s -H 'Content-Type: application/json' --data-binary @"$tmp/body.json" \
    "$url/api/v1/parse" | python3 -c 'import json,sys; print(json.load(sys.stdin)["chain_id"])')
status=
for _ in $(seq 1 200); do
    status=$(curl -s "$url/api/v1/chains/$cid" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [ "$status" = completed ] || [ "$status" = failed ] && break
    sleep 0.1
done
fid=$(curl -s "$url/api/v1/chains/$cid" | python3 -c 'import json,sys; print(json.load(sys.stdin)["fragments"][0]["id"])')
curl -s "$url/api/v1/fragments/$fid/log" >"$tmp/out"
[ "$status" = completed ] && grep -q lean-ok "$tmp/out"
check "a fragment runs on it" $?

# --metrics-listen: vulcan-worker runs `vulcan worker`, which serves /metrics.
"$lean" --server "$url" --group default --sandbox none --work-dir "$tmp/w2" \
    --metrics-listen 127.0.0.1:0 --log-format text >"$tmp/w2.log" 2>&1 &
wpid=$!
pids="$pids $wpid"
mport=
for _ in $(seq 1 100); do
    mport=$(sed -n 's/.*serving metrics.* port=\([0-9]*\).*/\1/p' "$tmp/w2.log")
    [ -n "$mport" ] && break
    sleep 0.1
done
cp "$tmp/w2.log" "$tmp/out"
[ -n "$mport" ] && curl -fs "http://127.0.0.1:$mport/metrics" | grep -q vulcan_worker_fragments_total
check "vulcan-worker --metrics-listen serves /metrics (through vulcan worker)" $?
exe=$(readlink "/proc/$wpid/exe" 2>/dev/null)
[ "${exe##*/}" = vulcan ]
check "that worker is vulcan's own (${exe:-none})" $?
finish
