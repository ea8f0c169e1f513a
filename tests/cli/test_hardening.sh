#!/bin/sh
# Issue 14, items 8, 9 and 12, each as the attack against a real `vulcan server` on
# loopback: request smuggling headers (two Content-Length, Transfer-Encoding with
# Content-Length) are refused before any handler; numbers from the network are range-
# checked (attempt=4294967297 is not attempt 1, a priority is bounded and above 0 needs a
# maintainer); the database and the data directory are private to the server's user.
# Usage: test_hardening.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

start() { # data dir, log, extra... -> $url, $port
    d=$1 l=$2
    shift 2
    : >"$l"
    "$vulcan" server --listen 127.0.0.1:0 --data-dir "$d" --log-format text "$@" >"$l" 2>&1 &
    pids="$pids $!"
    url=
    for _ in $(seq 1 100); do
        url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$l")
        [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    port=${url##*:}
    [ -n "$url" ]
}
raw() { # a raw request on stdin -> the status line
    python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.stdin.buffer.read().replace(b"\n", b"\r\n"))
s.settimeout(5)
d = b""
try:
    while b"\r\n" not in d:
        x = s.recv(4096)
        if not x:
            break
        d += x
except OSError:
    pass
print(d.split(b"\r\n")[0].decode(errors="replace"))' "$port"
}

# ---- Item 12: private files, also for a database made readable by an older version.
mkdir -p "$tmp/old" && : >"$tmp/old/vulcan.db" && chmod 644 "$tmp/old/vulcan.db"
start "$tmp/data" "$tmp/server.log" --no-auth
check "the server starts" $?
[ "$(stat -c %a "$tmp/data")" = 700 ]
check "the data directory is 0700" $?
[ "$(stat -c %a "$tmp/data/vulcan.db")" = 600 ] && [ "$(stat -c %a "$tmp/data/vulcan.db-wal")" = 600 ]
check "the database and its WAL are 0600" $?
find "$tmp/data" -maxdepth 1 -type f -perm /077 >"$tmp/out"
[ ! -s "$tmp/out" ]
check "no file of the data directory is readable by others" $?

start "$tmp/old" "$tmp/old.log" --no-auth
[ "$(stat -c %a "$tmp/old/vulcan.db")" = 600 ]
check "an older database readable by others is made 0600" $?
start "$tmp/data2" "$tmp/server2.log" --no-auth

# ---- Item 8: smuggling headers.
printf 'POST /api/v1/validate HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\nContent-Length: 15\nContent-Length: 4\nConnection: close\n\n{"content":"x"}' |
    raw >"$tmp/out"
grep -q " 400 " "$tmp/out"
check "two different Content-Length headers: 400" $?
printf 'POST /api/v1/validate HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\nContent-Length: 15\nTransfer-Encoding: chunked\nConnection: close\n\nf\n{"content":"x"}\n0\n\n' |
    raw >"$tmp/out"
grep -q " 400 " "$tmp/out"
check "Transfer-Encoding with Content-Length: 400" $?

# ---- Item 9: integers.
frag=01a23b71-6bfe-7086-a3c5-c7f7ac6ad0ca
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' --data-binary x \
    "$url/api/v1/work/$frag/log?attempt=4294967297&offset=0")
[ "$code" = 400 ] && grep -q "from 0 to" "$tmp/ans"
check "attempt=4294967297 on a log chunk is refused (400), not taken as 1" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' --data-binary x \
    "$url/api/v1/work/$frag/log?attempt=1&offset=99999999999999999999")
[ "$code" = 400 ]
check "an offset past 64 bits is refused (400)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data "{\"worker_id\":\"$frag\",\"fragment_id\":\"$frag\",\"attempt\":4294967297,\"success\":true}" \
    "$url/api/v1/work/result")
[ "$code" = 400 ]
check "attempt 4294967297 in a result is refused (400)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data "{\"worker_id\":\"$frag\",\"fragment_id\":\"$frag\",\"attempt\":1,\"exit_code\":4294967296}" \
    "$url/api/v1/work/result")
[ "$code" = 400 ]
check "an exit code past 32 bits is refused (400)" $?
wf='version \"0.1\"\ntriggers \"manual\"\nchain {\n    machine \"default\"\n    fragment { name \"x\"; run \"true\"; }\n}\n'
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data "{\"content\":\"$wf\",\"priority\":2147483648}" "$url/api/v1/parse")
[ "$code" = 400 ] && grep -q "priority" "$tmp/ans"
check "a priority past the range is refused (400)" $?

start "$tmp/auth" "$tmp/auth.log"
db="sqlite:$tmp/auth/vulcan.db"
"$vulcan" admin create-user --database "$db" dev --org default --role developer >"$tmp/out" 2>&1 &&
    "$vulcan" admin create-user --database "$db" boss --org default --role maintainer >"$tmp/out" 2>&1
check "a developer and a maintainer" $?
dev=$("$vulcan" admin create-token --database "$db" --user dev)
boss=$("$vulcan" admin create-token --database "$db" --user boss)
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $dev" --data "{\"content\":\"$wf\",\"priority\":10}" "$url/api/v1/parse")
[ "$code" = 403 ] && grep -q "maintainer" "$tmp/ans"
check "a developer's priority above 0 is refused (403)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $dev" --data "{\"content\":\"$wf\",\"priority\":-5}" "$url/api/v1/parse")
[ "$code" = 201 ]
check "but a lower priority is theirs to choose" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $boss" --data "{\"content\":\"$wf\",\"priority\":10}" "$url/api/v1/parse")
[ "$code" = 201 ]
check "a maintainer's priority 10 is taken" $?
# ---- Item 4: the server caps a log whatever the worker sends.
start "$tmp/cap" "$tmp/cap.log" --no-auth --workers 1 --worker-sandbox none --max-log-bytes 65536
cat >"$tmp/long.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment { name "long"; run "sleep 5"; }
}
KDL
python3 -c 'import json,sys; print(json.dumps({"content": open(sys.argv[1]).read()}))' "$tmp/long.kdl" >"$tmp/body.json"
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
head -c 100000 /dev/zero | tr '\0' a >"$tmp/big"
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' --data-binary @"$tmp/big" \
    "$url/api/v1/work/$fid/log?attempt=1&offset=0")
[ "$code" = 413 ]
check "100 KB of log past a 64 KiB cap: 413" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' --data-binary @"$tmp/big" \
    "$url/api/v1/work/$fid/log?attempt=1&offset=65536")
[ "$code" = 413 ]
check "and any chunk past the cap: 413" $?
curl -s "$url/api/v1/fragments/$fid/log" >"$tmp/log"
[ "$(head -c 65536 "$tmp/log" | tr -d a | wc -c)" = 0 ] && grep -q "log truncated by the server at 65536 bytes" "$tmp/log" &&
    [ "$(wc -c <"$tmp/log")" -lt 66000 ]
check "the stored log is the cap's bytes and one notice" $?

# ---- Item 6: one caller cannot take every live-log slot.
sed 's/sleep 5/sleep 60/' "$tmp/long.kdl" >"$tmp/longer.kdl"
python3 -c 'import json,sys; print(json.dumps({"content": open(sys.argv[1]).read()}))' "$tmp/longer.kdl" >"$tmp/body.json"
cid=$(curl -s -H 'Content-Type: application/json' --data-binary @"$tmp/body.json" "$url/api/v1/parse" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["chain_id"])')
fid=$(curl -s "$url/api/v1/chains/$cid" | python3 -c 'import json,sys; print(json.load(sys.stdin)["fragments"][0]["id"])')
followers=""
for i in $(seq 1 32); do
    curl -s -N "$url/api/v1/fragments/$fid/log?follow=1" >/dev/null 2>&1 &
    followers="$followers $!"
done
sleep 1
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' --max-time 3 "$url/api/v1/fragments/$fid/log?follow=1")
[ "$code" = 429 ] && grep -q "at most 32" "$tmp/ans"
check "a 33rd live log of one caller gets 429" $?
kill $followers 2>/dev/null
wait $followers 2>/dev/null
sleep 0.5
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/api/v1/fragments/$fid/log?follow=1")
[ "$code" = 200 ]
check "and once they close, following works again" $?

# ---- Item 11: the script's environment is not on bubblewrap's command line.
cat >"$tmp/env.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment { name "wait"; run "test \"${#MARKER}\" = 17 && sleep 3"; }
}
KDL
"$vulcan" run --sandbox bwrap --env MARKER=s3cr3t-value-4711 "$tmp/env.kdl" >"$tmp/run.out" 2>&1 &
runner=$!
pids="$pids $runner"
seen=1 found_bwrap=1
for _ in $(seq 1 40); do
    if ps -eo args | grep -v grep | grep -q "^bwrap\|/bwrap "; then
        found_bwrap=0
        ps -eo args | grep -v "grep\|vulcan run" | grep -q "s3cr3t-value-4711" || seen=0
        break
    fi
    sleep 0.1
done
wait $runner
check "the fragment sees its variable and completes" $?
[ $found_bwrap -eq 0 ] && [ $seen -eq 0 ]
check "no process's command line shows the value while bubblewrap runs" $?
finish
