#!/bin/sh
# Issue 22, the restore drill: a live SQLite server with two local workers runs chains
# that use a secret; `vulcan admin backup` copies it while submissions keep arriving; the
# server is killed (-9); a damaged backup and a manifest naming a path outside the data
# directory are refused before anything is written; the backup is restored into a new
# data directory; a server started there has every chain that completed before the
# backup, completed, with its log, and its secrets still decrypt (a new chain gets the
# value). Prints the backup time under load and the time from restore to a ready server.
# Usage: test_backup_restore.sh VULCAN_BINARY
set -u
vulcan=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

start() { # data dir, log -> $url, $spid
    : >"$2"
    "$vulcan" server --listen 127.0.0.1:0 --data-dir "$1" --log-format text --no-auth \
        --workers 2 >"$2" 2>&1 &
    spid=$!
    pids="$pids $spid"
    url=
    for _ in $(seq 1 150); do
        url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$2")
        [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    export VULCAN_SERVER="$url"
    [ -n "$url" ]
}
status_of() {
    curl -fs "$url/api/v1/chains/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])'
}
wait_done() { # chain id
    for _ in $(seq 1 300); do
        case $(status_of "$1") in completed | failed | cancelled) return 0 ;; esac
        sleep 0.1
    done
    return 1
}
cat >"$tmp/use.kdl" <<'KDL'
version "0.1"
triggers "push"
chain {
    machine "default"
    secrets "DEPLOY_TOKEN"
    fragment { name "use"; run "printf %s \"$DEPLOY_TOKEN\" | sha256sum | sed 's/ .*//; s/^/digest=/'"; }
}
KDL
printf 'version "0.1"\ntriggers "push"\nchain {\n    machine "default"\n    fragment { name "load"; run "true"; }\n}\n' >"$tmp/load.kdl"

start "$tmp/data" "$tmp/server.log"
check "the server starts" $?
value="deploy-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
digest=$(printf %s "$value" | sha256sum | sed 's/ .*//')
printf %s "$value" | "$vulcan" secrets set DEPLOY_TOKEN >/dev/null 2>"$tmp/err"
check "a secret is set" $?
: >"$tmp/before"
for i in $(seq 1 10); do
    "$vulcan" submit "$tmp/use.kdl" 2>/dev/null | head -n 1 >>"$tmp/before"
done
ok=0
for c in $(cat "$tmp/before"); do
    wait_done "$c" && [ "$(status_of "$c")" = completed ] && ok=$((ok + 1))
done
[ $ok = 10 ]
check "10 chains using the secret complete ($ok)" $?

# Load while the backup runs: submissions every 50 ms.
(
    while :; do
        "$vulcan" submit "$tmp/load.kdl" >/dev/null 2>&1
        sleep 0.05
    done
) &
loader=$!
pids="$pids $loader"
sleep 1
t0=$(date +%s%N)
"$vulcan" admin backup --data-dir "$tmp/data" --out "$tmp/backup" >"$tmp/bk.out" 2>&1
rc=$?
t1=$(date +%s%N)
sleep 0.5
kill "$loader" 2>/dev/null
wait "$loader" 2>/dev/null
echo "# backup under load: $(((t1 - t0) / 1000000)) ms: $(cat "$tmp/bk.out")"
[ $rc = 0 ] && [ "$(stat -c %a "$tmp/backup")" = 700 ] &&
    [ "$(stat -c %a "$tmp/backup/secrets.key")" = 600 ] && [ "$(stat -c %a "$tmp/backup/vulcan.db")" = 600 ]
check "admin backup of the live server under load (0700 directory, 0600 files)" $?
[ ! -e "$tmp/backup/vulcan.db-wal" ] && [ -s "$tmp/backup/secrets.key" ] &&
    python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["database"]=="sqlite" and m["chains"]>=10 and "secrets.key" in [f["name"] for f in m["files"]], m' "$tmp/backup/manifest.json"
check "the backup is one database file, the key files and a manifest" $?
"$vulcan" admin backup --data-dir "$tmp/data" --out "$tmp/backup" >/dev/null 2>"$tmp/err"
[ $? = 1 ] && grep -q "new directory" "$tmp/err"
check "a backup into an existing directory is refused" $?

kill -9 "$spid"
wait "$spid" 2>/dev/null
check "the server is killed (-9)" 0

# ---- damaged backups are refused before anything is written
cp -a "$tmp/backup" "$tmp/bad"
python3 - "$tmp/bad/vulcan.db" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x01
open(p, "wb").write(b)
PY
"$vulcan" admin restore --from "$tmp/bad" --data-dir "$tmp/never" >"$tmp/out" 2>"$tmp/err"
[ $? = 1 ] && grep -q "does not match the manifest" "$tmp/err" && [ ! -e "$tmp/never/vulcan.db" ]
check "a backup with one changed byte is refused and nothing is restored" $?
cp -a "$tmp/backup" "$tmp/evil"
python3 - "$tmp/evil/manifest.json" <<'PY'
import json, sys
p = sys.argv[1]
m = json.load(open(p))
m["files"].append({"name": "../escape", "bytes": 1, "sha256": "00"})
json.dump(m, open(p, "w"))
PY
"$vulcan" admin restore --from "$tmp/evil" --data-dir "$tmp/never" >"$tmp/out" 2>"$tmp/err"
[ $? = 1 ] && grep -q "bad file" "$tmp/err" && [ ! -e "$tmp/escape" ]
check "a manifest naming a path outside the data directory is refused" $?

# ---- the restore
t0=$(date +%s%N)
"$vulcan" admin restore --from "$tmp/backup" --data-dir "$tmp/restored" >"$tmp/out" 2>"$tmp/err"
check "admin restore into a new data directory" $?
start "$tmp/restored" "$tmp/server2.log"
check "a server starts on the restored directory" $?
t1=$(date +%s%N)
echo "# restore to a ready server: $(((t1 - t0) / 1000000)) ms"
ok=0
for c in $(cat "$tmp/before"); do
    [ "$(status_of "$c")" = completed ] && "$vulcan" logs "$c" 2>/dev/null | grep -q "digest=$digest" &&
        ok=$((ok + 1))
done
[ $ok = 10 ]
check "every chain completed before the backup is there, completed, with its log ($ok of 10)" $?
c=$("$vulcan" submit "$tmp/use.kdl" 2>/dev/null | head -n 1)
wait_done "$c" && [ "$(status_of "$c")" = completed ] && "$vulcan" logs "$c" 2>/dev/null | grep -q "digest=$digest"
check "the restored secrets still decrypt: a new chain gets the value" $?
"$vulcan" admin restore --from "$tmp/backup" --data-dir "$tmp/restored" >"$tmp/out" 2>"$tmp/err"
[ $? = 1 ] && grep -q -- "--force" "$tmp/err"
check "restoring over a data directory with a database needs --force" $?
"$vulcan" admin backup --help | grep -q "pg_dump" && "$vulcan" admin restore --help | grep -q SHA-256
check "--help of backup and restore" $?
finish
