#!/bin/sh
# Requests fuzz_http (fuzz/fuzz_http.c) found to break the server, replayed against a real
# `vulcan server` on loopback: each must get a well-formed answer, and the server must
# still answer /health afterwards.
#  - A path that is not UTF-8 (or a UTF-8 one cut inside a character by the 256-byte bound
#    of the 404 message) made the error answer impossible to build as JSON; the request
#    then went on to a handler with no route and the server crashed (NULL dereference).
# Usage: test_http_regressions.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

: >"$tmp/server.log"
"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" --log-format text --no-auth \
    >"$tmp/server.log" 2>&1 &
pids="$pids $!"
url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$tmp/server.log")
    [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
port=${url##*:}
[ -n "$url" ]
check "the server starts" $?

raw() { # python bytes literal of a request -> the answer's status line and body
    python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(eval(sys.argv[2]))
s.settimeout(5)
d = b""
try:
    while True:
        x = s.recv(65536)
        if not x:
            break
        d += x
        h, _, b = d.partition(b"\r\n\r\n")
        if _ and b"content-length:" in h.lower():
            n = int(h.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(b) >= n:
                break
except OSError:
    pass
h, _, b = d.partition(b"\r\n\r\n")
print(h.split(b"\r\n")[0].decode(errors="replace"))
print(b.decode(errors="replace"))' "$port" "$1"
}

raw 'b"GET /api/v1" + b"\x99" * 87 + b"/queue/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"' >"$tmp/out"
head -1 "$tmp/out" | grep -q '^HTTP/1.1 404' && grep -q '"not_found"' "$tmp/out" &&
    grep -q '???' "$tmp/out"
check "a path that is not UTF-8: 404 with the bytes as '?' (fuzz_http crash)" $?
curl -fs "$url/health" >/dev/null
check "and the server still answers /health" $?

raw 'b"GET /api/v1/x" + "é".encode() * 200 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"' >"$tmp/out"
head -1 "$tmp/out" | grep -q '^HTTP/1.1 404'
check "a long UTF-8 path cut inside a character by the message bound: 404" $?
raw 'b"DELETE /health" + b"\xff" * 300 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"' >"$tmp/out"
head -1 "$tmp/out" | grep -q '^HTTP/1.1 40[45]'
check "a method not allowed on a path that is not UTF-8: an error answer" $?
curl -fs "$url/health" >/dev/null
check "the server still answers /health after all of them" $?
finish
