#!/bin/sh
# Issue 14 item 6 against real `vulcan server`s on loopback: a live-log follow
# (?follow=1) of a fragment that never starts ends when its queue timeout fails it (and
# the follow of the fragment skipped after it ends too), instead of holding a follower
# slot for ever; followers are limited per user *and* per client address (32 each): one
# user cannot take more from many addresses, nor one address with many users' tokens.
# Usage: test_followers.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

start() { # data dir, log, extra... -> $url
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
    [ -n "$url" ]
}
fragments() { # chain id, curl args... -> fragment ids, one a line
    c=$1
    shift
    curl -s "$@" "$url/api/v1/chains/$c" |
        python3 -c 'import json,sys; [print(f["id"]) for f in json.load(sys.stdin)["fragments"]]'
}

# ---- A follow of a fragment no worker ever takes ends at its queue timeout.
start "$tmp/q" "$tmp/q.log" --no-auth --worker-timeout 1
check "the server starts" $?
wf='version \"0.1\"\nqueue-timeout \"2s\"\ntriggers \"manual\"\nchain {\n    machine \"macos\"\n    fragment { name \"build\"; run \"true\"; }\n    fragment { name \"after\"; run \"true\"; }\n}\n'
ms() { echo $(($(date +%s%N) / 1000000)); }
t0=$(ms)
cid=$(curl -s -H 'Content-Type: application/json' --data "{\"content\":\"$wf\"}" "$url/api/v1/parse" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["chain_id"])')
set -- $(fragments "$cid")
curl -s -N --max-time 20 "$url/api/v1/fragments/$1/log?follow=1" >"$tmp/build.sse" 2>&1 &
f1=$!
curl -s -N --max-time 20 "$url/api/v1/fragments/$2/log?follow=1" >"$tmp/after.sse" 2>&1 &
f2=$!
wait $f1
r1=$?
wait $f2
r2=$?
took=$(($(ms) - t0))
cp "$tmp/build.sse" "$tmp/out"
[ $r1 -eq 0 ] && grep -q '^event: end' "$tmp/build.sse" &&
    grep -A1 '^event: end' "$tmp/build.sse" | grep -q '"status":"failed"'
check "the follow of a fragment that never starts ends, failed, after its 2 s queue timeout" $?
cp "$tmp/after.sse" "$tmp/out"
[ $r2 -eq 0 ] && grep -A1 '^event: end' "$tmp/after.sse" | grep -q '"status":"skipped"'
check "and the follow of the fragment after it ends, skipped" $?
[ $took -ge 1900 ] && [ $took -le 12000 ]
check "both within seconds of the timeout (${took} ms), not at the 20 s client limit" $?

# ---- 32 followers per user and per address.
start "$tmp/a" "$tmp/a.log"
db="sqlite:$tmp/a/vulcan.db"
for u in one two; do
    "$vulcan" admin create-user --database "$db" $u --org default --role developer >"$tmp/out" 2>&1 ||
        break
done
check "two developers" $?
one=$("$vulcan" admin create-token --database "$db" --user one)
two=$("$vulcan" admin create-token --database "$db" --user two)
wf='version \"0.1\"\ntriggers \"manual\"\nchain {\n    machine \"default\"\n    fragment { name \"x\"; run \"true\"; }\n}\n'
cid=$(curl -s -H "Authorization: Bearer $one" -H 'Content-Type: application/json' \
    --data "{\"content\":\"$wf\"}" "$url/api/v1/parse" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["chain_id"])')
fid=$(fragments "$cid" -H "Authorization: Bearer $one")
followers=""
for i in $(seq 1 32); do
    curl -s -N -H "Authorization: Bearer $one" "$url/api/v1/fragments/$fid/log?follow=1" \
        >/dev/null 2>&1 &
    followers="$followers $!"
done
pids="$pids $followers"
sleep 1
follow() { # token, source address -> status code (body in $tmp/ans)
    curl -s -o "$tmp/ans" -w '%{http_code}' --max-time 2 --interface "$2" \
        -H "Authorization: Bearer $1" "$url/api/v1/fragments/$fid/log?follow=1"
}
code=$(follow "$one" 127.0.0.2)
cp "$tmp/ans" "$tmp/out"
[ "$code" = 429 ] && grep -q "you follow 32 logs already (at most 32" "$tmp/ans"
check "user one's 33rd follow, from another address, gets 429" $?
code=$(follow "$two" 127.0.0.1)
cp "$tmp/ans" "$tmp/out"
[ "$code" = 429 ] && grep -q "your address follows 32 logs already" "$tmp/ans"
check "user two's first follow from the address holding 32 gets 429" $?
code=$(follow "$two" 127.0.0.3)
[ "$code" = 200 ]
check "user two from another address follows (200)" $?
kill $followers 2>/dev/null
wait $followers 2>/dev/null
sleep 0.5
code=$(follow "$one" 127.0.0.1)
[ "$code" = 200 ]
check "once user one's followers close, user one follows again" $?
finish
