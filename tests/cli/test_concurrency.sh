#!/bin/sh
# Issue 17, concurrency groups, through a real server and two workers:
# - two chains of one group: the second waits (GET /chains/{id} says why, naming the
#   first) and its script starts only after the first one's ended;
# - cancel-in-progress: the newer chain cancels the older one (its `sleep` process is
#   gone from /proc, the chain says who cancelled it) and completes;
# - cancel-in-progress on a fragment cancels the chain of the older fragment of its group;
# - a fragment-level group serialises the fragments of two chains;
# - different groups, and one group name in two repositories, run at the same time.
# Usage: test_concurrency.sh VULCAN_BINARY
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
export VULCAN_TOKEN VULCAN_SERVER="$url"
VULCAN_TOKEN=$(cat "$tmp/data/initial-admin-token")
"$vulcan" admin create-registration-token --database "sqlite:$tmp/data/vulcan.db" >"$tmp/reg"
check "a registration token" $?
for w in 1 2; do
    "$vulcan" worker --server "$url" --group default --sandbox none --work-dir "$tmp/w$w" \
        --name "w$w" --registration-token-file "$tmp/reg" --log-format text \
        >"$tmp/w$w.log" 2>&1 &
    pids="$pids $!"
done
for _ in $(seq 1 100); do
    grep -q registered "$tmp/w1.log" && grep -q registered "$tmp/w2.log" && break
    sleep 0.1
done
grep -q registered "$tmp/w1.log" && grep -q registered "$tmp/w2.log"
check "two workers register" $?

get() { # chain id, python expression over the chain `c` -> its value
    curl -s -H "Authorization: Bearer $VULCAN_TOKEN" "$url/api/v1/chains/$1" |
        python3 -c 'import json,sys; c = json.load(sys.stdin); print(eval(sys.argv[1]))' "$2"
}
wait_for() { # chain id, expression, wanted value, tenths of a second
    for _ in $(seq 1 "$4"); do
        [ "$(get "$1" "$2")" = "$3" ] && return 0
        sleep 0.1
    done
    return 1
}
submit() { # file, extra... -> chain id
    f=$1
    shift
    "$vulcan" submit "$f" "$@" 2>>"$tmp/err" | head -n 1
}
sleeping() { # the number of processes whose command line is "sleep N"
    n=0
    for c in /proc/[0-9]*/cmdline; do
        [ "$( (tr "\0" " " <"$c") 2>/dev/null)" = "sleep $1 " ] && n=$((n + 1))
    done
    echo "$n"
}
frag0='c["fragments"][0]'

# ---- 1. Waiting: two chains of `deploy-{branch}`, the second waits for the first.
cat >"$tmp/wait.kdl" <<KDL
version "0.1"
triggers "manual"
chain {
    machine "default"
    checkout #false
    concurrency group="deploy-{branch}"
    fragment {
        name "deploy"
        run "echo start \$WHO \$(date +%s%N) >> $tmp/times1; sleep 6; echo end \$WHO \$(date +%s%N) >> $tmp/times1"
    }
}
KDL
a=$(submit "$tmp/wait.kdl" --env WHO=a)
wait_for "$a" "$frag0[\"status\"]" running 100
check "chain A of group deploy-main runs" $?
[ "$(get "$a" 'c["concurrency"]["group"]')" = deploy-main ]
check "GET /chains shows its group with {branch} filled in (deploy-main)" $?
b=$(submit "$tmp/wait.kdl" --env WHO=b)
sleep 1
st="$(get "$a" "$frag0[\"status\"]") $(get "$b" "$frag0[\"status\"]")"
[ "$st" = "running ready" ]
check "chain B of the same group does not start while A runs (a worker is idle): $st" $?
want="waiting for concurrency group \`deploy-main\` (chain $a)"
[ "$(get "$b" 'c["waiting_reason"]')" = "$want" ]
check "B's waiting_reason is '$want'" $?
[ "$(get "$b" "$frag0[\"waiting_reason\"]")" = "$want" ]
check "and so is its ready fragment's" $?
wait_for "$b" 'c["status"]' completed 250
check "B completes after A" $?
[ "$(get "$a" 'c["status"]')" = completed ]
check "A completed" $?
awk '$2 == "a" && $1 == "end" { ae = $3 } $2 == "b" && $1 == "start" { bs = $3 }
     END { exit !(ae > 0 && bs > ae) }' "$tmp/times1"
check "B's script started only after A's ended" $?
[ "$(get "$b" 'c["waiting_reason"]')" = None ]
check "a finished chain waits for nothing" $?

# ---- 1b. A waiter's queue timeout names the group it waited for.
cat >"$tmp/qt.kdl" <<'KDL'
version "0.1"
triggers "manual"
queue-timeout "2s"
chain {
    machine "default"
    checkout #false
    concurrency group="q-{branch}"
    fragment { name "job"; run "sleep $NAP"; }
}
KDL
q1=$(submit "$tmp/qt.kdl" --env NAP=15)
wait_for "$q1" "$frag0[\"status\"]" running 100
q2=$(submit "$tmp/qt.kdl" --env NAP=0)
wait_for "$q2" 'c["status"]' failed 200
check "a chain waiting for its group longer than its queue-timeout fails" $?
want="queue timeout (2s) reached: waiting for concurrency group \`q-main\` (chain $q1)"
[ "$(get "$q2" "$frag0[\"error\"]")" = "$want" ]
check "its fragment's error is '$want'" $?
wait_for "$q1" 'c["status"]' completed 300
check "the holder completes" $?

# ---- 2. cancel-in-progress: the newer chain cancels the older one.
cat >"$tmp/cancel.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    checkout #false
    concurrency group="release-{branch}" cancel-in-progress=#true
    fragment { name "deploy"; run "echo nap $NAP; sleep $NAP; echo deployed $NAP"; }
}
KDL
c1=$(submit "$tmp/cancel.kdl" --env NAP=321)
wait_for "$c1" "$frag0[\"status\"]" running 100
check "chain C1 runs its 'sleep 321'" $?
for _ in $(seq 1 50); do
    [ "$(sleeping 321)" -ge 1 ] && break
    sleep 0.1
done
[ "$(sleeping 321)" -eq 1 ]
check "the sleep 321 process is there (/proc)" $?
c2=$(submit "$tmp/cancel.kdl" --env NAP=1)
wait_for "$c1" 'c["status"]' cancelled 50
check "C2 of the same group cancels C1" $?
want="cancelled by chain $c2 (concurrency group \`release-main\`)"
[ "$(get "$c1" 'c["error"]')" = "$want" ]
check "C1 says '$want'" $?
for _ in $(seq 1 300); do
    [ "$(sleeping 321)" -eq 0 ] && break
    sleep 0.1
done
[ "$(sleeping 321)" -eq 0 ]
check "C1's sleep process is gone: the worker killed it" $?
wait_for "$c1" "$frag0[\"status\"]" cancelled 100
check "C1's fragment is recorded as cancelled" $?
wait_for "$c2" 'c["status"]' completed 200
check "C2 completes" $?
"$vulcan" logs "$c2" >"$tmp/out" 2>&1
grep -q "deployed 1" "$tmp/out"
check "C2's script ran to its end" $?

# ---- 2b. cancel-in-progress on a fragment: when it becomes ready, it cancels the chain
# of the other fragment of its group.
cat >"$tmp/fcancel.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    checkout #false
    fragment {
        name "push"
        concurrency group="env-{branch}" cancel-in-progress=#true
        run "sleep $NAP; echo pushed $NAP"
    }
}
KDL
h1=$(submit "$tmp/fcancel.kdl" --env NAP=322)
wait_for "$h1" "$frag0[\"status\"]" running 100
for _ in $(seq 1 50); do
    [ "$(sleeping 322)" -ge 1 ] && break
    sleep 0.1
done
[ "$(sleeping 322)" -eq 1 ]
check "chain H1's fragment of group env-main runs its sleep 322" $?
h2=$(submit "$tmp/fcancel.kdl" --env NAP=1)
wait_for "$h1" 'c["status"]' cancelled 50
check "H2's fragment of the same group cancels H1" $?
want="cancelled by chain $h2 (concurrency group \`env-main\`)"
[ "$(get "$h1" 'c["error"]')" = "$want" ]
check "H1 says '$want'" $?
for _ in $(seq 1 300); do
    [ "$(sleeping 322)" -eq 0 ] && break
    sleep 0.1
done
[ "$(sleeping 322)" -eq 0 ]
check "H1's sleep process is gone" $?
wait_for "$h2" 'c["status"]' completed 200
check "H2 completes" $?

# ---- 3. A fragment-level group: one migration at a time, whichever chain it is in.
cat >"$tmp/frag.kdl" <<KDL
version "0.1"
triggers "manual"
chain {
    machine "default"
    checkout #false
    fragment {
        name "migrate"
        concurrency group="db"
        run "echo start \$WHO \$(date +%s%N) >> $tmp/times3; sleep 6; echo end \$WHO \$(date +%s%N) >> $tmp/times3"
    }
}
KDL
e=$(submit "$tmp/frag.kdl" --env WHO=e)
wait_for "$e" "$frag0[\"status\"]" running 100
check "chain E's migration runs" $?
f=$(submit "$tmp/frag.kdl" --env WHO=f --branch other)
sleep 1
st="$(get "$e" "$frag0[\"status\"]") $(get "$f" "$frag0[\"status\"]")"
[ "$st" = "running ready" ]
check "chain F's migration (group db) waits while E's runs: $st" $?
want="waiting for concurrency group \`db\` (chain $e)"
[ "$(get "$f" "$frag0[\"waiting_reason\"]")" = "$want" ]
check "F's fragment says '$want'" $?
[ "$(get "$f" "$frag0[\"concurrency\"][\"group\"]")" = db ]
check "the fragment shows its group" $?
wait_for "$f" 'c["status"]' completed 250
check "F completes after E" $?
awk '$2 == "e" && $1 == "end" { ee = $3 } $2 == "f" && $1 == "start" { fs = $3 }
     END { exit !(ee > 0 && fs > ee) }' "$tmp/times3"
check "F's migration started only after E's ended" $?

# ---- 4. Different groups, and one group in two repositories, run at the same time.
cat >"$tmp/par.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    checkout #false
    concurrency group="g-{branch}-{repo}"
    fragment { name "x"; run "sleep 3"; }
}
KDL
both_run() { # chain, chain: both fragments running at once
    for _ in $(seq 1 100); do
        [ "$(get "$1" "$frag0[\"status\"]")" = running ] &&
            [ "$(get "$2" "$frag0[\"status\"]")" = running ] && return 0
        sleep 0.1
    done
    return 1
}
g1=$(submit "$tmp/par.kdl" --branch x)
g2=$(submit "$tmp/par.kdl" --branch y)
both_run "$g1" "$g2"
check "groups g-x- and g-y- run in parallel" $?
[ "$(get "$g1" 'c["concurrency"]["group"]')" = g-x- ]
check "{repo} of a chain without repository is empty" $?
wait_for "$g2" 'c["status"]' completed 100
r1=$(submit "$tmp/par.kdl" --repository https://git.example.com/acme/one.git)
r2=$(submit "$tmp/par.kdl" --repository https://git.example.com/acme/two.git)
both_run "$r1" "$r2"
check "one group name in two repositories: the chains run in parallel" $?
[ "$(get "$r2" 'c["concurrency"]["group"]')" = g-main-acme/two ]
check "{repo} is the repository's path (acme/two)" $?
wait_for "$r2" 'c["status"]' completed 100
wait_for "$r1" 'c["status"]' completed 100
check "both complete" $?
finish
