#!/bin/sh
# Issue 15, masking (docs/secrets.md "Masking"): hostile scripts against a real
# `vulcan server --require-auth` and its worker in bubblewrap. The secrets are the
# attempt's job token ($VULCAN_ID_TOKEN_REQUEST_TOKEN, known to worker and server) and an
# ID token the fragment fetches (known to the server only: it tests the server's pass).
# Each is echoed raw, split across two printfs with a sleep between (so across upload
# chunks), inside a 70 KiB line, in base64 and base64url at each alignment, percent-encoded
# (every byte, and Python's quote), JSON-escaped, on stderr, through a \r progress line and
# after `set -x`. The stored log, the SSE stream and `vulcan logs` must show *** for each
# and nothing of the values, with the ordinary output around them unchanged. Then a
# server restart in the middle of an attempt: the log stays whole and masked.
# (PEM lines and values with characters JSON and URLs escape: tests/unit/worker/test_exec_mask.c.)
# Usage: test_masking.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

"$vulcan" server --require-auth --workers 1 --worker-sandbox bwrap --listen 127.0.0.1:0 \
    --data-dir "$tmp/data" --log-format text >"$tmp/server.log" 2>&1 &
pids=$!
url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$tmp/server.log")
    [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
[ -n "$url" ]
check "the server starts" $?
admin=$(cat "$tmp/data/initial-admin-token")

# The values are also printed reversed (a form nobody masks) so that the checker knows them.
cat >"$tmp/wf.kdl" <<'KDL'
version "0.1"
name "masking"
triggers "manual"
chain {
    machine "default"
    fragment {
        name "hostile"
        network #true
        run #"""
T="$VULCAN_ID_TOKEN_REQUEST_TOKEN"
I=$(curl -fsS -H "Authorization: Bearer $T" "$VULCAN_ID_TOKEN_REQUEST_URL?audience=masking" | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])')
echo "ordinary output before"
printf 'KEYS %s %s\n' "$(printf %s "$T" | rev)" "$(printf %s "$I" | rev)"
for who in T I; do
    eval "v=\$$who"
    echo "$who raw:$v:end"
    printf '%s split:%s' "$who" "${v:0:9}"; sleep 1.5; printf '%s:end\n' "${v:9}"
    printf '%s long:' "$who"; head -c 36000 /dev/zero | tr '\0' x; printf %s "$v"; head -c 36000 /dev/zero | tr '\0' y; echo
    for p in "" a ab; do
        printf '%s b64 %s:' "$who" "${#p}"; printf '%s%s' "$p" "$v" | base64 -w0; echo
        printf '%s b64url %s:' "$who" "${#p}"; printf '%s%s' "$p" "$v" | base64 -w0 | tr '+/' '-_' | tr -d =; echo
    done
    printf '%s pct:' "$who"; printf %s "$v" | od -An -tx1 -v | tr -d ' \n' | sed 's/../%&/g'; echo
    printf '%s pctq:%s\n' "$who" "$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$v")"
    printf '%s json:%s\n' "$who" "$(python3 -c 'import sys,json; print(json.dumps({"t": sys.argv[1]}))' "$v")"
    printf '%s err:%s\n' "$who" "$v" >&2
    printf '%s progress: 10%%\r%s\r100%%\n' "$who" "$v"
done
set -x
: "$T" "$I"
{ set +x; } 2>/dev/null
echo "ordinary output after"
"""#
    }
}
KDL
python3 -c 'import json,sys; print(json.dumps({"content": open(sys.argv[1]).read(), "source_file_path": ".vulcan/masking.kdl", "branch": "main"}))' \
    "$tmp/wf.kdl" >"$tmp/body.json"
curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $admin" \
    --data-binary @"$tmp/body.json" "$url/api/v1/parse" >"$tmp/sub.json"
chain=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chain_id"])' "$tmp/sub.json" 2>"$tmp/err")
check "the chain is submitted" $?

# Follow the log live (SSE) from the moment the fragment exists.
fid=
for _ in $(seq 1 100); do
    fid=$(curl -s -H "Authorization: Bearer $admin" "$url/api/v1/chains/$chain" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["fragments"][0]["id"])' 2>/dev/null)
    [ -n "$fid" ] && break
    sleep 0.1
done
curl -sN --max-time 90 -H "Authorization: Bearer $admin" \
    "$url/api/v1/fragments/$fid/log?follow=1" >"$tmp/sse.txt" 2>/dev/null &
sse=$!
pids="$pids $sse"
st=
for _ in $(seq 1 600); do
    st=$(curl -s -H "Authorization: Bearer $admin" "$url/api/v1/chains/$chain" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    case "$st" in completed | failed) break ;; esac
    sleep 0.1
done
[ "$st" = completed ]
check "the hostile fragment completes" $?
wait $sse 2>/dev/null

curl -s -H "Authorization: Bearer $admin" "$url/api/v1/fragments/$fid/log" >"$tmp/stored.txt"
VULCAN_TOKEN=$admin "$vulcan" logs "$fid" --server "$url" >"$tmp/cli.txt" 2>"$tmp/err"
check "vulcan logs prints the fragment's log" $?
# The SSE stream's log events, their text joined.
python3 - "$tmp/sse.txt" >"$tmp/live.txt" <<'PY'
import json, sys
ev, out = None, []
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.rstrip("\n")
    if line.startswith("event: "):
        ev = line[7:]
    elif line.startswith("data: ") and ev == "log":
        out.append(json.loads(line[6:])["text"])
sys.stdout.write("".join(out))
PY

cat >"$tmp/check.py" <<'PY'
import base64, json, sys, urllib.parse
text = open(sys.argv[1], "rb").read().decode("utf-8")
lines = text.split("\n")
keys = [l for l in lines if l.startswith("KEYS ")]
if len(keys) != 1:
    sys.exit("no KEYS line")
_, t, i = keys[0].split(" ")
vals = {"T": t[::-1], "I": i[::-1]}
bad = []
def want(line):
    if line not in lines:
        bad.append("missing line %r" % (line[:120] + ("..." if len(line) > 120 else "")))
for l in ("ordinary output before", "ordinary output after"):
    want(l)
for who, v in vals.items():
    if len(v) < 20:
        bad.append("%s is too short to be a token: %r" % (who, v))
    want("%s raw:***:end" % who)
    want("%s split:***:end" % who)
    want("%s long:%s***%s" % (who, "x" * 36000, "y" * 36000))
    for p in ("", "a", "ab"):
        raw = (p + v).encode()
        first, last = (8 * len(p) + 5) // 6, 8 * len(raw) // 6
        enc = base64.b64encode(raw).decode()
        want("%s b64 %d:%s***%s" % (who, len(p), enc[:first], enc[last:]))
        url = enc.replace("+", "-").replace("/", "_").rstrip("=")
        want("%s b64url %d:%s***%s" % (who, len(p), url[:first], url[last:]))
    want("%s pct:***" % who)
    want("%s pctq:***" % who)
    want('%s json:{"t": "***"}' % who)
    want("%s err:***" % who)
    want("%s progress: 10%%\r***\r100%%" % who)
    # Nothing of the value: no 12-byte piece of it, of its base64 or its percent-encoding.
    forms = [v, "".join("%%%02X" % b for b in v.encode()), "".join("%%%02x" % b for b in v.encode())]
    for p in ("", "a", "ab"):
        raw = (p + v).encode()
        enc = base64.b64encode(raw).decode()
        first, last = (8 * len(p) + 5) // 6, 8 * len(raw) // 6
        forms += [enc[first:last], enc[first:last].replace("+", "-").replace("/", "_")]
    body = text.replace(keys[0], "")
    for f in forms:
        for k in range(0, len(f) - 12, 4):
            if f[k:k + 12] in body:
                bad.append("%s: %r of a form is in the log" % (who, f[k:k + 12]))
                break
if "+ : *** ***" not in lines:
    bad.append("set -x line not masked")
if bad:
    print("\n".join(bad[:20]))
    sys.exit(1)
print("ok")
PY
for f in stored live cli; do
    python3 "$tmp/check.py" "$tmp/$f.txt" >"$tmp/out" 2>"$tmp/err"
    check "$f log: every form of both tokens is ***, the rest unchanged" $?
done
cmp -s "$tmp/stored.txt" "$tmp/cli.txt"
check "vulcan logs prints the stored bytes" $?
cmp -s "$tmp/stored.txt" "$tmp/live.txt"
check "the SSE stream carries the same text" $?
kill -9 $pids 2>/dev/null
wait 2>/dev/null
pids=""

# ---- A server restart in the middle of an attempt (docs/secrets.md "After a server
# restart"): the server's masker is gone, the worker's goes on; the stored log is masked
# and whole, the worker's offsets (longer than the stored log) still fit.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rurl="http://127.0.0.1:$port"
start_r() {
    "$vulcan" server --require-auth --listen "127.0.0.1:$port" --data-dir "$tmp/r" \
        --log-format text >>"$tmp/r.log" 2>&1 &
    rserver=$!
    pids="$pids $rserver"
    for _ in $(seq 1 100); do
        curl -fs "$rurl/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
start_r
check "a second server starts" $?
radmin=$(cat "$tmp/r/initial-admin-token")
"$vulcan" admin create-registration-token --database "sqlite:$tmp/r/vulcan.db" --uses 1 \
    >"$tmp/reg.token" 2>"$tmp/err"
check "with a registration token for a worker" $?
"$vulcan" worker --server "$rurl" --group default --work-dir "$tmp/rw" \
    --registration-token-file "$tmp/reg.token" \
    --sandbox bwrap --log-format text >"$tmp/rw.log" 2>&1 &
pids="$pids $!"
cat >"$tmp/restart.kdl" <<'KDL'
version "0.1"
name "restart"
triggers "manual"
chain {
    machine "default"
    fragment {
        name "long"
        run #"""
T="$VULCAN_ID_TOKEN_REQUEST_TOKEN"
printf 'KEYS %s\n' "$(printf %s "$T" | rev)"
echo "before:$T"
sleep 8
echo "after:$T"
echo "done"
"""#
    }
}
KDL
python3 -c 'import json,sys; print(json.dumps({"content": open(sys.argv[1]).read(), "source_file_path": ".vulcan/restart.kdl", "branch": "main"}))' \
    "$tmp/restart.kdl" >"$tmp/body.json"
rchain=$(curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $radmin" \
    --data-binary @"$tmp/body.json" "$rurl/api/v1/parse" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["chain_id"])' 2>"$tmp/err")
rfid=
seen=1
for _ in $(seq 1 200); do
    rfid=$(curl -s -H "Authorization: Bearer $radmin" "$rurl/api/v1/chains/$rchain" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["fragments"][0]["id"])' 2>/dev/null)
    if [ -n "$rfid" ] && curl -s -H "Authorization: Bearer $radmin" \
        "$rurl/api/v1/fragments/$rfid/log" | grep -q '^before:\*\*\*$'; then
        seen=0
        break
    fi
    sleep 0.1
done
[ $seen -eq 0 ]
check "the first line is stored masked" $?
kill -9 $rserver
wait $rserver 2>/dev/null
start_r
check "the server starts again while the fragment sleeps" $?
st=
for _ in $(seq 1 400); do
    st=$(curl -s -H "Authorization: Bearer $radmin" "$rurl/api/v1/chains/$rchain" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)
    case "$st" in completed | failed) break ;; esac
    sleep 0.1
done
[ "$st" = completed ]
check "the attempt completes across the restart" $?
curl -s -H "Authorization: Bearer $radmin" "$rurl/api/v1/fragments/$rfid/log" >"$tmp/r.txt"
python3 - "$tmp/r.txt" >"$tmp/out" 2>"$tmp/err" <<'PY'
import sys
text = open(sys.argv[1]).read()
lines = text.split("\n")
assert lines[0].startswith("KEYS "), text[:200]
t = lines[0][5:][::-1]
assert len(t) >= 20 and t not in text, "the token is in the log"
assert lines[1:] == ["before:***", "after:***", "done", ""], repr(lines[1:])
PY
check "the log after the restart is whole and masked by the worker" $?
finish
