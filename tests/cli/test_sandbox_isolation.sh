#!/bin/sh
# Issue 16: a worker slot keeps its cgroup and (as root) its network namespace from one
# sandboxed attempt to the next; one attempt still cannot see or touch what an earlier
# attempt of the same slot left. Against a real `vulcan server` on loopback and a real
# `vulcan worker --sandbox bwrap --concurrency 1` (with its default limits, then with
# --cgroups never): attempt 1 leaves files in /tmp, /var/tmp and its workspace, a
# background process, and a listening loopback socket; attempt 2 finds none of them, sees
# only its own processes, only `lo`, and cannot reach the host's loopback (the server).
# Usage: test_sandbox_isolation.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

if ! command -v bwrap >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
    echo "test_sandbox_isolation.sh: skipped (no bubblewrap or python3)"
    exit 0
fi

"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" --log-format text --no-auth \
    >"$tmp/server.log" 2>&1 &
pids="$pids $!"
url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$tmp/server.log")
    [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
[ -n "$url" ]
check "the server starts" $?
port=${url##*:}
port=${port%%/*}

worker() { # log, extra flags... -> a worker of group "default" in the background ($wpid)
    l=$1
    shift
    "$vulcan" worker --server "$url" --group default --sandbox bwrap --concurrency 1 \
        --log-format text --work-dir "$tmp/work-$(date +%s%N)" "$@" >"$l" 2>&1 &
    wpid=$!
    pids="$pids $wpid"
    for _ in $(seq 1 100); do
        grep -q 'msg=registered' "$l" && return 0
        sleep 0.1
    done
    return 1
}

submit() { # the fragment's script on stdin -> $cid
    python3 -c '
import json, sys
run = sys.stdin.read().replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")
doc = ("version \"0.1\"\ntriggers \"manual\"\nchain {\n    machine \"default\"\n"
       "    fragment { name \"f\"; timeout \"60s\"; run \"%s\"; }\n}\n" % run)
print(json.dumps({"content": doc}))' >"$tmp/body.json"
    cid=$(curl -s -H 'Content-Type: application/json' --data-binary @"$tmp/body.json" \
        "$url/api/v1/parse" | python3 -c 'import json,sys; print(json.load(sys.stdin)["chain_id"])' 2>/dev/null)
}

finished() { # waits for $cid; its fragment's status in $status, its log in $tmp/log and $tmp/out
    status=
    for _ in $(seq 1 300); do
        curl -s "$url/api/v1/chains/$cid" >"$tmp/chain.json"
        status=$(python3 -c '
import json, sys
f = json.load(open(sys.argv[1]))["fragments"][0]
print(f["status"] if f["status"] in ("completed", "failed") else "")' "$tmp/chain.json" 2>/dev/null)
        [ -n "$status" ] && break
        [ -z "$cid" ] && break
        sleep 0.1
    done
    fid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fragments"][0]["id"])' \
        "$tmp/chain.json" 2>/dev/null)
    curl -s "$url/api/v1/fragments/$fid/log" >"$tmp/log"
    cp "$tmp/log" "$tmp/out"
}

# Attempt 1: leave everything it can behind. The listener and the sleeper are detached
# (setsid, in the background) and the script exits at once.
cat >"$tmp/first.sh" <<'SH'
echo left >/tmp/left-by-1
echo left >/var/tmp/left-by-1
echo left >left-by-1
echo "ws1=$(pwd)"
echo "netns1=$(readlink /proc/self/ns/net)"
setsid sleep 300 </dev/null >/dev/null 2>&1 &
setsid python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 47611)); s.listen(5); time.sleep(300)' </dev/null >/dev/null 2>&1 &
for i in $(seq 1 50); do
    python3 -c 'import socket; socket.create_connection(("127.0.0.1", 47611), 1)' 2>/dev/null && break
    sleep 0.1
done
python3 -c 'import socket; socket.create_connection(("127.0.0.1", 47611), 1)' && echo listening-1
SH

# Attempt 2: look for all of it. $1 is attempt 1's workspace, $2 the server's port.
cat >"$tmp/second.sh" <<'SH'
[ -e /tmp/left-by-1 ] || echo tmp-clean
[ -e /var/tmp/left-by-1 ] || echo vartmp-clean
[ -e left-by-1 ] || echo ws-clean
[ -e "WS1/left-by-1" ] || echo ws1-gone
echo "netns2=$(readlink /proc/self/ns/net)"
# The patterns are built so that this script's own command line does not match them.
port1=$((47600 + 11))
n=0
for p in /proc/[0-9]*; do
    c=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)
    case "$c" in *"sleep 3""00"*|*"$port1"*) n=$((n + 1)) ;; esac
done
echo "leftovers=$n"
python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
    "$port1" 2>/dev/null || echo port-closed
python3 -c 'import socket; socket.create_connection(("127.0.0.1", SPORT), 1)' 2>/dev/null ||
    echo server-unreachable
echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ,)"
SH

round() { # label, worker flags...
    label=$1
    shift
    worker "$tmp/w.log" "$@"
    check "$label: the worker starts" $?
    submit <"$tmp/first.sh"
    finished
    [ "$status" = completed ] && grep -q listening-1 "$tmp/log"
    check "$label: attempt 1 leaves files, a background sleeper and a listening socket" $?
    ws1=$(sed -n 's/^ws1=//p' "$tmp/log")
    ns1=$(sed -n 's/^netns1=//p' "$tmp/log")
    left=$(grep -l 'slee[p] 300' /proc/[0-9]*/cmdline 2>/dev/null | wc -l)
    [ "$left" -eq 0 ]
    check "$label: nothing of attempt 1 runs on the host once it ended ($left)" $?
    sed -e "s#WS1#$ws1#" -e "s#SPORT#$port#" "$tmp/second.sh" >"$tmp/second-now.sh"
    submit <"$tmp/second-now.sh"
    finished
    [ "$status" = completed ]
    check "$label: attempt 2 runs" $?
    grep -q '^tmp-clean' "$tmp/log" && grep -q '^vartmp-clean' "$tmp/log" &&
        grep -q '^ws-clean' "$tmp/log" && grep -q '^ws1-gone' "$tmp/log"
    check "$label: attempt 2 finds none of attempt 1's files (/tmp, /var/tmp, workspace)" $?
    grep -q '^leftovers=0' "$tmp/log"
    check "$label: attempt 2 sees none of attempt 1's processes" $?
    grep -q '^port-closed' "$tmp/log"
    check "$label: attempt 1's listening socket is gone" $?
    grep -q '^server-unreachable' "$tmp/log" && grep -q '^ifaces=lo,$' "$tmp/log"
    check "$label: attempt 2 has only lo and cannot reach the host's loopback" $?
    ns2=$(sed -n 's/^netns2=//p' "$tmp/log")
    echo "$label: network namespace $ns1 then $ns2"
    kill "$wpid"
    wait "$wpid" 2>/dev/null
}

round "default limits"
round "--cgroups never" --cgroups never
finish
