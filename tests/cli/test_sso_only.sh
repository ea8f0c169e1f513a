#!/bin/sh
# Issue 13, SSO-only orgs through the real binary (docs/security.md "SSO-only orgs"): only an
# org admin may set sso_only (PATCH /api/v1/orgs/{org}); then a member of the org, directly
# or through a team, is refused a password login (403 sso_required naming the org, and only
# once the password is right: a wrong one is still the plain 401), while a site admin who
# is a member still logs in (break-glass) and the member's personal access token keeps
# working; turned off, the password works again. Also the SAML options: --saml-idp-metadata
# with --no-auth, a missing file or metadata without a signing certificate exit 2 or stop
# the start saying why; without it the SAML routes are 404.
# Usage: test_sso_only.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"

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
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
call() { # TOKEN METHOD PATH [BODY]: the status in $code, the answer in $tmp/out
    if [ $# -ge 4 ]; then
        code=$(curl -s -o "$tmp/out" -w '%{http_code}' -X "$2" -H "Authorization: Bearer $1" \
            -H 'Content-Type: application/json' --data-binary "$4" "$url$3")
    else
        code=$(curl -s -o "$tmp/out" -w '%{http_code}' -X "$2" -H "Authorization: Bearer $1" \
            "$url$3")
    fi
}
login() { # LOGIN PASSWORD: the status in $code, the answer in $tmp/out
    printf '{"login":"%s","password":"%s"}' "$1" "$2" >"$tmp/body"
    code=$(curl -s -o "$tmp/out" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary @"$tmp/body" "$url/api/v1/login")
}

# ---- SAML options
"$vulcan" server --no-auth --listen 127.0.0.1:0 --data-dir "$tmp/d0" \
    --saml-idp-metadata "$tmp/nothing.xml" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "cannot go with --no-auth" "$tmp/err"
check "--saml-idp-metadata with --no-auth exits 2" $?
"$vulcan" server --require-auth --listen 127.0.0.1:0 --data-dir "$tmp/d0" \
    --saml-idp-metadata "$tmp/nothing.xml" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "cannot read --saml-idp-metadata" "$tmp/err"
check "a missing metadata file exits 2" $?
cat >"$tmp/nocert.xml" <<'EOF'
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.com/">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location="https://idp.example.com/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
EOF
"$vulcan" server --require-auth --listen 127.0.0.1:0 --data-dir "$tmp/d0" \
    --saml-idp-metadata "$tmp/nocert.xml" >"$tmp/out" 2>"$tmp/err"
[ $? -ne 0 ] && grep -q "no signing certificate" "$tmp/out" "$tmp/err"
check "metadata without a signing certificate stops the start, saying so" $?
printf '<!DOCTYPE x [<!ENTITY a "b">]><x/>' >"$tmp/dtd.xml"
"$vulcan" server --require-auth --listen 127.0.0.1:0 --data-dir "$tmp/d0" \
    --saml-idp-metadata "$tmp/dtd.xml" >"$tmp/out" 2>"$tmp/err"
[ $? -ne 0 ] && grep -q "DTD" "$tmp/out" "$tmp/err"
check "metadata with a DTD is refused" $?

start_server
check "the server starts" $?
admin=$(cat "$tmp/data/initial-admin-token")
for p in login metadata; do
    code=$(curl -s -o "$tmp/out" -w '%{http_code}' "$url/api/v1/sso/saml/$p")
    [ "$code" = 404 ] && grep -q "saml-idp-metadata" "$tmp/out"
    check "without SAML, /api/v1/sso/saml/$p is 404" $?
done
code=$(curl -s -o "$tmp/out" -w '%{http_code}' -X POST -d 'SAMLResponse=x&RelayState=y' \
    "$url/api/v1/sso/saml/acs")
[ "$code" = 404 ]
check "and the ACS too" $?

# ---- SSO-only orgs
call "$admin" POST /api/v1/orgs '{"slug":"acme"}'
[ "$code" = 201 ]
check "the site admin creates org acme" $?
for u in bob carol root2; do
    sa=false
    [ "$u" = root2 ] && sa=true
    call "$admin" POST /api/v1/users "{\"login\":\"$u\",\"password\":\"$u-password-123\",\"site_admin\":$sa}"
    [ "$code" = 201 ]
    check "user $u is created" $?
done
call "$admin" POST /api/v1/orgs/acme/grants '{"user":"bob","role":"developer"}'
[ "$code" = 201 ]
check "bob is a developer of acme" $?
call "$admin" POST /api/v1/orgs/acme/grants '{"user":"root2","role":"reader"}'
[ "$code" = 201 ]
check "site admin root2 is a reader of acme" $?
call "$admin" POST /api/v1/orgs/acme/teams '{"name":"builders"}'
call "$admin" POST /api/v1/orgs/acme/grants '{"team":"builders","role":"reader"}'
call "$admin" PUT /api/v1/orgs/acme/teams/builders/members/carol
[ "$code" -lt 300 ]
check "carol is in acme through team builders" $?

login bob bob-password-123
[ "$code" = 200 ]
check "bob logs in with his password while acme allows it" $?
# bob makes himself a token with his session (cookie, CSRF token, same-origin Origin).
curl -s -c "$tmp/jar" -o "$tmp/ans" -H 'Content-Type: application/json' \
    --data-binary @"$tmp/body" "$url/api/v1/login"
csrf=$(field "$tmp/ans" csrf_token)
code=$(curl -s -o "$tmp/out" -w '%{http_code}' -b "$tmp/jar" -H "X-CSRF-Token: $csrf" \
    -H "Origin: $url" -H 'Content-Type: application/json' \
    --data-binary '{"name":"ci","scopes":["read"],"expires_in_s":3600}' "$url/api/v1/tokens")
[ "$code" = 201 ]
check "bob makes a personal access token" $?
pat=$(field "$tmp/out" token)

bobtok=$pat
call "$bobtok" PATCH /api/v1/orgs/acme '{"sso_only":true}'
[ "$code" = 403 ]
check "a developer of acme may not set sso_only (403)" $?
call "$admin" PATCH /api/v1/orgs/acme '{"sso_only":"yes"}'
[ "$code" = 400 ] && grep -q "true or false" "$tmp/out"
check "sso_only must be a boolean (400)" $?
call "$admin" PATCH /api/v1/orgs/acme '{"sso_only":true,"colour":"red"}'
[ "$code" = 400 ]
check "an unknown setting is 400" $?
call "$admin" PATCH /api/v1/orgs/nosuch '{"sso_only":true}'
[ "$code" = 404 ]
check "an unknown org is 404" $?
code=$(curl -s -o "$tmp/out" -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' \
    --data-binary '{"sso_only":true}' "$url/api/v1/orgs/acme")
[ "$code" = 401 ]
check "anonymously 401" $?
VULCAN_TOKEN=$bobtok "$vulcan" orgs set acme --sso-only on --server "$url" >"$tmp/out" 2>"$tmp/err"
[ $? -ne 0 ] && grep -q "needs the admin role" "$tmp/err"
check "vulcan orgs set by a developer fails, naming the admin role" $?
"$vulcan" orgs set acme --sso-only maybe --server "$url" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "on|off" "$tmp/err"
check "vulcan orgs set takes on or off only (exit 2)" $?
VULCAN_TOKEN=$admin "$vulcan" orgs set acme --sso-only on --server "$url" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 0 ] && grep -q "org acme: sso_only on" "$tmp/out"
check "the org admin sets sso_only (vulcan orgs set acme --sso-only on)" $?
call "$admin" PATCH /api/v1/orgs/acme '{"sso_only":true}'
[ "$code" = 200 ] && grep -q '"sso_only": *true' "$tmp/out"
check "PATCH /api/v1/orgs/acme answers the org with sso_only" $?
call "$admin" GET /api/v1/orgs
python3 -c 'import json,sys; o={x["slug"]:x for x in json.load(open(sys.argv[1]))["orgs"]}; sys.exit(0 if o["acme"]["sso_only"] and not o["default"]["sso_only"] else 1)' "$tmp/out"
check "GET /api/v1/orgs shows it" $?

login bob bob-password-123
[ "$code" = 403 ] && grep -q '"sso_required"' "$tmp/out" && grep -q "acme" "$tmp/out"
check "bob's password login is refused: 403 sso_required naming acme" $?
login bob wrong-password-1
[ "$code" = 401 ] && ! grep -q acme "$tmp/out"
check "a wrong password still gets the plain 401, naming no org" $?
login carol carol-password-123
[ "$code" = 403 ] && grep -q '"sso_required"' "$tmp/out"
check "carol, a member through a team, is refused too" $?
login root2 root2-password-123
[ "$code" = 200 ]
check "a site admin who is a member still logs in (break-glass)" $?
call "$bobtok" GET /api/v1/user
[ "$code" = 200 ] && grep -q '"login": *"bob"' "$tmp/out"
check "bob's personal access token keeps working" $?
grep -q 'password login refused: the org is SSO-only' "$tmp/server.log"
check "the refusal is logged" $?

call "$admin" PATCH /api/v1/orgs/acme '{"sso_only":false}'
[ "$code" = 200 ]
check "sso_only is turned off" $?
login bob bob-password-123
[ "$code" = 200 ]
check "bob's password works again" $?
stop_server
! grep -q "$pat" "$tmp/server.log"
check "the token is not in the log" $?
finish
