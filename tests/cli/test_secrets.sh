#!/bin/sh
# Issue 15 (secrets), each point against a real `vulcan server` on loopback with a local
# worker: set/ls/rm through the CLI (values never in argv, never answered); a chain gets
# `secrets` as variables and `secret-file` as a 0600 file outside the workspace, gone when
# the attempt ends, and no process left holds a value in /proc/*/environ; an unknown name
# fails the chain with file:line:col; the SQLite file and its WAL hold none of 100 random
# values; a key rotation keeps every value and the old key no longer starts the server; a
# wrong-mode key file is refused; a GitHub pull request from a fork runs without secrets
# while one from the base repository gets them; a protected secret reaches main and not a
# feature branch. With VK_TEST_PG_URL (scripts/pg-test.sh): the same 100 values are not in
# a pg_dump of a PostgreSQL store.
# Usage: test_secrets.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

start() { # data dir, log, extra... -> $url, $spid
    d=$1 l=$2
    shift 2
    : >"$l"
    "$vulcan" server --listen 127.0.0.1:0 --data-dir "$d" --log-format text "$@" >"$l" 2>&1 &
    spid=$!
    pids="$pids $spid"
    url=
    for _ in $(seq 1 100); do
        url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$l")
        [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    export VULCAN_SERVER="$url"
    [ -n "$url" ]
}
stop() {
    kill "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
}
chain_of() { # submit output -> the chain id (first line)
    head -n 1 "$1"
}
status_of() { # chain id -> status
    curl -fs "$url/api/v1/chains/$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print((d.get("chain") or d)["status"])'
}
wait_done() { # chain id
    [ -n "$1" ] || return 1
    for _ in $(seq 1 300); do
        s=$(status_of "$1")
        case $s in completed | failed | cancelled) return 0 ;; esac
        sleep 0.1
    done
    return 1
}
logs_of() { # chain id -> the text of its logs
    "$vulcan" logs "$1" 2>/dev/null
}

start "$tmp/data" "$tmp/server.log" --no-auth --workers 1
check "the server starts and makes its key" $?
[ "$(stat -c %a "$tmp/data/secrets.key")" = 600 ] && [ "$(stat -c %s "$tmp/data/secrets.key")" = 32 ]
check "the key file is 32 bytes, mode 0600" $?

# ---- CLI: set, ls, rm; the value from stdin or a file, never from argv.
printf 'npm_Tok3n-value-0001' | "$vulcan" secrets set NPM_TOKEN >"$tmp/out" 2>"$tmp/err"
check "secrets set NPM_TOKEN (stdin)" $?
printf 'line-one-of-kubeconfig\nline-two-of-kubeconfig\n' >"$tmp/kube"
"$vulcan" secrets set --from-file "$tmp/kube" KUBECONFIG >"$tmp/out" 2>"$tmp/err"
check "secrets set --from-file KUBECONFIG" $?
"$vulcan" secrets set NPM_TOKEN npm_Tok3n-value-0001 </dev/null >"$tmp/out" 2>"$tmp/err"
[ $? = 2 ] && grep -q "never from the command line" "$tmp/err"
check "a value in argv is refused" $?
printf 'short' | "$vulcan" secrets set SHORT_ONE >"$tmp/out" 2>"$tmp/err"
[ $? = 1 ] && grep -q "at least 6 bytes" "$tmp/err"
check "a 5-byte value is refused with what to do" $?
printf 'long-enough' | "$vulcan" secrets set lower_case >"$tmp/out" 2>"$tmp/err"
[ $? = 2 ] && grep -q "A-Z_" "$tmp/err"
check "a name that is not [A-Z_][A-Z0-9_]* is refused" $?
head -c 65537 /dev/zero | tr '\0' a | "$vulcan" secrets set TOO_LONG >"$tmp/out" 2>"$tmp/err"
[ $? = 1 ]
check "a value over 64 KiB is refused" $?
code=$(curl -s -o "$tmp/out" -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
    --data "{\"value\": \"$(head -c 65537 /dev/zero | tr '\0' b)\"}" "$url/api/v1/orgs/default/secrets/TOO_LONG")
[ "$code" = 400 ]
check "the API refuses a value over 64 KiB too (400)" $?
"$vulcan" secrets ls >"$tmp/out" 2>"$tmp/err" && grep -q NPM_TOKEN "$tmp/out" &&
    grep -q KUBECONFIG "$tmp/out" && ! grep -q "npm_Tok3n" "$tmp/out"
check "secrets ls names them and shows no value" $?
"$vulcan" secrets ls --json >"$tmp/out" 2>"$tmp/err" && ! grep -q "npm_Tok3n\|line-one" "$tmp/out"
check "secrets ls --json holds no value" $?
printf 'to-be-removed' | "$vulcan" secrets set GONE_SOON >/dev/null 2>&1 &&
    "$vulcan" secrets rm GONE_SOON >"$tmp/out" 2>"$tmp/err" && ! "$vulcan" secrets ls | grep -q GONE_SOON
check "secrets rm" $?
"$vulcan" secrets rm GONE_SOON >"$tmp/out" 2>"$tmp/err"
[ $? = 1 ]
check "removing it again fails" $?
"$vulcan" secrets set --help >"$tmp/out" && grep -q "stdin" "$tmp/out" &&
    "$vulcan" secrets ls --help >/dev/null && "$vulcan" secrets rm --help >/dev/null &&
    "$vulcan" secrets --help | grep -q "secret-file"
check "--help on each subcommand" $?

# ---- A chain using them; nothing left after the attempt.
cat >"$tmp/use.kdl" <<'EOF'
version "0.1"
triggers "push"
chain {
    machine "default"
    secrets "NPM_TOKEN"
    fragment {
        name "use"
        secret-file "KUBECONFIG"
        run """
            printf %s "$NPM_TOKEN" | sha256sum | sed 's/ .*//; s/^/env-digest=/'
            case "$KUBECONFIG" in "$PWD"*) echo in-workspace ;; *) echo outside-workspace ;; esac
            test "$(stat -c %a "$KUBECONFIG")" = 600 && echo mode-600
            test "$(sed -n 2p "$KUBECONFIG")" = line-two-of-kubeconfig && echo file-ok
            echo "path=$KUBECONFIG"
            (sleep 60 &) ; echo started-a-straggler
            """
    }
}
EOF
"$vulcan" submit "$tmp/use.kdl" >"$tmp/sub" 2>"$tmp/err"
check "a chain using secrets is submitted" $?
cid=$(chain_of "$tmp/sub")
wait_done "$cid" && [ "$(status_of "$cid")" = completed ]
check "it completes" $?
logs_of "$cid" >"$tmp/out"
npm_digest=$(printf %s npm_Tok3n-value-0001 | sha256sum | sed 's/ .*//')
grep -q "env-digest=$npm_digest" "$tmp/out" && grep -q file-ok "$tmp/out" &&
    grep -q outside-workspace "$tmp/out" &&
    grep -q mode-600 "$tmp/out"
check "secrets arrive as a variable and as a 0600 file outside the workspace" $?
path=$(sed -n 's/.*path=\(.*\)$/\1/p' "$tmp/out" | head -n 1)
[ -n "$path" ] && [ ! -e "$path" ] && [ ! -e "$(dirname "$path")" ]
check "the secret file and its directory are gone after the attempt" $?
find "$tmp/data/work" -path '*/secrets/*' >"$tmp/out" 2>/dev/null
[ ! -s "$tmp/out" ]
check "no secret file anywhere in the worker's directories" $?
sleep 0.5
found=0
for e in /proc/[0-9]*/environ; do
    grep -qa "npm_Tok3n-value-0001" "$e" 2>/dev/null && found=1
done
[ $found = 0 ]
check "the value is in /proc/*/environ of nothing still running" $?
ps axww -o args | grep -q "[n]pm_Tok3n" && found=1
[ $found = 0 ]
check "the value is in no process's argv (ps)" $?
grep -q "npm_Tok3n\|line-one-of" "$tmp/server.log"
[ $? = 1 ]
check "the server and worker logs never hold a value" $?

# ---- An unknown name fails the chain before anything runs, with file:line:col.
sed 's/secrets "NPM_TOKEN"/secrets "NPM_TOKEN" "NOT_DEFINED"/' "$tmp/use.kdl" >"$tmp/unknown.kdl"
"$vulcan" submit "$tmp/unknown.kdl" >"$tmp/sub" 2>"$tmp/err"
cid=$(chain_of "$tmp/sub")
wait_done "$cid"
curl -fs "$url/api/v1/chains/$cid" >"$tmp/out"
[ "$(status_of "$cid")" = failed ] && grep -q "unknown.kdl:5:25: error: unknown secret 'NOT_DEFINED'" "$tmp/out" &&
    grep -q '"fragment_count": *0' "$tmp/out"
check "an unknown secret fails the chain with file:line:col, nothing ran" $?

# ---- 100 random values: not in the SQLite file nor its WAL.
: >"$tmp/values"
i=0
while [ $i -lt 100 ]; do
    v=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    echo "$v" >>"$tmp/values"
    name=$(printf 'RAND_%03d' $i)
    curl -fs -o /dev/null -X PUT -H 'Content-Type: application/json' --data "{\"value\": \"$v\"}" \
        "$url/api/v1/orgs/default/secrets/$name" || break
    i=$((i + 1))
done
[ $i = 100 ]
check "100 random secrets are set" $?
echo "npm_Tok3n-value-0001" >>"$tmp/values"
grep -a -F -f "$tmp/values" "$tmp/data/vulcan.db" "$tmp/data/vulcan.db-wal" >"$tmp/out" 2>&1
[ $? = 1 ]
check "grep -a finds none of them in vulcan.db and vulcan.db-wal" $?

# ---- Key rotation: every value still opens; the old key no longer starts the server.
names=$(i=0; while [ $i -lt 100 ]; do printf '"RAND_%03d" ' $i; i=$((i + 1)); done)
refs=$(i=0; while [ $i -lt 100 ]; do printf '$RAND_%03d' $i; i=$((i + 1)); done)
want=$(head -n 100 "$tmp/values" | tr -d '\n' | sha256sum | cut -c1-64)
cat >"$tmp/all.kdl" <<EOF
version "0.1"
triggers "push"
chain {
    machine "default"
    checkout #false
    secrets $names
    fragment {
        run "printf %s \"$refs\" | sha256sum | cut -c1-64 | sed s/^/digest=/"
    }
}
EOF
stop
"$vulcan" admin rotate-secrets-key --data-dir "$tmp/data" >"$tmp/out" 2>"$tmp/err" &&
    grep -q "re-wrapped 102 secret" "$tmp/out"
check "admin rotate-secrets-key re-wraps every secret" $?
[ -f "$tmp/data/secrets.key.old" ] && [ "$(stat -c %a "$tmp/data/secrets.key")" = 600 ] &&
    ! cmp -s "$tmp/data/secrets.key" "$tmp/data/secrets.key.old"
check "a new key file is in place, the old one kept as .old" $?
start "$tmp/data" "$tmp/server2.log" --no-auth --workers 1
check "the server starts with the new key" $?
"$vulcan" submit "$tmp/all.kdl" >"$tmp/sub" 2>"$tmp/err"
cid=$(chain_of "$tmp/sub")
wait_done "$cid" && logs_of "$cid" | grep -q "digest=$want"
check "after the rotation all 100 values still open, unchanged" $?
stop
"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" --no-auth \
    --secrets-key-file "$tmp/data/secrets.key.old" >"$tmp/out" 2>"$tmp/err"
[ $? != 0 ] && grep -q "not the one this database's secrets are sealed with" "$tmp/err"
check "the old key no longer opens anything: the server refuses to start with it" $?
chmod 640 "$tmp/data/secrets.key"
"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" --no-auth >"$tmp/out" 2>"$tmp/err"
[ $? != 0 ] && grep -q "chmod 600" "$tmp/err"
check "a key file others may read is refused, saying what to do" $?
chmod 600 "$tmp/data/secrets.key"
head -c 31 /dev/urandom >"$tmp/short.key" && chmod 600 "$tmp/short.key"
"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" --no-auth \
    --secrets-key-file "$tmp/short.key" >"$tmp/out" 2>"$tmp/err"
[ $? != 0 ] && grep -q "31 bytes, not 32" "$tmp/err"
check "a key file of the wrong size is refused" $?

# ---- Exposure: fork pull requests, protected secrets.
start "$tmp/data" "$tmp/server3.log" --no-auth --workers 1 --allow-file-repos
repo="$tmp/src/org/app"
mkdir -p "$repo/.vulcan"
cat >"$repo/.vulcan/ci.kdl" <<'EOF'
version "0.1"
triggers "push" "pull_request"
chain {
    machine "default"
    checkout #false
    secrets "REPO_TOKEN" "PROT_TOKEN"
    fragment {
        run "echo have-repo=${REPO_TOKEN:+yes} have-prot=${PROT_TOKEN:+yes} withheld=$VULCAN_SECRETS_WITHHELD"
    }
}
EOF
(cd "$repo" && git init -q -b main && git add . && git -c user.name=t -c user.email=t@t commit -q -m ci)
sha=$(git -C "$repo" rev-parse HEAD)
curl -fs -X POST -H 'Content-Type: application/json' \
    --data "{\"url\": \"file://$repo\", \"provider\": \"github\", \"webhook_secret\": \"hooksecret\"}" \
    "$url/api/v1/repos" >"$tmp/out"
rid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$tmp/out")
printf 'repo-scoped-value-1' | "$vulcan" secrets set --repo "$rid" REPO_TOKEN >/dev/null 2>"$tmp/err" &&
    printf 'protected-value-1' | "$vulcan" secrets set --repo "$rid" --protected PROT_TOKEN >/dev/null 2>>"$tmp/err"
check "repository secrets are set, one protected" $?
hook() { # event, body file -> the first chain id
    python3 - "$url" "$1" "$2" >"$tmp/hook" <<'PY'
import hashlib, hmac, json, sys, urllib.request, uuid
url, event, path = sys.argv[1:]
body = open(path, "rb").read()
sig = "sha256=" + hmac.new(b"hooksecret", body, hashlib.sha256).hexdigest()
rq = urllib.request.Request(url + "/hooks/github", data=body, method="POST", headers={
    "Content-Type": "application/json", "X-GitHub-Event": event,
    "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": sig})
a = json.load(urllib.request.urlopen(rq, timeout=60))
if not a.get("chains"):
    sys.exit("no chain: %s" % json.dumps(a))
print(a["chains"][0])
PY
    cat "$tmp/hook"
}
pr_body() { # head repository full name -> body file
    python3 - "$repo" "$sha" "$1" >"$tmp/pr.json" <<'PY'
import json, sys
repo, sha, head = sys.argv[1:]
r = {"name": "app", "full_name": "org/app", "clone_url": "file://" + repo, "html_url": "file://" + repo}
print(json.dumps({"action": "opened", "number": 7, "before": "0" * 40, "after": sha,
    "repository": r, "sender": {"login": "someone-%d" % __import__("os").getpid()},
    "pull_request": {"number": 7, "merged": False,
        "head": {"ref": "feature", "sha": sha, "repo": {"full_name": head}},
        "base": {"ref": "main", "sha": sha, "repo": {"full_name": "org/app"}}}}))
PY
    echo "$tmp/pr.json"
}
push_body() { # branch -> body file
    python3 - "$repo" "$sha" "$1" >"$tmp/push.json" <<'PY'
import json, sys
repo, sha, branch = sys.argv[1:]
r = {"name": "app", "full_name": "org/app", "clone_url": "file://" + repo, "html_url": "file://" + repo}
print(json.dumps({"ref": "refs/heads/" + branch, "before": "0" * 40, "after": sha, "created": True,
    "deleted": False, "forced": False, "commits": [], "head_commit": None, "repository": r,
    "sender": {"login": "someone-%d" % __import__("os").getpid()}}))
PY
    echo "$tmp/push.json"
}
run_hook() { # event, body -> the chain's log in $tmp/out
    : >"$tmp/out"
    cid=$(hook "$1" "$2") && wait_done "$cid" && logs_of "$cid" >"$tmp/out"
}
run_hook pull_request "$(pr_body someone-else/app)"
grep -q "have-repo= have-prot= withheld=REPO_TOKEN(fork),PROT_TOKEN(fork)" "$tmp/out"
check "a pull request from a fork (head repo differs from base) runs without the secrets" $?
run_hook pull_request "$(pr_body org/app)"
grep -q "have-repo=yes have-prot= withheld=PROT_TOKEN(protected)" "$tmp/out"
check "the same pull request from the base repository gets them (not the protected one)" $?
run_hook push "$(push_body main)"
grep -q "have-repo=yes have-prot=yes withheld=$" "$tmp/out"
check "a protected secret reaches main" $?
run_hook push "$(push_body feature/x)"
grep -q "have-repo=yes have-prot= withheld=PROT_TOKEN(protected)" "$tmp/out"
check "a protected secret does not reach a feature branch" $?
curl -fs -X PATCH -H 'Content-Type: application/json' \
    --data '{"allow_fork_secrets": true, "protected_refs": "main,feature/*"}' "$url/api/v1/repos/$rid" >/dev/null
run_hook pull_request "$(pr_body someone-else/app)"
grep -q "have-repo=yes have-prot= " "$tmp/out"
check "with allow_fork_secrets a fork's pull request gets the unprotected ones" $?
run_hook push "$(push_body feature/x)"
grep -q "have-prot=yes" "$tmp/out"
check "protected_refs globs make feature/* protected" $?
stop

# ---- Roles (--require-auth): a developer lists names, a maintainer sets and removes,
# a reader sees nothing.
start "$tmp/auth" "$tmp/auth.log" --require-auth
check "a server with credentials starts" $?
db="sqlite:$tmp/auth/vulcan.db"
for u in rdr:reader dev:developer boss:maintainer; do
    "$vulcan" admin create-user --database "$db" "${u%%:*}" --org default --role "${u#*:}" >/dev/null 2>&1
done
rdr=$("$vulcan" admin create-token --database "$db" --user rdr)
dev=$("$vulcan" admin create-token --database "$db" --user dev)
boss=$("$vulcan" admin create-token --database "$db" --user boss)
printf 'maintainer-set-1' | VULCAN_TOKEN=$boss "$vulcan" secrets set DEPLOY_TOKEN >"$tmp/out" 2>"$tmp/err"
check "a maintainer sets a secret" $?
printf 'developer-set-1' | VULCAN_TOKEN=$dev "$vulcan" secrets set DEPLOY_TOKEN >"$tmp/out" 2>"$tmp/err"
[ $? = 1 ] && grep -q "needs the .* role" "$tmp/err"
check "a developer cannot set one (403, needs maintainer)" $?
VULCAN_TOKEN=$dev "$vulcan" secrets ls >"$tmp/out" 2>"$tmp/err" && grep -q DEPLOY_TOKEN "$tmp/out" &&
    ! grep -q maintainer-set-1 "$tmp/out"
check "a developer lists the names, no value" $?
VULCAN_TOKEN=$rdr "$vulcan" secrets ls >"$tmp/out" 2>"$tmp/err"
[ $? = 1 ] && grep -q "needs the .* role" "$tmp/err"
check "a reader cannot list them (403, needs developer)" $?
VULCAN_TOKEN=$dev "$vulcan" secrets rm DEPLOY_TOKEN >"$tmp/out" 2>"$tmp/err"
[ $? = 1 ]
check "a developer cannot remove one" $?
VULCAN_TOKEN=$boss "$vulcan" secrets ls --json >"$tmp/out" 2>"$tmp/err" &&
    grep -q '"updated_by": "boss"' "$tmp/out"
check "the listing says who set it" $?
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/api/v1/orgs/default/secrets")
[ "$code" = 401 ]
check "without a token: 401" $?
grep -q "maintainer-set-1" "$tmp/auth.log"
[ $? = 1 ]
check "the value is not in the server log" $?
stop

# ---- PostgreSQL: a pg_dump holds none of the values.
if [ -n "${VK_TEST_PG_URL:-}" ]; then
    pgb=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r | head -n 1)
    start "$tmp/pgdata" "$tmp/pg.log" --no-auth --database "$VK_TEST_PG_URL"
    check "a server on PostgreSQL starts" $?
    i=0
    while [ $i -lt 100 ]; do
        v=$(sed -n "$((i + 1))p" "$tmp/values")
        curl -fs -o /dev/null -X PUT -H 'Content-Type: application/json' --data "{\"value\": \"$v\"}" \
            "$url/api/v1/orgs/default/secrets/$(printf 'RAND_%03d' $i)" || break
        i=$((i + 1))
    done
    [ $i = 100 ]
    check "100 secrets are set on PostgreSQL" $?
    "$pgb/pg_dump" "$VK_TEST_PG_URL" >"$tmp/dump.sql" 2>"$tmp/err" && grep -q "secrets" "$tmp/dump.sql"
    check "pg_dump of the store" $?
    grep -a -F -f "$tmp/values" "$tmp/dump.sql" >"$tmp/out"
    [ $? = 1 ]
    check "the pg_dump holds none of the 100 values" $?
    stop
fi

finish
