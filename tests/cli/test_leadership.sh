#!/bin/sh
# Issue 22, singletons under leases (DESIGN §13): two replicas on one database (SQLite, or
# PostgreSQL with VK_TEST_PG_URL from scripts/pg-test.sh). The first leads the reaper and
# the cron scheduler (/health/ready says so), the second leads nothing; after a `kill -9`
# of the leader the other takes both within 5 s and counts it in
# vulcan_leader_changes_total; the old leader, started again, leads nothing; a clean stop
# gives the leases up and the other replica takes them within about a second.
# Usage: test_leadership.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT
db=${VK_TEST_PG_URL:-sqlite:$tmp/shared.db}

start() { # name -> ${name}_url, ${name}_pid
    : >"$tmp/$1.log"
    "$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/$1" --database "$db" --no-auth \
        --secrets-key-file "$tmp/secrets.key" \
        --workers 0 --log-format text >"$tmp/$1.log" 2>&1 &
    p=$!
    pids="$pids $p"
    u=
    for _ in $(seq 1 150); do
        u=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$tmp/$1.log")
        [ -n "$u" ] && curl -fs "$u/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    eval "${1}_url=\$u ${1}_pid=\$p"
    [ -n "$u" ]
}
leads() { # url -> the singletons it leads, comma-separated
    curl -fs "$1/health/ready" 2>/dev/null | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["leads"]))' 2>/dev/null
}
wait_leads() { # url, expected -> ms waited in $waited
    t0=$(date +%s%N)
    for _ in $(seq 1 100); do
        [ "$(leads "$1")" = "$2" ] && break
        sleep 0.1
    done
    waited=$((($(date +%s%N) - t0) / 1000000))
    [ "$(leads "$1")" = "$2" ]
}

start a
check "replica a starts" $?
[ "$(leads "$a_url")" = "reaper,cron" ]
check "a lone replica leads the reaper and cron from its start" $?
start b
check "replica b starts on the same database" $?
[ "$(leads "$b_url")" = "" ] && [ "$(leads "$a_url")" = "reaper,cron" ]
check "b leads nothing while a holds the leases" $?
curl -fs "$a_url/health/ready" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert ":" in d["replica"], d'
check "/health/ready names the replica" $?

t0=$(date +%s%N)
kill -9 "$a_pid"
wait "$a_pid" 2>/dev/null
wait_leads "$b_url" "reaper,cron"
ok=$?
moved=$((($(date +%s%N) - t0) / 1000000))
echo "# leadership moved $moved ms after kill -9 of the leader"
[ $ok = 0 ] && [ $moved -le 5500 ]
check "after kill -9 of the leader the other replica leads both within 5 s ($moved ms)" $?
curl -fs "$b_url/metrics" | grep -q 'vulcan_leader_changes_total{singleton="reaper"} 1'
check "vulcan_leader_changes_total counts the take-over" $?
grep -q 'leading a singleton.*singleton=reaper' "$tmp/b.log"
check "the new leader logs it" $?

start a
check "a starts again" $?
sleep 1.5
[ "$(leads "$a_url")" = "" ] && [ "$(leads "$b_url")" = "reaper,cron" ]
check "the old leader, back, leads nothing: b keeps the leases" $?

t0=$(date +%s%N)
kill "$b_pid"
wait "$b_pid" 2>/dev/null
wait_leads "$a_url" "reaper,cron"
ok=$?
moved=$((($(date +%s%N) - t0) / 1000000))
echo "# leadership moved $moved ms after a clean stop of the leader"
[ $ok = 0 ] && [ $moved -le 3000 ]
check "a clean stop gives the leases up: a leads within a renewal ($moved ms)" $?
finish
