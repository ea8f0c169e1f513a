#!/bin/sh
# Issue 20, the live copy of the audit log: a real rsyslogd (Debian's, with a private
# configuration: imtcp on a loopback port, every message's MSGID and MSG to a file) receives
# each record of a `vulcan server --audit-syslog tcp://…` over TCP (RFC 5424, octet-counting
# framing), and `--audit-copy-file` gets the same records as JSON lines that `vulcan audit
# verify` accepts as a chain. rsyslogd is restarted while the server runs: the server
# reconnects and records made after it is back arrive. A server whose syslog is down still
# records everything in the store.
# Usage: test_audit_copy.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
spid=
rpid=
trap '[ -n "$spid" ] && kill $spid 2>/dev/null; [ -n "$rpid" ] && kill $rpid 2>/dev/null; wait 2>/dev/null; [ -n "${VK_KEEP:-}" ] || rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
rsyslogd=$(command -v rsyslogd || echo /usr/sbin/rsyslogd)
if [ ! -x "$rsyslogd" ]; then
    echo "test_audit_copy: rsyslogd is missing (scripts/install-deps.sh installs rsyslog)"
    exit 1
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
uport=$(python3 -c 'import socket; s=socket.socket(type=socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir rs
cat >rs/rsyslog.conf <<EOF
global(workDirectory="$tmp/rs")
module(load="imtcp")
input(type="imtcp" port="$port" address="127.0.0.1")
module(load="imudp")
input(type="imudp" port="$uport" address="127.0.0.1")
template(name="raw" type="string" string="%msgid% %syslogfacility% %syslogseverity% %msg%\n")
*.* action(type="omfile" file="$tmp/rs/audit.log" template="raw")
EOF
start_rsyslog() {
    "$rsyslogd" -n -f "$tmp/rs/rsyslog.conf" -i "$tmp/rs/pid" >>rs/stderr 2>&1 &
    rpid=$!
    for _ in $(seq 1 50); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
start_rsyslog
check "rsyslogd listens on 127.0.0.1:$port ($(head -c 300 rs/stderr))" $?

"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" --workers 0 \
    --audit-syslog "tcp://127.0.0.1:$port" --audit-copy-file "$tmp/copy.jsonl" \
    --log-format text >server.log 2>&1 &
spid=$!
url=
for _ in $(seq 1 150); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' server.log)
    [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
[ -n "$url" ]
check "the server starts with a syslog and a file copy" $?
admin=$(cat data/initial-admin-token)
mk() { # make repository N
    curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $admin" \
        -H 'Content-Type: application/json' \
        --data "{\"url\": \"https://git.example.com/$1.git\", \"provider\": \"github\"}" \
        "$url/api/v1/repos"
}
[ "$(mk one)" = 201 ] && [ "$(mk two)" = 201 ]
check "two repositories are made" $?
wait_for() { # FILE PATTERN COUNT
    for _ in $(seq 1 100); do
        [ "$(grep -c "$2" "$1" 2>/dev/null)" -ge "$3" ] && return 0
        sleep 0.1
    done
    return 1
}
wait_for rs/audit.log '^repo.create ' 2
check "rsyslog received both records, MSGID the action ($(tail -n 3 rs/audit.log 2>/dev/null | head -c 400))" $?
grep -q '^server.start 13 5 {"type":"record"' rs/audit.log
check "facility 13 (log audit), severity 5 (notice), the record as JSON" $?
grep '^repo.create ' rs/audit.log | head -n 1 | sed 's/^[^{]*//' | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
assert r["actor"] == "user:admin" and r["outcome"] == "success" and len(r["hash"]) == 64, r'
check "the syslog message is the record, with its actor, outcome and hash" $?

# rsyslog goes away and comes back: records made after it is back arrive.
kill "$rpid" && wait "$rpid" 2>/dev/null
rpid=
[ "$(mk three)" = 201 ]
check "requests go on while syslog is down" $?
sleep 0.3
start_rsyslog
check "rsyslogd is back" $?
sleep 1.2 # past the copy's 1 s reconnect back-off
[ "$(mk four)" = 201 ]
# The record made while it was down is not in syslog (the copy counts it as failed); the
# one made after it is back arrives, and the store and the file copy have both.
wait_for rs/audit.log '^repo.create ' 3
check "after syslog is back the server reconnects and the next record arrives ($(tail -n 2 rs/audit.log | cut -c1-120))" $?

kill "$spid" && wait "$spid"
check "the server stops" $?
spid=
[ "$(grep -c '"action":"repo.create"' copy.jsonl)" = 4 ]
check "the file copy has every record, also those syslog missed ($(wc -l <copy.jsonl) lines)" $?
cp data/audit.key.pub keys.pub
"$vulcan" audit verify copy.jsonl --keyring keys.pub >out 2>err
check "the file copy verifies as a chain ($(cat out err | head -c 300))" $?
"$vulcan" audit verify --data-dir data >out 2>err
check "the store has every record ($(head -c 300 out))" $?
grep -q '"action":"server.stop"' copy.jsonl
check "the server's stop is in the copy" $?

# The same over UDP (one datagram a record), from a second server.
before=$(grep -c '^repo.create ' rs/audit.log)
"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data2" --workers 0 \
    --audit-syslog "udp://127.0.0.1:$uport" --log-format text >server2.log 2>&1 &
spid=$!
url=
for _ in $(seq 1 150); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' server2.log)
    [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
admin=$(cat data2/initial-admin-token)
[ "$(mk five)" = 201 ] && wait_for rs/audit.log '^repo.create ' $((before + 1))
check "over UDP too ($(tail -n 1 rs/audit.log | cut -c1-120))" $?

finish
