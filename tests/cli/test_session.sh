#!/bin/sh
# Issue 13, console sessions and the browser guards, through the real binary with curl:
# `vulcan admin set-password` (stdin only), POST /api/v1/login and its cookie, the CSRF
# token and same-origin Origin a state-changing request with the cookie needs, failed
# logins limited per login (429 with Retry-After, also for the right password), a Host
# that is not the server's refused (DNS rebinding, 421) also without --require-auth,
# a JSON route refusing text/plain (415), logout revoking the session.
# Usage: test_session.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

start() { # data dir, log, extra args... -> $url
    d=$1 l=$2
    shift 2
    "$vulcan" server --listen 127.0.0.1:0 --data-dir "$d" --log-format text "$@" >"$l" 2>&1 &
    pids="$pids $!"
    url=
    for _ in $(seq 1 100); do
        url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$l")
        [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
login() { # password -> status in $code, cookie jar $tmp/jar, body $tmp/ans
    printf '{"login":"admin","password":"%s"}' "$1" >"$tmp/body"
    code=$(curl -s -o "$tmp/ans" -D "$tmp/hdr" -c "$tmp/jar" -w '%{http_code}' \
        -H 'Content-Type: application/json' --data-binary @"$tmp/body" "$url/api/v1/login")
}
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

start "$tmp/data" "$tmp/server.log" --require-auth
check "the server starts" $?
db="sqlite:$tmp/data/vulcan.db"
"$vulcan" admin set-password --database "$db" admin --password x >"$tmp/out" 2>"$tmp/err"
check "set-password takes no password in argv (exit 2)" $([ $? -eq 2 ]; echo $?)
printf 'short\n' | "$vulcan" admin set-password --database "$db" admin >"$tmp/out" 2>"$tmp/err"
check "a password under 8 characters is refused (exit 2)" $([ $? -eq 2 ]; echo $?)
printf 'correct horse battery\n' | "$vulcan" admin set-password --database "$db" admin \
    >"$tmp/out" 2>"$tmp/err"
check "vulcan admin set-password reads the password from stdin" $?

login "wrong password"
[ "$code" = 401 ] && grep -q "wrong login or password" "$tmp/ans"
check "a wrong password is refused (401)" $?
printf '{"login":"nobody","password":"whatever1"}' >"$tmp/body"
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$tmp/body" "$url/api/v1/login")
[ "$code" = 401 ] && grep -q "wrong login or password" "$tmp/ans"
check "an unknown login gets the same answer" $?
login "correct horse battery"
[ "$code" = 200 ]
check "the right password logs in" $?
grep -i '^set-cookie: vulcan_session=vk_ses_' "$tmp/hdr" | grep -qi 'HttpOnly' &&
    grep -i '^set-cookie:' "$tmp/hdr" | grep -qi 'SameSite=Lax'
check "the session cookie is HttpOnly and SameSite=Lax" $?
csrf=$(field "$tmp/ans" csrf_token)
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -b "$tmp/jar" "$url/api/v1/chains")
[ "$code" = 200 ]
check "the cookie reads chains" $?
curl -s -b "$tmp/jar" "$url/api/v1/session" >"$tmp/ans"
[ "$(field "$tmp/ans" csrf_token)" = "$csrf" ] && [ "$(field "$tmp/ans" login)" = admin ]
check "GET /api/v1/session gives the login and the CSRF token" $?
chain=01a23b71-6bfe-7086-a3c5-c7f7ac6ad0ca
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -b "$tmp/jar" -X POST \
    -H "Origin: $url" "$url/api/v1/chains/$chain/cancel")
[ "$code" = 403 ] && grep -q "X-CSRF-Token" "$tmp/ans"
check "a state-changing call with the cookie and no CSRF token is refused (403)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -b "$tmp/jar" -X POST \
    -H "X-CSRF-Token: $csrf" "$url/api/v1/chains/$chain/cancel")
[ "$code" = 403 ] && grep -q "Origin" "$tmp/ans"
check "or with the token but no Origin (403)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -b "$tmp/jar" -X POST -H "X-CSRF-Token: $csrf" \
    -H "Origin: http://127.0.0.1:1" "$url/api/v1/chains/$chain/cancel")
[ "$code" = 403 ] && grep -q "another origin" "$tmp/ans"
check "or from another origin (403)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -b "$tmp/jar" -X POST -H "X-CSRF-Token: $csrf" \
    -H "Origin: $url" "$url/api/v1/chains/$chain/cancel")
[ "$code" = 404 ]
check "with both the call reaches the handler (404: no such chain)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H "Authorization: Bearer $(cat "$tmp/data/initial-admin-token")" \
    -H 'Content-Type: text/plain' --data '{"content":"version \"0.1\""}' "$url/api/v1/parse")
[ "$code" = 415 ]
check "a JSON route refuses a text/plain body (415)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Host: rebind.example:8080' "$url/api/v1/chains")
[ "$code" = 421 ]
check "a Host that is not this server's is refused (421)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Host: rebind.example' "$url/health")
[ "$code" = 200 ]
check "but /health answers any Host (balancers)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -b "$tmp/jar" -X POST -H "X-CSRF-Token: $csrf" \
    -H "Origin: $url" "$url/api/v1/logout")
[ "$code" = 204 ]
check "logout" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -b "$tmp/jar" "$url/api/v1/chains")
[ "$code" = 401 ] && grep -q "revoked" "$tmp/ans"
check "the session is revoked afterwards (401)" $?

i=0
while [ $i -lt 9 ]; do login "wrong password"; i=$((i + 1)); done
login "wrong password"
login "correct horse battery"
[ "$code" = 429 ] && grep -qi '^retry-after:' "$tmp/hdr"
check "after 10 failures even the right password gets 429 with Retry-After" $?
grep -Eq 'vk_(ses|pat)_[0-9A-Za-z]{20}|correct horse' "$tmp/server.log"
check "no token or password in the server log" $([ $? -ne 0 ]; echo $?)

start "$tmp/open" "$tmp/open.log" --no-auth
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Host: rebind.example' "$url/api/v1/chains")
[ "$code" = 421 ]
check "without --require-auth the Host check still holds (421)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -X POST -H 'Origin: http://evil.example' \
    "$url/api/v1/chains/$chain/cancel")
[ "$code" = 403 ]
check "and so does the Origin check (403)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -X POST "$url/api/v1/chains/$chain/cancel")
[ "$code" = 404 ]
check "a call without Origin (curl, the CLI) passes" $?
finish
