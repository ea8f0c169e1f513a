#!/bin/sh
# Issue 14 item 3 against a real `vulcan server` on loopback: a 60 MiB log, stored through
# the worker's log route, reads back whole, and 100 readers that take a few bytes a second
# keep the server's memory (VmHWM in /proc/PID/status) under 64 MB: the plain log is
# streamed from the store in 64 KiB blocks, never built in memory. 128 slow live-log
# followers of it stay under 128 MB (436 MB before their reads and queues were cut).
# VK_TEST_SANITIZED (set by CMake in an ASan build) skips the memory bounds only.
# With VK_TEST_PG_URL set (scripts/pg-test.sh, the cli_log_memory_pg run) the server's
# store is that PostgreSQL database, else SQLite in the data directory.
# Usage: test_log_memory.sh VULCAN_BINARY [READERS] [MIB]
set -u
vulcan=$1
readers=${2:-100}
mib=${3:-60}
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

l=$tmp/server.log
set --
[ -n "${VK_TEST_PG_URL:-}" ] && set -- --database "$VK_TEST_PG_URL"
"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" --log-format text --no-auth "$@" \
    --workers 1 --worker-sandbox none --max-log-bytes 100000000 >"$l" 2>&1 &
spid=$!
pids="$pids $spid"
url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$l")
    [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
port=${url##*:}
[ -n "$url" ]
check "the server starts" $?

cat >"$tmp/wait.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment { name "wait"; run "sleep 60"; }
}
KDL
python3 -c 'import json,sys; print(json.dumps({"content": open(sys.argv[1]).read()}))' "$tmp/wait.kdl" >"$tmp/body.json"
cid=$(curl -s -H 'Content-Type: application/json' --data-binary @"$tmp/body.json" "$url/api/v1/parse" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["chain_id"])')
fid=
for _ in $(seq 1 100); do
    fid=$(curl -s "$url/api/v1/chains/$cid" | python3 -c '
import json, sys
f = json.load(sys.stdin)["fragments"][0]
print(f["id"] if f["status"] == "running" else "")')
    [ -n "$fid" ] && break
    sleep 0.1
done
[ -n "$fid" ]
check "the fragment runs" $?

# The log: MIB chunks of 1 MiB (the route's largest), each line numbered so that a
# misplaced block would show.
python3 -c '
import sys
mib = int(sys.argv[2])
with open(sys.argv[1], "wb") as f:
    for i in range(mib * 1024 * 1024 // 64):
        f.write(b"%063d\n" % i)' "$tmp/log" "$mib"
split -b 1048576 -d -a 3 "$tmp/log" "$tmp/chunk."
off=0 ok=0
for c in "$tmp"/chunk.*; do
    code=$(curl -s -o "$tmp/out" -w '%{http_code}' --data-binary @"$c" \
        "$url/api/v1/work/$fid/log?attempt=1&offset=$off")
    [ "$code" = 204 ] || ok=1
    off=$((off + $(wc -c <"$c")))
done
rm -f "$tmp"/chunk.*
[ $ok -eq 0 ] && [ $off -eq $((mib * 1048576)) ]
check "$mib MiB of log stored through the worker's log route" $?

curl -s -D "$tmp/headers" "$url/api/v1/fragments/$fid/log" -o "$tmp/back"
cmp -s "$tmp/log" "$tmp/back" &&
    grep -qi "^content-length: $((mib * 1048576))" "$tmp/headers" &&
    grep -qi "^x-vulcan-log-length: $((mib * 1048576))" "$tmp/headers"
check "the $mib MiB log reads back whole, byte for byte, with its length" $?
curl -s "$url/api/v1/fragments/$fid/log?offset=$((mib * 1048576 - 128))" -o "$tmp/tail"
[ "$(cat "$tmp/tail")" = "$(tail -c 128 "$tmp/log")" ]
check "and from an offset" $?
rm -f "$tmp/back" "$tmp/tail"

hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$spid/status; }
rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$spid/status; }
echo "before the readers: VmRSS $(rss) kB, VmHWM $(hwm) kB"

# slow N QUERY LIMIT_KB NAME: N slow readers (16 bytes a second each, through a small
# receive buffer, from 4 addresses: under the per-address limits) of the log with QUERY;
# the server's VmHWM must stay under LIMIT_KB.
slow() {
    n=$1 query=$2 limit=$3 what=$4
    rm -f "$tmp/readers"
    python3 - "$port" "$fid" "$n" "$tmp/readers" "$query" <<'PY' &
import socket, sys, time
port, fid, n, out, query = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
socks = []
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind(("127.0.0.%d" % (10 + i % 4), 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /api/v1/fragments/%s/log%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
              % (fid.encode(), query.encode()))
    socks.append(s)
ok = 0
for s in socks:
    s.settimeout(5)
    try:
        if s.recv(16).startswith(b"HTTP/1.1 200"):
            ok += 1
    except OSError:
        pass
with open(out, "w") as f:
    f.write("%d\n" % ok)
for _ in range(60):
    time.sleep(1)
    for s in socks:
        try:
            s.recv(16)
        except OSError:
            pass
PY
    rpid=$!
    pids="$pids $rpid"
    for _ in $(seq 1 100); do
        [ -s "$tmp/readers" ] && break
        sleep 0.1
    done
    [ "$(cat "$tmp/readers" 2>/dev/null)" = "$n" ]
    check "$n slow $what are answered 200" $?
    peak=0
    for _ in $(seq 1 5); do
        sleep 1
        r=$(rss)
        [ "$r" -gt "$peak" ] && peak=$r
    done
    h=$(hwm)
    echo "with $n slow $what of $mib MiB: VmRSS peak $peak kB, VmHWM $h kB"
    if [ -n "${VK_TEST_SANITIZED:-}" ]; then
        echo "(a sanitizer build: the bound of $limit kB is checked in the plain build)"
    else
        [ "$h" -lt "$limit" ]
        check "the server's VmHWM stays under $limit kB with $n slow $what (it was $h kB)" $?
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/health")
    [ "$code" = 200 ]
    check "/health answers meanwhile" $?
    kill $rpid 2>/dev/null
    wait $rpid 2>/dev/null
}

slow "$readers" "" 65536 readers
# Live-log followers (?follow=1, JSON events): 128 (4 addresses at their limit of 32)
# each have a thread, so they cost more than plain readers; bounded all the same.
sleep 1
echo 5 >/proc/$spid/clear_refs # VmHWM from here on
slow 128 "?follow=1" 131072 followers
finish
