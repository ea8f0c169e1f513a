#!/bin/sh
# Issue 20, the audit log through the real binary, on SQLite (the sqlite3 tool) or on the
# PostgreSQL of scripts/pg-test.sh when VK_TEST_PG_URL is set (psql as the superuser):
# - a server with auth records each action done to it exactly once, with its actor and
#   outcome (a repository made, a token made, a secret set, a request refused 403 for a
#   read-only token, one refused 401 without a token, a failed login, the server's start
#   and stop), and never the secret's value;
# - the store refuses UPDATE and DELETE of audit rows;
# - `vulcan audit verify` on the store: intact; after one byte of one record's details is
#   changed (triggers disabled, as the database's owner can), it names that record; after a
#   record is deleted, it names the gap; after the chain is rewritten consistently from
#   some record (hashes recomputed here in Python, independently of the server's code), the
#   signed checkpoint after it catches it;
# - an export verifies offline in a clean directory holding only it and the keyring, and
#   Python checks a checkpoint's Ed25519 signature with the keyring on its own.
# Usage: test_audit.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
spid=
trap '[ -n "$spid" ] && kill $spid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
db=${VK_TEST_PG_URL:+--database $VK_TEST_PG_URL}
dbtool() { # SQL, as the database's owner
    if [ -n "${VK_TEST_PG_URL:-}" ]; then
        psql -q -v ON_ERROR_STOP=1 "$VK_TEST_PG_URL" -c "$1" >>sql.log 2>&1
    else
        sqlite3 "$tmp/data/vulcan.db" "$1" >>sql.log 2>&1
    fi
}
start() {
    # shellcheck disable=SC2086
    "$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" $db --workers 0 \
        --audit-checkpoint-every 5 --log-format text >server.log 2>&1 &
    spid=$!
    url=
    for _ in $(seq 1 150); do
        url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' server.log | tail -n 1)
        [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
}
stop() {
    kill "$spid" && wait "$spid"
    spid=
}

start
[ -n "$url" ] && [ -f data/audit.key ] && [ -f data/audit.key.pub ] &&
    [ "$(stat -c %a data/audit.key)" = 600 ]
check "the server starts and makes its audit key 0600 and keyring (${VK_TEST_PG_URL:+postgres}${VK_TEST_PG_URL:-sqlite})" $?
tf=data/initial-admin-token
admin=$(cat $tf)
api() { # METHOD PATH [BODY] [TOKEN]: prints the status
    curl -s -o body.json -w '%{http_code}' -X "$1" -H "Authorization: Bearer ${4:-$admin}" \
        -H 'Content-Type: application/json' ${3:+--data "$3"} "$url$2"
}
[ "$(api POST /api/v1/repos '{"url": "https://git.example.com/a.git", "provider": "github"}')" = 201 ]
check "a repository is made" $?
[ "$(api POST /api/v1/tokens '{"name": "ro", "scopes": ["read"]}')" = 201 ]
check "a read-only token is made" $?
ro=$(python3 -c 'import json; print(json.load(open("body.json"))["token"])')
[ "$(api PUT /api/v1/orgs/default/secrets/NPM_TOKEN '{"value": "s3cr3t-value-never-logged"}')" = 201 ]
check "a secret is set ($(head -c 200 body.json))" $?
[ "$(api DELETE /api/v1/orgs/default/secrets/NPM_TOKEN)" = 204 ]
check "the secret is removed" $?
[ "$(api POST /api/v1/repos '{"url": "https://git.example.com/b.git", "provider": "github"}' "$ro")" = 403 ]
check "the read-only token may not make a repository" $?
[ "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$url/api/v1/tokens/00000000-0000-4000-8000-000000000000")" = 401 ]
check "a request without a token is refused" $?
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data '{"login": "mallory", "password": "guess-guess"}' "$url/api/v1/login")" = 401 ]
check "a login with a wrong password fails" $?
stop
check "the server stops" $?

# Exactly one record per action, with its actor and outcome.
start
"$vulcan" audit ls --server "$url" --token-file $tf --limit 1000 --json >ls.json 2>err
check "vulcan audit ls answers ($(head -c 200 err))" $?
python3 - ls.json >out 2>&1 <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))["records"]
got = sorted((r["action"], r["actor"].split(":")[0], r["outcome"]) for r in recs)
want = sorted([
    ("server.start", "system", "success"), ("server.stop", "system", "success"),
    ("server.start", "system", "success"),
    ("repo.create", "user", "success"), ("token.create", "user", "success"),
    ("secret.update", "user", "success"), ("secret.delete", "user", "success"),
    ("repo.create", "user", "denied"),
    ("token.revoke", "anonymous", "unauthenticated"),
    ("auth.login_failed", "user", "unauthenticated"),
])
assert got == want, "\n got %s\nwant %s" % (got, want)
failed = [r for r in recs if r["action"] == "auth.login_failed"][0]
assert failed["actor"] == "user:mallory" and failed["source"] == "127.0.0.1", failed
assert all(r["org"] == recs[0]["org"] for r in recs)
seqs = sorted(r["seq"] for r in recs)
assert seqs == list(range(1, len(recs) + 1)), seqs
PY
check "one record for each action, with its actor and outcome ($(tail -n 3 out))" $?
! grep -q 's3cr3t-value-never-logged' ls.json
check "no record holds the secret's value" $?
"$vulcan" audit ls --server "$url" --token-file $tf --action auth. >out 2>err &&
    grep -q 'auth.login_failed' out && ! grep -q 'repo.create' out
check "vulcan audit ls --action auth. filters by prefix" $?
"$vulcan" audit ls --server "$url" --token "$ro" >out 2>err
[ $? -ne 0 ]
check "a read-only token may not read the audit log" $?
"$vulcan" audit export --server "$url" --token-file $tf --out export.jsonl 2>err
check "vulcan audit export writes the log ($(cat err))" $?
stop
grep -q '"type":"checkpoint"' export.jsonl
check "the export holds signed checkpoints" $?

# Offline: a clean directory with only the export and the keyring.
mkdir offline && cp export.jsonl offline/ && cp data/audit.key.pub offline/keys.pub
(cd offline && "$vulcan" audit verify export.jsonl --keyring keys.pub) >out 2>err
check "an export verifies offline with only the keyring ($(cat out err | head -c 300))" $?
python3 - offline/export.jsonl offline/keys.pub >out 2>&1 <<'PY'
import base64, hashlib, json, sys
from cryptography.hazmat.primitives.serialization import (Encoding, PublicFormat,
                                                          load_pem_public_key)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
pem = open(sys.argv[2], "rb").read()
keys = {}
for block in pem.split(b"-----END PUBLIC KEY-----")[:-1]:
    k = load_pem_public_key(block + b"-----END PUBLIC KEY-----\n")
    assert isinstance(k, Ed25519PublicKey)
    raw = k.public_bytes(Encoding.Raw, PublicFormat.Raw)
    keys[hashlib.sha256(raw).hexdigest()[:16]] = k
prev, heads, checked = "0" * 64, {}, 0
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o["type"] == "record":
        canon = {k: o[k] for k in ("org", "seq", "at", "actor", "source", "action", "target",
                                   "outcome", "details", "request_id", "trace_id", "prev_hash")}
        canon["v"] = 1
        text = json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        h = hashlib.sha256(text.encode()).hexdigest()
        assert o["prev_hash"] == prev and h == o["hash"], (o["seq"], h, o["hash"])
        prev = h
        heads[o["seq"]] = h
    else:
        msg = "vulcan-audit-checkpoint-v1\n%s\n%d\n%d\n%s" % (o["org"], o["seq"], o["at"], o["hash"])
        keys[o["key_id"]].verify(base64.b64decode(o["signature"]), msg.encode())
        assert heads[o["seq"]] == o["hash"]
        checked += 1
assert checked >= 1
print("ok", checked)
PY
check "Python recomputes every hash and checks the Ed25519 signatures on its own ($(tail -n 2 out))" $?
(cd offline && "$vulcan" audit verify export.jsonl) >out 2>err
[ $? = 2 ] && grep -q 'keyring' err
check "verify without a keyring says what it needs ($(head -c 200 err))" $?

vdb() { # verify the store
    # shellcheck disable=SC2086
    "$vulcan" audit verify --data-dir "$tmp/data" $db >out 2>err
}
vdb
check "the store's chain is intact ($(cat out err | head -c 300))" $?

# The store refuses changes and deletions.
dbtool "UPDATE audit_log SET actor = 'user:nobody' WHERE seq = 2"
[ $? -ne 0 ]
check "the store refuses UPDATE of an audit record" $?
dbtool "DELETE FROM audit_log WHERE seq = 2"
[ $? -ne 0 ]
check "the store refuses DELETE of an audit record" $?

# As the database's owner: triggers out of the way.
if [ -n "${VK_TEST_PG_URL:-}" ]; then
    dbtool "ALTER TABLE audit_log DISABLE TRIGGER USER"
else
    dbtool "DROP TRIGGER audit_log_no_UPDATE; DROP TRIGGER audit_log_no_DELETE"
fi
check "the owner disables the triggers" $?
dbtool "UPDATE audit_log SET details = replace(details, '\"status\":201', '\"status\":202') WHERE seq = 2"
vdb
[ $? = 1 ] && grep -q 'record 2 was altered' out
check "one changed byte of record 2's details is named ($(head -c 300 out))" $?
dbtool "UPDATE audit_log SET details = replace(details, '\"status\":202', '\"status\":201') WHERE seq = 2"
vdb
check "put back, the chain is intact again ($(head -c 300 out))" $?
dbtool "DELETE FROM audit_log WHERE seq = 4"
vdb
[ $? = 1 ] && grep -q 'record 4 is missing' out
check "a deleted record is named as a gap ($(head -c 300 out))" $?

# Rewrite the chain consistently from record 2 (every hash recomputed), as someone with the
# database but not the audit key would: the checkpoint at record 5 no longer matches.
# Restore first: a fresh copy of the chain from the export (record 4 back).
python3 - export.jsonl >rewrite.sql 2>out <<'PY'
import hashlib, json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"type":"record"' in l]
prev = "0" * 64
def q(v):
    return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"
for r in recs:
    if r["seq"] >= 2:
        r["actor"] = "user:mallory"
    r["prev_hash"] = prev
    canon = {k: r[k] for k in ("org", "seq", "at", "actor", "source", "action", "target",
                               "outcome", "details", "request_id", "trace_id", "prev_hash")}
    canon["v"] = 1
    r["hash"] = hashlib.sha256(json.dumps(canon, sort_keys=True, separators=(",", ":"),
                                          ensure_ascii=True).encode()).hexdigest()
    prev = r["hash"]
    d = None if r["details"] is None else json.dumps(r["details"], sort_keys=True, separators=(",", ":"))
    print("DELETE FROM audit_log WHERE tenant_id = %s AND seq = %d;" % (q(r["org"]), r["seq"]))
    print("INSERT INTO audit_log (tenant_id, seq, at, actor, source, action, target, outcome,"
          " details, request_id, trace_id, prev_hash, hash) VALUES (%s, %d, %d, %s, %s, %s, %s,"
          " %s, %s, %s, %s, %s, %s);" % (q(r["org"]), r["seq"], r["at"], q(r["actor"]),
          q(r["source"]), q(r["action"]), q(r["target"]), q(r["outcome"]), q(d),
          q(r["request_id"]), q(r["trace_id"]), q(r["prev_hash"]), q(r["hash"])))
PY
dbtool "$(cat rewrite.sql)"
check "the chain is rewritten from record 2 with consistent hashes" $?
vdb
[ $? = 1 ] && ! grep -q 'altered' out && ! grep -q 'missing' out &&
    grep -q 'checkpoint at record 5 does not match the chain' out
check "the signed checkpoint catches the rewritten chain ($(head -c 400 out))" $?

finish
