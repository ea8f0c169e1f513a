#!/bin/sh
# Issue 13, the worker protocol under --require-auth, through the real binaries: the
# attacks of the issue (a rogue worker registering and receiving work, a forged result
# for a real worker's fragment that let a deploy run) are refused; registration tokens
# are bound to their org, machine groups and use count; each attempt has its own job
# token; a revoked worker stops and its fragment runs elsewhere; no token is logged or
# shown in ps; `vulcan server --workers` gives its local workers a token of their own.
# Usage: test_worker_auth.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

data="$tmp/data"
db="sqlite:$data/vulcan.db"
"$vulcan" server --require-auth --listen 127.0.0.1:0 --data-dir "$data" --worker-timeout 6 \
    --log-format text >"$tmp/server.log" 2>&1 &
server=$!
pids="$server"
url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$tmp/server.log")
    [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
[ -n "$url" ]
check "the server starts with --require-auth" $?
admin=$(cat "$data/initial-admin-token")

json() { # python3 expression on the JSON in file $1 (as j)
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null
}
post() { # path, body, [token] -> status in $code, body in $tmp/ans
    if [ -n "${3:-}" ]; then
        code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Content-Type: application/json' \
            -H "Authorization: Bearer $3" --data "$2" "$url$1")
    else
        code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Content-Type: application/json' \
            --data "$2" "$url$1")
    fi
}
submit() { # workflow file -> chain id
    python3 -c 'import json,sys; print(json.dumps({"content": open(sys.argv[1]).read()}))' "$1" \
        >"$tmp/body.json"
    curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $admin" \
        --data-binary @"$tmp/body.json" "$url/api/v1/parse" >"$tmp/sub.json"
    json "$tmp/sub.json" 'j["chain_id"]'
}
chain_status() { # chain id -> status
    curl -s -H "Authorization: Bearer $admin" "$url/api/v1/chains/$1" >"$tmp/chain.json"
    json "$tmp/chain.json" 'j["status"]'
}
frag() { # chain id, fragment name, field
    curl -s -H "Authorization: Bearer $admin" "$url/api/v1/chains/$1" >"$tmp/chain.json"
    json "$tmp/chain.json" "[f for f in j['fragments'] if f['name']=='$2'][0]['$3']"
}
wait_status() { # chain id, wanted status, tenths of a second
    for _ in $(seq 1 "$3"); do
        [ "$(chain_status "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# ---- A rogue worker: no token, or a token of another kind, registers nothing.
post /api/v1/workers/register '{"name":"rogue","machine_group":"build"}'
[ "$code" = 401 ]
check "registering without a token is refused (401)" $?
post /api/v1/workers/register '{"name":"rogue","machine_group":"build"}' "$admin"
[ "$code" = 401 ] && grep -q "not accepted here" "$tmp/ans"
check "a personal access token does not register a worker" $?
post /api/v1/work/request '{"worker_id":"01a23b71-6bfe-7086-a3c5-c7f7ac6ad0ca","wait_s":0}'
[ "$code" = 401 ]
check "asking for work without a worker token is refused (401)" $?
"$vulcan" worker --server "$url" --group build --work-dir "$tmp/w0" --log-format text \
    >"$tmp/out" 2>"$tmp/err" &
w0=$!
pids="$pids $w0"
for _ in $(seq 1 50); do kill -0 $w0 2>/dev/null || break; sleep 0.1; done
wait $w0
check "a worker without a registration token exits 1 at once" $([ $? -eq 1 ]; echo $?)
grep -q "registration token" "$tmp/err"
check "and says it needs a registration token" $?

# ---- Registration tokens: groups, uses.
"$vulcan" admin create-registration-token --database "$db" --groups build --uses 3 \
    >"$tmp/out" 2>"$tmp/err"
check "vulcan admin create-registration-token prints a token" $?
reg=$(cat "$tmp/out")
case "$reg" in vk_reg_*) ok=0 ;; *) ok=1 ;; esac
check "a vk_reg_ token" $ok
VULCAN_REGISTRATION_TOKEN=$reg "$vulcan" worker --server "$url" --group deploy \
    --work-dir "$tmp/w1" >"$tmp/out" 2>"$tmp/err"
check "a worker for a group the token does not allow exits 1" $([ $? -eq 1 ]; echo $?)
grep -q "does not allow machine group 'deploy'" "$tmp/err"
check "naming the group" $?

cat >"$tmp/forge.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "build"
    fragment { name "test"; run "sleep 4; echo tests-failed; exit 1"; }
    fragment { name "deploy"; run "echo DEPLOYED"; }
}
KDL
cat >"$tmp/other.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "other"
    fragment { name "bait"; run "true"; }
}
KDL
# The real worker, with the token in a file.
printf '%s\n' "$reg" >"$tmp/reg.token"
"$vulcan" worker --server "$url" --group build --work-dir "$tmp/w2" --name real \
    --registration-token-file "$tmp/reg.token" --sandbox none --log-format text \
    >"$tmp/real.log" 2>&1 &
real=$!
pids="$pids $real"
chain=$(submit "$tmp/forge.kdl")
for _ in $(seq 1 100); do [ "$(frag "$chain" test status)" = running ] && break; sleep 0.1; done
[ "$(frag "$chain" test status)" = running ]
check "the real worker runs the test fragment" $?
fid=$(frag "$chain" test id)
rwid=$(frag "$chain" test worker_id)

# ---- The attacker registers a worker of its own (a token without group limit, org default).
"$vulcan" admin create-registration-token --database "$db" --uses 1 >"$tmp/out" 2>"$tmp/err"
reg2=$(cat "$tmp/out")
post /api/v1/workers/register '{"name":"attacker","machine_group":"other"}' "$reg2"
[ "$code" = 200 ]
check "a registration token registers a worker" $?
awid=$(json "$tmp/ans" 'j["worker_id"]')
atok=$(json "$tmp/ans" 'j["worker_token"]')
case "$atok" in vk_wrk_*) ok=0 ;; *) ok=1 ;; esac
check "and the answer holds its vk_wrk_ worker token" $ok
post /api/v1/workers/register '{"name":"again","machine_group":"other"}' "$reg2"
[ "$code" = 401 ] && grep -q "used up" "$tmp/ans"
check "a token with one use registers no second worker (401, used up)" $?
post /api/v1/workers/heartbeat "{\"worker_id\":\"$rwid\"}" "$atok"
[ "$code" = 403 ]
check "a worker token cannot beat for another worker (403)" $?
post /api/v1/work/request "{\"worker_id\":\"$rwid\",\"wait_s\":0}" "$atok"
[ "$code" = 403 ]
check "nor ask for work as another worker (403)" $?
forged="{\"worker_id\":\"$rwid\",\"fragment_id\":\"$fid\",\"attempt\":1,\"success\":true,\"exit_code\":0}"
post /api/v1/work/result "$forged"
[ "$code" = 401 ]
check "a forged result without a token is refused (401)" $?
post /api/v1/work/result "$forged" "$atok"
[ "$code" = 401 ]
check "a worker token is not a job token (401)" $?
# The attacker claims a fragment of its own to get a real job token.
bait=$(submit "$tmp/other.kdl")
post /api/v1/work/request "{\"worker_id\":\"$awid\",\"wait_s\":5}" "$atok"
[ "$code" = 200 ]
check "the attacker's worker gets its own fragment" $?
jtok=$(json "$tmp/ans" 'j["job_token"]')
bfid=$(json "$tmp/ans" 'j["fragment_id"]')
case "$jtok" in vk_job_*) ok=0 ;; *) ok=1 ;; esac
check "with a vk_job_ job token" $ok
json "$tmp/ans" '[k for k, v in j["env"].items() if "vk_job_" in v]' >"$tmp/out"
[ "$(cat "$tmp/out")" = "['VULCAN_ID_TOKEN_REQUEST_TOKEN']" ]
check "the script gets the job token only as VULCAN_ID_TOKEN_REQUEST_TOKEN" $?
post /api/v1/work/result "$forged" "$jtok"
[ "$code" = 403 ]
check "another fragment's job token cannot post the result (403)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H "Authorization: Bearer $jtok" \
    --data-binary 'forged log' "$url/api/v1/work/$fid/log?attempt=1&offset=0")
[ "$code" = 403 ]
check "nor append to its log (403)" $?
post /api/v1/work/result "{\"worker_id\":\"$awid\",\"fragment_id\":\"$bfid\",\"attempt\":2,\"success\":true}" "$jtok"
[ "$code" = 409 ]
check "a job token is for its attempt only (409 for another)" $?
wait_status "$chain" failed 150
check "the real result stands: the chain fails" $?
[ "$(frag "$chain" deploy status)" = skipped ]
check "and deploy never runs" $?
post /api/v1/work/result "{\"worker_id\":\"$awid\",\"fragment_id\":\"$bfid\",\"attempt\":1,\"success\":true}" "$jtok"
[ "$code" = 200 ]
check "the job token posts its own attempt's result" $?
post /api/v1/work/result "{\"worker_id\":\"$awid\",\"fragment_id\":\"$bfid\",\"attempt\":1,\"success\":true}" "$jtok"
[ "$code" = 401 ]
check "and dies with its attempt (401 afterwards)" $?

# ---- Revoking a worker: it stops, its fragment runs elsewhere as the next attempt.
cat >"$tmp/long.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "build"
    fragment { name "long"; run "if [ \"$VULCAN_ATTEMPT\" = 1 ]; then sleep 60; fi; echo ran-as-$VULCAN_ATTEMPT"; }
}
KDL
long=$(submit "$tmp/long.kdl")
for _ in $(seq 1 100); do [ "$(frag "$long" long status)" = running ] && break; sleep 0.1; done
[ "$(frag "$long" long worker_id)" = "$rwid" ]
check "the real worker runs the long fragment" $?
VULCAN_TOKEN=$admin "$vulcan" workers revoke "$rwid" --server "$url" >"$tmp/out" 2>"$tmp/err"
check "vulcan workers revoke works for an admin" $?
grep -q "went back to the queue" "$tmp/out"
check "and says the fragment went back to the queue" $?
for _ in $(seq 1 150); do kill -0 $real 2>/dev/null || break; sleep 0.1; done
wait $real
check "the revoked worker exits 1" $([ $? -eq 1 ]; echo $?)
grep -q "refused this worker's credentials" "$tmp/real.log"
check "saying its credentials were refused" $?
printf '%s' "$reg" >"$tmp/reg3.token"
"$vulcan" worker --server "$url" --group build --work-dir "$tmp/w3" --name second \
    --registration-token "$reg" --sandbox none --log-format text >"$tmp/second.log" 2>&1 &
second=$!
pids="$pids $second"
sleep 0.5
tr '\0' ' ' </proc/$second/cmdline | grep -q "$reg"
check "the registration token given in argv is no longer in ps" $([ $? -ne 0 ]; echo $?)
wait_status "$long" completed 200
check "another worker completes the fragment" $?
[ "$(frag "$long" long attempt)" = 2 ]
check "as attempt 2" $?
VULCAN_TOKEN=$admin "$vulcan" logs "$long" --server "$url" >"$tmp/out" 2>"$tmp/err"
grep -q "ran-as-2" "$tmp/out"
check "its log is the second attempt's" $?

# ---- Nothing secret in the server log or the workers' logs.
for f in "$tmp/server.log" "$tmp/real.log" "$tmp/second.log"; do
    grep -Eq 'vk_(reg|wrk|job|pat)_[0-9A-Za-z]{20}' "$f" && echo "token in $f"
done >"$tmp/out"
[ ! -s "$tmp/out" ]
check "no token appears in any log" $?
kill $second $server 2>/dev/null
wait $second $server 2>/dev/null

# ---- vulcan server --workers: the local workers have a token of their own.
"$vulcan" server --require-auth --workers 1 --listen 127.0.0.1:0 --data-dir "$tmp/local" \
    --worker-sandbox none --log-format text >"$tmp/local.log" 2>&1 &
server=$!
pids="$pids $server"
url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$tmp/local.log")
    [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
admin=$(cat "$tmp/local/initial-admin-token")
cat >"$tmp/hello.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment { name "hello"; run "echo hello"; }
}
KDL
hello=$(submit "$tmp/hello.kdl")
wait_status "$hello" completed 200
check "local workers of --require-auth register and run a chain" $?
grep -Eq 'vk_(reg|wrk|job)_[0-9A-Za-z]{20}' "$tmp/local.log"
check "without a token in the log" $([ $? -ne 0 ]; echo $?)
kill $server 2>/dev/null
wait $server 2>/dev/null
finish
