#!/bin/sh
# Issue 17, chains that follow chains, through the real binary: a repository holds
# build.kdl (manual), deploy.kdl (`chain workflow="build"`, completed by default),
# rescue.kdl (`chain workflow="build" status="failed"`), flaky.kdl (manual, fails) with
# onfail.kdl following its failure, and ping.kdl/pong.kdl following each other. One
# manual run on a `vulcan server` (SQLite, or the PostgreSQL of scripts/pg-test.sh when
# VK_TEST_PG_URL is set) must make: deploy after build, at build's commit, seeing the
# upstream chain's id, workflow and status; onfail after flaky; never rescue; and the
# ping/pong loop stopped at depth 3 (four chains in all, not an endless stream).
# Usage: test_follow.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
spid=
trap '[ -n "$spid" ] && kill $spid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

repo="$tmp/repo"
mkdir -p "$repo/.vulcan"
wf() { # FILE TRIGGERS SCRIPT
    printf 'version "0.1"\ntriggers %s\nchain {\n    machine "default"\n    checkout #false\n    fragment { run "%s" }\n}\n' "$2" "$3" >"$repo/.vulcan/$1"
}
wf build.kdl '"manual"' 'echo building'
wf deploy.kdl '{ chain workflow="build" { branches "main" } }' \
    'echo deploy-after=$VULCAN_UPSTREAM_WORKFLOW status=$VULCAN_UPSTREAM_STATUS id=$VULCAN_UPSTREAM_CHAIN_ID depth=$VULCAN_CHAIN_DEPTH'
wf rescue.kdl '{ chain workflow="build" status="failed" }' 'echo rescue'
wf flaky.kdl '"manual"' 'exit 3'
wf onfail.kdl '{ chain workflow="flaky" status="failed" }' 'echo onfail-after=$VULCAN_UPSTREAM_STATUS'
wf ping.kdl '{ manual; chain workflow="pong" status="finished" }' 'echo ping depth=${VULCAN_CHAIN_DEPTH:-0}'
wf pong.kdl '{ chain workflow="ping" }' 'echo pong depth=$VULCAN_CHAIN_DEPTH'

"$vulcan" parse "$repo/.vulcan/deploy.kdl" >out 2>err
grep -q "chain" out
check "vulcan parse shows the chain trigger ($(head -c 300 out) $(head -c 200 err))" $?
"$vulcan" parse --json "$repo/.vulcan/rescue.kdl" >out 2>err
python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["triggers"][0]
assert t["type"] == "chain" and t["workflow"] == "build" and t["status"] == "failed", t
' out
check "vulcan parse --json has the trigger's workflow and status ($(head -c 300 out))" $?
printf 'version "0.1"\ntriggers { chain status="failed"; }\nchain { machine "m"; fragment { run "x" } }\n' >bad.kdl
"$vulcan" parse bad.kdl >out 2>err
[ $? -ne 0 ] && grep -q "bad.kdl:2:12: error: 'chain' needs the workflow it follows" err
check "a chain trigger without workflow= is an error at its file:line:col ($(head -c 200 err))" $?

(cd "$repo" && git init -q -b main && git add . && git -c user.name=t -c user.email=t@t commit -q -m ci)
sha=$(git -C "$repo" rev-parse HEAD)
db=${VK_TEST_PG_URL:+--database $VK_TEST_PG_URL}
# shellcheck disable=SC2086
"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" $db --no-auth --workers 2 \
    --allow-file-repos --worker-sandbox none --log-format text >server.log 2>&1 &
spid=$!
url=
for _ in $(seq 1 150); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' server.log)
    [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
[ -n "$url" ]
check "the server starts (${VK_TEST_PG_URL:+postgres}${VK_TEST_PG_URL:-sqlite})" $?
curl -fs -X POST -H 'Content-Type: application/json' \
    --data "{\"url\": \"file://$repo\", \"provider\": \"github\"}" "$url/api/v1/repos" >repo.json
rid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' repo.json)
curl -fs -X POST -H 'Content-Type: application/json' --data '{"branch": "main"}' \
    "$url/api/v1/repos/$rid/trigger" >trig.json
python3 -c 'import json,sys; assert len(json.load(open(sys.argv[1]))["chains"]) == 3' trig.json
check "a manual run starts the three manual workflows only ($(head -c 300 trig.json))" $?

# Wait until build, deploy, flaky, onfail and four ping/pong chains have ended.
summary() {
    curl -fs "$url/api/v1/chains?limit=100" >chains.json &&
        python3 - chains.json <<'PY'
import json, sys
cs = json.load(open(sys.argv[1]))["chains"]
for c in sorted(cs, key=lambda c: c["created_at"]):
    print(c["source_file"].rsplit("/", 1)[-1], c["status"], c["trigger"], c["id"], c.get("commit_sha"))
PY
}
ok=1
for _ in $(seq 1 300); do
    summary >list 2>/dev/null
    done_n=$(grep -c ' \(completed\|failed\|cancelled\) ' list)
    [ "$(wc -l <list)" -ge 8 ] && [ "$done_n" = "$(wc -l <list)" ] && { ok=0; break; }
    sleep 0.1
done
check "eight chains are made and end ($(tr '\n' ';' <list))" $ok
sleep 2 # a ninth (a fifth ping/pong, a rescue) would have been made by now
summary >list
[ "$(wc -l <list)" = 8 ]
check "nothing more is made: no rescue, the ping/pong loop stops at depth 3 ($(tr '\n' ';' <list))" $?
grep -q '^build.kdl completed manual' list && grep -q '^deploy.kdl completed chain' list &&
    grep -q '^flaky.kdl failed manual' list && grep -q '^onfail.kdl completed chain' list &&
    ! grep -q '^rescue' list
check "deploy follows build's success, onfail follows flaky's failure, rescue never runs" $?
[ "$(grep -c '^ping.kdl' list)" = 2 ] && [ "$(grep -c '^pong.kdl' list)" = 2 ]
check "ping and pong ran twice each" $?
grep '^deploy.kdl' list | grep -q " $sha\$"
check "the follower runs at the upstream chain's commit" $?
bid=$(awk '$1 == "build.kdl" { print $4 }' list)
did=$(awk '$1 == "deploy.kdl" { print $4 }' list)
"$vulcan" logs --server "$url" "$did" >logs 2>&1
grep -q "deploy-after=build status=completed id=$bid depth=1" logs
check "the follower sees the upstream chain's workflow, status and id ($(head -c 300 logs))" $?
oid=$(awk '$1 == "onfail.kdl" { print $4 }' list)
"$vulcan" logs --server "$url" "$oid" >logs 2>&1
grep -q "onfail-after=failed" logs
check "a failure follower sees status=failed ($(head -c 300 logs))" $?
last=$(awk '$1 == "pong.kdl" { print $4 }' list | tail -n 1)
"$vulcan" logs --server "$url" "$last" >logs 2>&1
grep -q "pong depth=3" logs
check "the last of the loop ran at depth 3 ($(head -c 300 logs))" $?

finish
