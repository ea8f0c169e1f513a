#!/bin/sh
# Issue 14 item 10: every attempt runs with pids, memory and CPU limits, and they fail
# closed. Against a real `vulcan server` on loopback and a real `vulcan worker` in
# bubblewrap: a fork bomb stops at the pids limit, a memory hog is killed with a clear
# reason, a CPU hog is throttled to its quota; the defaults are on without flags; a worker
# that cannot make cgroups refuses to start unless --cgroups never says so.
# Usage: test_sandbox_limits.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

if ! command -v bwrap >/dev/null 2>&1; then
    echo "test_sandbox_limits.sh: skipped (no bubblewrap)"
    exit 0
fi

: >"$tmp/server.log"
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

worker() { # log, extra flags... -> starts a worker of group "default" in the background
    l=$1
    shift
    : >"$l"
    "$vulcan" worker --server "$url" --group default --sandbox bwrap --log-format text \
        --work-dir "$tmp/work-$$-$(date +%s%N)" "$@" >"$l" 2>&1 &
    wpid=$!
    pids="$pids $wpid"
    for _ in $(seq 1 100); do
        grep -q 'msg=registered' "$l" && return 0
        sleep 0.1
    done
    return 1
}

submit() { # timeout, the fragment's script on stdin -> $cid
    python3 -c '
import json, sys
run = sys.stdin.read().replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")
doc = ("version \"0.1\"\ntriggers \"manual\"\nchain {\n    machine \"default\"\n"
       "    fragment { name \"f\"; timeout \"%s\"; run \"%s\"; }\n}\n" % (sys.argv[1], run))
print(json.dumps({"content": doc}))' "$1" >"$tmp/body.json"
    cid=$(curl -s -H 'Content-Type: application/json' --data-binary @"$tmp/body.json" \
        "$url/api/v1/parse" | python3 -c 'import json,sys; print(json.load(sys.stdin)["chain_id"])' 2>/dev/null)
}

finished() { # $cid -> waits (up to $1 s) and leaves the fragment's status in $status, log in $tmp/log
    status=
    for _ in $(seq 1 $(($1 * 10))); do
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

# 200 processes started at once; those the pids limit refuses are counted, not fatal.
cat >"$tmp/burst.sh" <<'SH'
python3 - <<'PY'
import os, time
kids = []
for i in range(200):
    try:
        p = os.fork()
    except OSError:
        continue
    if p == 0:
        time.sleep(20)
        os._exit(0)
    kids.append(p)
print("started=%d" % len(kids))
for p in kids:
    os.kill(p, 9)
PY
SH

# ---- Defaults: a worker started without limit flags has pids 4096, memory and CPU limits.
worker "$tmp/w0.log"
check "a worker without limit flags starts" $?
grep 'msg="worker starting"' "$tmp/w0.log" >"$tmp/out"
grep -q 'pids_limit=4096' "$tmp/out" && grep -q 'memory_limit=[0-9]' "$tmp/out" &&
    grep -q 'cpu_millis=[0-9]' "$tmp/out"
check "and applies the default pids, memory and cpu limits" $?
# 200 background sleeps against the default of 4096: all start.
submit 60s <"$tmp/burst.sh"
finished 60
[ "$status" = completed ] && grep -q 'started=200' "$tmp/log"
check "200 processes fit under the default limit" $?
kill "$wpid"
wait "$wpid" 2>/dev/null

# ---- A worker with small limits.
worker "$tmp/w1.log" --pids 64 --memory 64M --cpus 200
check "a worker with --pids 64 --memory 64M --cpus 200 starts" $?

# Fork bomb, bounded: of 200 background processes only those under the limit start.
submit 60s <"$tmp/burst.sh"
finished 60
n=$(sed -n 's/.*started=\([0-9]*\).*/\1/p' "$tmp/log")
echo "fork burst: $n of 200 started under --pids 64"
[ -n "$n" ] && [ "$n" -lt 64 ] && [ "$n" -gt 10 ]
check "a burst of 200 forks stops below the pids limit of 64 (started: ${n:-none})" $?
grep -q 'the process limit (64) refused [0-9]* fork' "$tmp/log"
check "and the log says the process limit refused forks" $?

# Fork bomb, unbounded: it is held at the limit until its timeout ends it, and the worker
# goes on working. Its processes are counted from the host by their cgroup: the worker's
# slot cgroup (vulcan-slot-<worker pid>-...), which every attempt of the slot reuses.
submit 5s <<'SH'
bash -c 'b() { b | b & }; b; sleep 60'
SH
fid=
for _ in $(seq 1 50); do
    fid=$(curl -s "$url/api/v1/chains/$cid" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["fragments"][0]["id"])' 2>/dev/null)
    [ -n "$fid" ] && break
    sleep 0.1
done
peak=0
for _ in $(seq 1 40); do
    now=$(grep -l "vulcan-slot-$wpid-" /proc/[0-9]*/cgroup 2>/dev/null | wc -l)
    [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.1
done
finished 60
echo "fork bomb: at most $peak processes in the attempt's cgroup"
[ "$status" = failed ] && [ "$peak" -le 64 ] && [ "$peak" -ge 32 ]
check "a fork bomb is held at the limit of 64 processes (peak $peak) and fails" $?
grep -q 'timed out' "$tmp/log"
check "the fork bomb ends at its timeout" $?
left=$(grep -l "vulcan-slot-$wpid-" /proc/[0-9]*/cgroup 2>/dev/null | wc -l)
[ "$left" -eq 0 ]
check "nothing of the bomb is left in the slot's cgroup once the attempt ended ($left)" $?

# Memory hog: 600 MiB against a 64 MiB limit.
submit 60s <<'SH'
python3 -c 'x = b"a" * (600 << 20); print(len(x))'
SH
finished 60
[ "$status" = failed ] && grep -q 'killed: out of memory (limit 67108864 bytes)' "$tmp/log"
check "a memory hog is killed and the fragment fails: out of memory" $?

# CPU hog: a busy loop for 2 s under a quota of 200 millicores gets about 0.4 s of CPU.
submit 60s <<'SH'
sh -c 'while :; do :; done' & p=$!
sleep 2
set -- $(cut -d' ' -f14,15 /proc/$p/stat)
kill $p
echo ticks=$(($1 + $2)) hz=$(getconf CLK_TCK)
SH
finished 60
t=$(sed -n 's/.*ticks=\([0-9]*\).*/\1/p' "$tmp/log")
hz=$(sed -n 's/.*hz=\([0-9]*\).*/\1/p' "$tmp/log")
echo "cpu hog: ${t:-?} clock ticks (of ${hz:-?}/s) in 2 s under a 200 millicore quota"
[ "$status" = completed ] && [ -n "$t" ] && [ "$t" -gt 0 ] && [ "$t" -lt $((hz * 8 / 10)) ]
check "a CPU hog is throttled to its quota (${t:-?} ticks of $((${hz:-100} * 2)) in 2 s)" $?

# Next fragment on the same worker still works.
echo 'echo alive' >"$tmp/alive.sh"
submit 60s <"$tmp/alive.sh"
finished 30
[ "$status" = completed ] && grep -q alive "$tmp/log"
check "the worker keeps working after the bomb and the hogs" $?
# The slot's cgroup is reused: the OOM kill and the refused forks of the attempts before
# are not this attempt's.
! grep -q 'out of memory\|refused' "$tmp/log"
check "a later attempt in the reused cgroup reports no earlier OOM kill or refused fork" $?
# A process left behind in the background does not outlive its attempt.
submit 60s <<'SH'
setsid sleep 300 </dev/null >/dev/null 2>&1 &
echo started
SH
finished 30
left=$(grep -l "vulcan-slot-$wpid-" /proc/[0-9]*/cgroup 2>/dev/null | wc -l)
[ "$status" = completed ] && [ "$left" -eq 0 ]
check "a background process does not outlive its attempt in the reused cgroup ($left left)" $?
kill "$wpid"
wait "$wpid" 2>/dev/null

# ---- Fail closed: a user who cannot make cgroups gets a refusal, not an unbounded worker.
if id nobody >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    mkdir -p "$tmp/nob" && chown nobody "$tmp/nob" && chmod 755 "$tmp"
    runuser -u nobody -- "$vulcan" worker --server "$url" --group default --sandbox bwrap \
        --work-dir "$tmp/nob/w" >"$tmp/out" 2>"$tmp/err" &
    npid=$!
    pids="$pids $npid"
    for _ in $(seq 1 50); do kill -0 $npid 2>/dev/null || break; sleep 0.1; done
    wait $npid
    rc=$?
    [ $rc -eq 1 ] && grep -q 'need cgroups' "$tmp/err" && grep -q -- '--cgroups never' "$tmp/err"
    check "without writable cgroups the worker refuses to start and says how to opt out" $?
    runuser -u nobody -- "$vulcan" worker --server "$url" --group default --sandbox bwrap \
        --work-dir "$tmp/nob/w" --cgroups never --log-format text >"$tmp/nob.log" 2>&1 &
    npid=$!
    pids="$pids $npid"
    ok=1
    for _ in $(seq 1 100); do
        grep -q 'msg=registered' "$tmp/nob.log" && ok=0 && break
        sleep 0.1
    done
    cp "$tmp/nob.log" "$tmp/out"
    [ $ok -eq 0 ] && grep 'worker starting' "$tmp/nob.log" | grep -q 'pids_limit=none'
    check "--cgroups never is the explicit opt-out: it starts, with no limits" $?
    kill $npid
    "$vulcan" worker --server "$url" --group default --cgroups never --pids 10 >"$tmp/out" 2>"$tmp/err"
    [ $? -eq 2 ]
    check "a limit with --cgroups never is a usage error" $?
fi
"$vulcan" worker --server "$url" --group default --memory 12X >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ]
check "a bad memory limit is a usage error" $?
finish
