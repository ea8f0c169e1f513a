#!/bin/sh
# Issue 13 through the real binary: `vulcan server --require-auth` bootstraps a site admin
# and writes their token once (0600); the CLI is refused without a token and served with
# VULCAN_TOKEN; `vulcan admin create-token` makes a token on the database directly, and a
# read-scoped one cannot cancel.
# Usage: test_auth.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"

data="$tmp/data"
url=
start_server() { # on a free port, read back from the start-up line
    : >"$tmp/server.log"
    "$vulcan" server --require-auth --listen 127.0.0.1:0 --data-dir "$data" \
        --log-format text >"$tmp/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$tmp/server.log")
        [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
stop_server() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }

start_server
check "the server starts" $?
[ -f "$data/initial-admin-token" ] && [ "$(stat -c %a "$data/initial-admin-token")" = 600 ]
check "the initial admin token is written, mode 0600" $?
admin=$(cat "$data/initial-admin-token")
case "$admin" in vk_pat_*) ok=0 ;; *) ok=1 ;; esac
check "it is a personal access token" $ok
grep -q "initial-admin-token" "$tmp/server.log" && ! grep -q "$admin" "$tmp/server.log"
check "the log names the file, never the token" $?

VULCAN_TOKEN= "$vulcan" chains ls --server "$url" >"$tmp/out" 2>"$tmp/err"
check "without a token the CLI exits 1" $([ $? -eq 1 ]; echo $?)
grep -q "needs a token" "$tmp/err"
check "and says a token is needed" $?
VULCAN_TOKEN=$admin "$vulcan" chains ls --server "$url" >"$tmp/out" 2>"$tmp/err"
check "with VULCAN_TOKEN it is served" $?
curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: text/plain' \
    --data 'version "0.1"' "$url/api/v1/parse" >"$tmp/out"
[ "$(cat "$tmp/out")" = 401 ]
check "an anonymous submit is refused (401)" $?

"$vulcan" admin create-token --database "sqlite:$data/vulcan.db" --user admin --scopes read \
    >"$tmp/out" 2>"$tmp/err"
check "vulcan admin create-token works on the database" $?
reader=$(cat "$tmp/out")
VULCAN_TOKEN=$reader "$vulcan" chains ls --server "$url" >"$tmp/out" 2>"$tmp/err"
check "the read-scoped token lists chains" $?
VULCAN_TOKEN=$reader "$vulcan" chains cancel 01a23b71-6bfe-7086-a3c5-c7f7ac6ad0ca \
    --server "$url" >"$tmp/out" 2>"$tmp/err"
grep -q "needs the developer role" "$tmp/err"
check "but cannot cancel: it needs the developer role" $?
"$vulcan" admin create-token --database "sqlite:$data/vulcan.db" --user nobody >"$tmp/out" 2>"$tmp/err"
check "an unknown user is refused (exit 1)" $([ $? -eq 1 ]; echo $?)
grep -q "no user 'nobody'" "$tmp/err"
check "and named" $?
"$vulcan" admin create-token --user admin >"$tmp/out" 2>"$tmp/err"
check "without --database it is a usage error (exit 2)" $([ $? -eq 2 ]; echo $?)

stop_server
before=$(stat -c %Y "$data/initial-admin-token")
sleep 1
start_server
check "the server restarts" $?
[ "$(cat "$data/initial-admin-token")" = "$admin" ] && [ "$(stat -c %Y "$data/initial-admin-token")" = "$before" ]
check "a restart makes no second admin token" $?
VULCAN_TOKEN=$admin "$vulcan" chains ls --server "$url" >"$tmp/out" 2>"$tmp/err"
check "the first token still works" $?
stop_server
finish
