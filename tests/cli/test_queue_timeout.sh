#!/bin/sh
# Issue 12 item 5 through the real binary: a fragment for a machine group no worker
# serves fails after its `queue-timeout`, with the waiting reason as its error, and the
# chain ends failed (before, it waited forever). Usage: test_queue_timeout.sh VULCAN
vulcan=$1
. "$(dirname "$0")/lib.sh"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
mkdir -p "$tmp/data"
"$vulcan" server --no-auth --listen "127.0.0.1:$port" --data-dir "$tmp/data" --worker-timeout 1 \
    --log-format text >"$tmp/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$tmp"' EXIT
i=0
until curl -sf "$url/health" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -gt 100 ] && { echo "server did not start"; cat "$tmp/server.log"; exit 1; }
    sleep 0.1
done

cat >"$tmp/wf.kdl" <<'KDL'
version "0.1"
queue-timeout "2s"
triggers "push"
chain {
    machine "macos"
    fragment { name "build"; run "echo never"; }
    fragment { name "after"; run "echo never either"; }
}
KDL
"$vulcan" submit "$tmp/wf.kdl" --server "$url" >"$tmp/out" 2>"$tmp/err"
check "submit" $?
chain=$(tail -n 1 "$tmp/out")

# Wait for the chain to end (the reaper looks at most every 5 s here: 1 s / 4 -> 250 ms).
status=""
i=0
while [ $i -lt 100 ]; do
    curl -sf "$url/api/v1/chains/$chain" >"$tmp/chain.json" 2>/dev/null
    status=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' "$tmp/chain.json" 2>/dev/null)
    [ "$status" = failed ] && break
    i=$((i + 1))
    sleep 0.2
done
cp "$tmp/chain.json" "$tmp/out"
[ "$status" = failed ]
check "the chain ends failed after the queue timeout (status: $status)" $?
python3 - "$tmp/chain.json" >"$tmp/err" 2>&1 <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
f = {x["name"]: x for x in c["fragments"]}
b, a = f["build"], f["after"]
want = "queue timeout (2s) reached: no worker of machine group 'macos' has ever registered"
assert b["status"] == "failed", b
assert b["error"] == want, b["error"]
assert a["status"] == "skipped", a
assert all(x["status"] not in ("pending", "ready", "running") for x in c["fragments"])
PY
check "the fragment's error is the waiting reason; the rest is skipped" $?

"$vulcan" chains show "$chain" --server "$url" >"$tmp/out" 2>"$tmp/err"
grep -q "no worker of machine group 'macos' has ever registered" "$tmp/out"
check "vulcan chains show prints the reason" $?

"$vulcan" server --queue-timeout soon --data-dir "$tmp/data2" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "queue-timeout 'soon'" "$tmp/err"
check "a bad --queue-timeout is refused" $?
finish
