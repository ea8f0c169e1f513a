#!/bin/sh
# Issue 13, SSO configuration and failures through the real binary (the login itself is
# tests/browser/sso.test.js): --oidc-* options that do not go together exit 2; a provider
# that is down does not stop the server, but the login route answers 502 saying why (a
# page for a browser); a callback with an unknown state, or without the state cookie of
# the browser that started the login, is 401; a `next` that is not a console page is 400;
# without --oidc-issuer the routes are 404 and the session offers no SSO; the client
# secret is never in the log.
# Usage: test_sso.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"

secret="the-client-secret-0123456789"
printf '%s\n' "$secret" >"$tmp/secret"
chmod 600 "$tmp/secret"
# A port nothing listens on: the provider is down.
down=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
issuer="http://127.0.0.1:$down"

"$vulcan" server --no-auth --listen 127.0.0.1:0 --data-dir "$tmp/d0" --oidc-issuer "$issuer" \
    --oidc-client-id vulcan --oidc-client-secret-file "$tmp/secret" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "cannot go with --no-auth" "$tmp/err"
check "--oidc-issuer with --no-auth exits 2" $?
"$vulcan" server --require-auth --listen 127.0.0.1:0 --data-dir "$tmp/d0" \
    --oidc-issuer "$issuer" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "oidc-client-id" "$tmp/err"
check "--oidc-issuer without a client id exits 2" $?
"$vulcan" server --require-auth --listen 127.0.0.1:0 --data-dir "$tmp/d0" \
    --oidc-issuer "$issuer" --oidc-client-id vulcan \
    --oidc-client-secret-file "$tmp/nothing" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "cannot read --oidc-client-secret-file" "$tmp/err"
check "a missing secret file exits 2" $?

url=
start_server() { # extra options...; on a free port, read back from the start-up line
    : >"$tmp/server.log"
    "$vulcan" server --require-auth --listen 127.0.0.1:0 --data-dir "$tmp/data" \
        --log-format text "$@" >"$tmp/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$tmp/server.log")
        [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
stop_server() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }

VULCAN_OIDC_CLIENT_SECRET_FILE="$tmp/secret" start_server --oidc-issuer "$issuer" \
    --oidc-client-id vulcan
check "the server starts while the provider is down (secret file from the environment)" $?
grep -q "OIDC discovery failed" "$tmp/server.log"
check "and warns that discovery failed" $?
curl -s "$url/api/v1/session" >"$tmp/out"
grep -q '"sso": *\["oidc"\]' "$tmp/out"
check "the session offers SSO" $?
code=$(curl -s -o "$tmp/out" -w '%{http_code}' "$url/api/v1/sso/oidc/login?next=%23%2Fchains")
[ "$code" = 502 ] && grep -q "cannot fetch the identity provider's discovery document" "$tmp/out"
check "the login route answers 502 naming the discovery document" $?
code=$(curl -s -o "$tmp/out" -w '%{http_code}' -H 'Accept: text/html' "$url/api/v1/sso/oidc/login")
[ "$code" = 502 ] && grep -q '<p id="sso-error">cannot fetch' "$tmp/out" && grep -q 'href="/#/login"' "$tmp/out"
check "a browser gets a page saying so, with a link back to the login page" $?
code=$(curl -s -o "$tmp/out" -w '%{http_code}' "$url/api/v1/sso/oidc/login?next=https://evil.example.com/")
[ "$code" = 400 ]
check "a next that is not a console page is 400" $?
st=0123456789012345678901234567890123456789012
code=$(curl -s -o "$tmp/out" -w '%{http_code}' "$url/api/v1/sso/oidc/callback?code=x&state=$st")
[ "$code" = 401 ] && grep -q "did not start the login" "$tmp/out"
check "a callback without the browser's state cookie is 401" $?
code=$(curl -s -o "$tmp/out" -w '%{http_code}' -b "vulcan_sso_state=$st" \
    "$url/api/v1/sso/oidc/callback?code=x&state=$st")
[ "$code" = 401 ] && grep -q "unknown, used or expired state" "$tmp/out"
check "a callback with an unknown state is 401" $?
code=$(curl -s -o "$tmp/out" -w '%{http_code}' "$url/api/v1/sso/oidc/callback?code=x")
[ "$code" = 401 ]
check "a callback without a state is 401" $?
stop_server
! grep -q "$secret" "$tmp/server.log"
check "the client secret is not in the log" $?

start_server
check "the server starts without SSO" $?
code=$(curl -s -o "$tmp/out" -w '%{http_code}' "$url/api/v1/sso/oidc/login")
[ "$code" = 404 ] && grep -q "oidc-issuer" "$tmp/out"
check "without --oidc-issuer the login route is 404" $?
curl -s "$url/api/v1/session" >"$tmp/out"
grep -q '"sso": *\[\]' "$tmp/out"
check "and the session offers no SSO" $?
stop_server

finish
