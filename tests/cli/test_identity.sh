#!/bin/sh
# Issue 13, managing identity through the CLI and the API against `vulcan server
# --require-auth`: the site admin creates an org, a user, a team with a grant; the user's
# token sees the org as a reader, gets 403 on its admin routes and 404 on an org it has
# no role in; tokens are listed and revoked (a revoked token gets 401); a read-scoped
# token cannot mint a write token; a registration token made through the API registers
# a worker. Without --require-auth the identity routes answer 403.
# Usage: test_identity.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

data="$tmp/data"
db="sqlite:$data/vulcan.db"
start_server() { # log file, extra options...
    log=$1
    shift
    : >"$log"
    "$vulcan" server --listen 127.0.0.1:0 --log-format text "$@" >"$log" 2>&1 &
    pid=$!
    pids="$pids $pid"
    url=
    for _ in $(seq 1 100); do
        url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$log")
        [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
start_server "$tmp/server.log" --require-auth --data-dir "$data"
check "the server starts with --require-auth" $?
server=$pid
admin=$(cat "$data/initial-admin-token")

json() { # python3 expression on the JSON in file $1 (as j)
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null
}
req() { # method, path, token, [body] -> status in $code, body in $tmp/ans
    if [ -n "${4:-}" ]; then
        code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' \
            -H "Authorization: Bearer $3" --data "$4" "$url$2")
    else
        code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $3" "$url$2")
    fi
}
v() { # run the CLI as token $1
    t=$1
    shift
    VULCAN_TOKEN=$t "$vulcan" "$@" --server "$url" >"$tmp/out" 2>"$tmp/err"
}

# ---- Every command has --help naming its options; a bad subcommand is usage (2).
for c in whoami tokens users orgs teams grants registration-tokens; do
    "$vulcan" $c --help >"$tmp/out" 2>"$tmp/err" && grep -q "^usage: vulcan $c" "$tmp/out" &&
        grep -q -- "--server" "$tmp/out" && grep -q -- "--json" "$tmp/out"
    check "vulcan $c --help" $?
done
"$vulcan" tokens frobnicate >"$tmp/out" 2>"$tmp/err"
check "an unknown subcommand exits 2" $([ $? -eq 2 ]; echo $?)
"$vulcan" users create alice --password hunter22 >"$tmp/out" 2>"$tmp/err"
check "a password on the command line is not an option (exit 2)" $([ $? -eq 2 ]; echo $?)

# ---- The site admin: whoami, an org, a user, a team with a grant.
v "$admin" whoami
check "vulcan whoami works for the admin" $?
grep -q "^admin" "$tmp/out" && grep -q "site admin  yes" "$tmp/out" && grep -q "default (admin)" "$tmp/out"
check "and names the login, site admin and the default org" $?
v "$admin" orgs create acme --name "Acme Inc"
check "vulcan orgs create acme" $?
v "$admin" orgs create acme
check "a taken slug exits 1" $([ $? -eq 1 ]; echo $?)
v "$admin" orgs create secret
check "vulcan orgs create secret" $?
v "$admin" orgs ls
grep -q "^acme .*admin" "$tmp/out" && grep -q "^secret" "$tmp/out"
check "orgs ls shows them, with the creator as admin" $?
printf 'correct horse battery\n' | v "$admin" users create alice --password-stdin --email a@example.org
check "vulcan users create alice --password-stdin" $?
v "$admin" users create alice
check "a taken login exits 1" $([ $? -eq 1 ]; echo $?)
grep -q "exists already" "$tmp/err"
check "saying it exists" $?
printf 'short\n' | v "$admin" users create bob --password-stdin
check "a too short password is refused" $([ $? -eq 1 ]; echo $?)
v "$admin" users create bob
check "vulcan users create bob (no password)" $?
v "$admin" teams create eng --org acme
check "vulcan teams create eng" $?
v "$admin" teams create backend --parent eng --org acme
check "a sub-team" $?
v "$admin" teams add-member backend alice --org acme
check "vulcan teams add-member" $?
v "$admin" users create carol.x@corp
v "$admin" teams add-member eng carol.x@corp --org acme
check "a login with '.' and '@' goes through the path" $?
v "$admin" teams ls --org acme
grep -q "^backend .*eng .*alice" "$tmp/out" && grep -q "^eng .*carol.x@corp" "$tmp/out"
check "teams ls shows the parent and the members" $?
v "$admin" teams remove-member eng carol.x@corp --org acme
check "vulcan teams remove-member" $?
v "$admin" teams remove-member eng carol.x@corp --org acme
check "removing a non-member exits 1" $([ $? -eq 1 ]; echo $?)
v "$admin" grants add reader --team eng --org acme
check "vulcan grants add reader --team eng" $?
v "$admin" grants add developer --user bob --org acme
check "vulcan grants add developer --user bob" $?
v "$admin" grants ls --org acme --json
[ "$(json "$tmp/out" 'len(j["grants"])')" = 3 ]
check "grants ls: the creator, the team and bob" $?
bobgrant=$(json "$tmp/out" '[g["id"] for g in j["grants"] if g["user"]=="bob"][0]')
v "$admin" grants rm "$bobgrant" --org acme
check "vulcan grants rm" $?
v "$admin" grants ls --org acme
grep -q "bob" "$tmp/out"
check "the grant is gone" $([ $? -ne 0 ]; echo $?)

# ---- Alice: a reader of acme through her team's parent, nothing in secret.
"$vulcan" admin create-token --database "$db" --user alice --scopes read,write >"$tmp/out" 2>"$tmp/err"
check "a token for alice (vulcan admin create-token)" $?
alice=$(cat "$tmp/out")
v "$alice" whoami --json
[ "$(json "$tmp/out" '[o["role"] for o in j["orgs"] if o["slug"]=="acme"][0]')" = reader ]
check "alice is a reader of acme (team backend under eng)" $?
v "$alice" orgs ls
grep -q "^acme" "$tmp/out" && ! grep -q "^secret" "$tmp/out"
check "alice's orgs: acme, not secret" $?
v "$alice" teams ls --org acme
check "alice sees acme's teams" $?
req GET /api/v1/orgs/acme/grants "$alice"
[ "$code" = 403 ] && grep -q "needs the admin role" "$tmp/ans"
check "alice gets 403 on acme's grants (admin)" $?
req POST /api/v1/orgs/acme/registration-tokens "$alice" '{}'
[ "$code" = 403 ]
check "and on making a registration token" $?
v "$alice" grants add admin --user alice --org acme
check "alice cannot grant herself admin (exit 1)" $([ $? -eq 1 ]; echo $?)
req GET /api/v1/orgs/secret/teams "$alice"
[ "$code" = 404 ]
check "an org alice has no role in answers 404" $?
req GET /api/v1/orgs/nosuchorg/teams "$alice"
[ "$code" = 404 ]
check "like an org that does not exist" $?
req POST /api/v1/users "$alice" '{"login":"mallory"}'
[ "$code" = 403 ]
check "alice cannot create users (site admin)" $?
req POST /api/v1/orgs "$alice" '{"slug":"mine"}'
[ "$code" = 403 ]
check "nor orgs" $?

# ---- Tokens: create, list, revoke; scopes never beyond the maker's.
v "$alice" tokens create laptop --scopes read
check "vulcan tokens create laptop --scopes read" $?
ro=$(cat "$tmp/out")
case "$ro" in vk_pat_*) ok=0 ;; *) ok=1 ;; esac
check "prints a vk_pat_ token" $ok
v "$ro" tokens create more --scopes read,write
check "a read token cannot mint a write token (exit 1)" $([ $? -eq 1 ]; echo $?)
grep -q "scopes its maker's token has" "$tmp/err"
check "saying why" $?
v "$ro" tokens create same --scopes read --expires-in 1h
check "but can mint a read token" $?
short=$(cat "$tmp/out")
v "$short" tokens create longer --scopes read
check "a token that expires cannot mint one that does not (exit 1)" $([ $? -eq 1 ]; echo $?)
grep -q "cannot outlive it" "$tmp/err"
check "saying so" $?
v "$alice" tokens create acme-only --scopes read --org acme
check "a token restricted to acme" $?
only=$(cat "$tmp/out")
req GET /api/v1/orgs/acme/teams "$only"
[ "$code" = 200 ]
check "works in acme" $?
req POST /api/v1/tokens "$only" '{"scopes":"read","org":"default"}'
[ "$code" = 403 ] || [ "$code" = 404 ]
check "and makes no token for another org" $?
v "$alice" tokens ls --json
[ "$(json "$tmp/out" 'len(j["tokens"])')" = 4 ]
check "tokens ls lists alice's four tokens" $?
grep -q "$ro" "$tmp/out" || grep -q '"hash"' "$tmp/out"
check "without their values or hashes" $([ $? -ne 0 ]; echo $?)
roid=$(json "$tmp/out" '[t["id"] for t in j["tokens"] if t["name"]=="laptop"][0]')
v "$admin" tokens revoke "$roid"
check "another user's token cannot be revoked (exit 1, not found)" $([ $? -eq 1 ]; echo $?)
v "$alice" tokens revoke "$roid"
check "vulcan tokens revoke" $?
v "$ro" whoami
check "the revoked token is refused" $([ $? -eq 1 ]; echo $?)
req GET /api/v1/user "$ro"
[ "$code" = 401 ] && grep -q "token revoked" "$tmp/ans"
check "with 401 token revoked" $?
v "$alice" tokens ls
grep -q "revoked" "$tmp/out"
check "tokens ls shows it revoked" $?

# ---- Registration tokens through the API register a worker.
v "$admin" registration-tokens create --group build --uses 1 --name ci --org acme
check "vulcan registration-tokens create" $?
reg=$(cat "$tmp/out")
case "$reg" in vk_reg_*) ok=0 ;; *) ok=1 ;; esac
check "prints a vk_reg_ token" $ok
v "$admin" registration-tokens ls --org acme
grep -q "^.* ci .*build .*1 .*active" "$tmp/out" && ! grep -q "$reg" "$tmp/out"
check "registration-tokens ls shows it without its value" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $reg" --data '{"name":"w1","machine_group":"build"}' \
    "$url/api/v1/workers/register")
[ "$code" = 200 ] && json "$tmp/ans" 'j["worker_token"]' | grep -q '^vk_wrk_'
check "a worker registers with it (200, worker_token)" $?
v "$admin" registration-tokens create --org acme
reg2=$(cat "$tmp/out")
v "$admin" registration-tokens ls --org acme --json
rid=$(json "$tmp/out" 'j["registration_tokens"][0]["id"]')
v "$admin" registration-tokens revoke "$rid" --org secret
check "a token of another org is not found there (exit 1)" $([ $? -eq 1 ]; echo $?)
v "$admin" registration-tokens revoke "$rid" --org acme
check "vulcan registration-tokens revoke" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $reg2" --data '{"name":"w2","machine_group":"build"}' \
    "$url/api/v1/workers/register")
[ "$code" = 401 ]
check "a revoked registration token registers nothing (401)" $?

# ---- Bounds and bad input.
req POST /api/v1/orgs "$admin" '{"slug":"Bad Slug"}'
[ "$code" = 400 ]
check "a bad slug is 400" $?
req POST /api/v1/orgs/acme/grants "$admin" '{"user":"alice","role":"owner"}'
[ "$code" = 400 ]
check "an unknown role is 400" $?
req POST /api/v1/tokens "$admin" '{"scopes":"read","extra":1}'
[ "$code" = 400 ] && grep -q "unknown field" "$tmp/ans"
check "an unknown field is 400" $?
long=$(python3 -c 'print("x"*200)')
req POST /api/v1/tokens "$admin" "{\"scopes\":\"read\",\"name\":\"$long\"}"
[ "$code" = 400 ]
check "a 200-byte token name is 400" $?

grep -Eq 'vk_(reg|wrk|pat)_[0-9A-Za-z]{20}' "$tmp/server.log"
check "no token appears in the server log" $([ $? -ne 0 ]; echo $?)
kill $server 2>/dev/null
wait $server 2>/dev/null

# ---- Without --require-auth: 403.
start_server "$tmp/open.log" --no-auth --data-dir "$tmp/open"
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' "$url/api/v1/user")
[ "$code" = 403 ] && grep -q "runs with --no-auth" "$tmp/ans"
check "without --require-auth the identity routes answer 403" $?
kill $pid 2>/dev/null
wait $pid 2>/dev/null
grep -l "Sanitizer" "$tmp/server.log" "$tmp/open.log" >"$tmp/out" 2>/dev/null
check "no sanitizer report from the servers (an ASan build)" $([ ! -s "$tmp/out" ]; echo $?)
finish
