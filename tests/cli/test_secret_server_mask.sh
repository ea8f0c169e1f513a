#!/bin/sh
# Issue 15, "the server masks again when it stores a log": a worker that does not mask (this
# script, speaking the worker protocol with curl and the credentials of a real registration)
# claims an attempt whose workflow uses a secret, finds its value in the work item and
# posts it raw in a log chunk, cut in two uploads; the stored log has `***` in its place.
# Then the same after a server restart between the claim and the log: the new process never
# saw the claim, opens the attempt's stored secrets again and still masks the value.
# Usage: test_secret_server_mask.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
spid=
trap '[ -n "$spid" ] && kill -9 $spid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

start() { # log -> $url, $spid
    : >"$1"
    "$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" --workers 0 \
        --log-format text >"$1" 2>&1 &
    spid=$!
    url=
    for _ in $(seq 1 100); do
        url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$1")
        [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    [ -n "$url" ]
}
start "$tmp/server.log"
check "the server starts" $?
admin=$(cat "$tmp/data/initial-admin-token")
value="srv-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$value" | VULCAN_TOKEN=$admin "$vulcan" secrets set --server "$url" DEPLOY_KEY \
    >"$tmp/set.out" 2>&1
check "the secret is set" $?

cat >"$tmp/wf.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment { name "deploy"; secrets "DEPLOY_KEY"; run "true"; }
}
KDL
VULCAN_TOKEN=$admin "$vulcan" submit --server "$url" "$tmp/wf.kdl" >"$tmp/sub.out" 2>&1
check "the chain is submitted" $?

reg=$("$vulcan" admin create-registration-token --database "sqlite:$tmp/data/vulcan.db")
curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $reg" \
    -d '{"machine_group":"default","name":"raw","version":"1"}' \
    "$url/api/v1/workers/register" >"$tmp/reg.json"
wid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["worker_id"])' "$tmp/reg.json")
wtok=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["worker_token"])' "$tmp/reg.json")
[ -n "$wid" ] && [ -n "$wtok" ]
check "a worker registers with a registration token" $?
curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $wtok" \
    -d "{\"worker_id\":\"$wid\",\"wait_s\":10}" "$url/api/v1/work/request" >"$tmp/work.json"
python3 - "$tmp/work.json" "$value" >"$tmp/work.sh" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))
s = {x["name"]: x["value"] for x in w.get("secrets", [])}
assert s.get("DEPLOY_KEY") == sys.argv[2], w.keys()
print("fid=%s attempt=%d jtok=%s" % (w["fragment_id"], w["attempt"], w["job_token"]))
PY
check "the work item carries the secret's value" $?
. "$tmp/work.sh"
half=$(printf '%s' "$value" | cut -c1-9)
rest=$(printf '%s' "$value" | cut -c10-)
printf 'before %s' "$half" >"$tmp/c1"
printf '%s after\n' "$rest" >"$tmp/c2"
n1=$(wc -c <"$tmp/c1")
curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $jtok" \
    -H 'Content-Type: application/octet-stream' --data-binary @"$tmp/c1" \
    "$url/api/v1/work/$fid/log?attempt=$attempt&offset=0" >"$tmp/st1"
curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $jtok" \
    -H 'Content-Type: application/octet-stream' --data-binary @"$tmp/c2" \
    "$url/api/v1/work/$fid/log?attempt=$attempt&offset=$n1" >"$tmp/st2"
[ "$(cat "$tmp/st1")" = 204 ] && [ "$(cat "$tmp/st2")" = 204 ]
check "the raw value is posted in two chunks (204)" $?
curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $jtok" \
    -d "{\"worker_id\":\"$wid\",\"fragment_id\":\"$fid\",\"attempt\":$attempt,\"success\":true,\"exit_code\":0}" \
    "$url/api/v1/work/result" >/dev/null
curl -s -H "Authorization: Bearer $admin" "$url/api/v1/fragments/$fid/log" >"$tmp/log"
[ "$(cat "$tmp/log")" = "before *** after" ]
check "the stored log is 'before *** after'" $?
! grep -qF "$value" "$tmp/log" "$tmp/server.log"
check "the value is neither in the stored log nor in the server log" $?

# ---- a restart between the claim and the log
VULCAN_TOKEN=$admin "$vulcan" submit --server "$url" "$tmp/wf.kdl" >"$tmp/sub.out" 2>&1 &&
    curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $wtok" \
        -d "{\"worker_id\":\"$wid\",\"wait_s\":10}" "$url/api/v1/work/request" >"$tmp/work.json" &&
    python3 - "$tmp/work.json" "$value" >"$tmp/work.sh" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))
s = {x["name"]: x["value"] for x in w.get("secrets", [])}
assert s.get("DEPLOY_KEY") == sys.argv[2], w.keys()
print("fid=%s attempt=%d jtok=%s" % (w["fragment_id"], w["attempt"], w["job_token"]))
PY
check "a second attempt is claimed with the secret" $?
. "$tmp/work.sh"
kill "$spid" && wait "$spid" 2>/dev/null
start "$tmp/server2.log"
check "the server starts again" $?
printf 'after restart %s end\n' "$value" >"$tmp/c3"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $jtok" \
    -H 'Content-Type: application/octet-stream' --data-binary @"$tmp/c3" \
    "$url/api/v1/work/$fid/log?attempt=$attempt&offset=0")
[ "$code" = 204 ]
check "the raw value is posted to the new server process (204)" $?
curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $jtok" \
    -d "{\"worker_id\":\"$wid\",\"fragment_id\":\"$fid\",\"attempt\":$attempt,\"success\":true,\"exit_code\":0}" \
    "$url/api/v1/work/result" >/dev/null
curl -s -H "Authorization: Bearer $admin" "$url/api/v1/fragments/$fid/log" >"$tmp/log"
[ "$(cat "$tmp/log")" = "after restart *** end" ] && ! grep -qF "$value" "$tmp/log" "$tmp/server2.log"
check "after the restart the stored log is still masked ('after restart *** end')" $?
finish
