#!/bin/sh
# Issue 13, TLS and the client's credentials, through the real binary: a private CA and a
# server certificate for 127.0.0.1/localhost made here with openssl; `vulcan server
# --tls-cert --tls-key --require-auth --workers 1`; curl --cacert works, plain http to the
# TLS port does not; the CLI without --ca-cert fails naming the certificate problem and
# --ca-cert, with it works; a worker with --ca-cert registers and a chain completes over
# TLS (on it and on the local worker); a CA that did not sign the certificate is refused;
# a key that is not the certificate's makes the server exit 2. Then `vulcan login` writes
# the credentials file 0600 and client commands work without VULCAN_TOKEN; --token-file
# works for `vulcan submit`; `vulcan logout` removes the file.
# Usage: test_tls.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || { echo "openssl is not installed"; exit 1; }

# Nothing from the user's own login may leak in.
export XDG_CONFIG_HOME="$tmp/config"
unset VULCAN_TOKEN VULCAN_CA_CERT VULCAN_SERVER
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# ---- A private CA, a server certificate it signs, and a CA that signed nothing here.
pki="$tmp/pki"
mkdir -p "$pki"
(
    cd "$pki" || exit 1
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
        -subj "/CN=Vulcan test CA" &&
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
            -subj "/CN=localhost" &&
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf &&
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days 2 -extfile ext.cnf &&
        openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem \
            -days 2 -subj "/CN=Another CA" &&
        openssl genrsa -out wrong.key 2048 &&
        chmod 600 server.key wrong.key
) >"$tmp/out" 2>"$tmp/err"
check "openssl makes a CA and a server certificate" $?

# ---- A wrong key: exit 2 with a message.
"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/bad" --tls-cert "$pki/server.pem" \
    --tls-key "$pki/wrong.key" >"$tmp/out" 2>"$tmp/err"
check "a key that is not the certificate's: exit 2" $([ $? -eq 2 ]; echo $?)
grep -q "do not make a pair" "$tmp/err"
check "saying that certificate and key do not match" $?
"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/bad" --tls-cert "$pki/server.pem" \
    >"$tmp/out" 2>"$tmp/err"
check "--tls-cert without --tls-key: exit 2" $([ $? -eq 2 ]; echo $?)

# ---- The TLS server.
data="$tmp/data"
"$vulcan" server --require-auth --listen 127.0.0.1:0 --data-dir "$data" --workers 1 \
    --worker-sandbox none --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" \
    --log-format text >"$tmp/server.log" 2>&1 &
spid=$!
pids="$pids $spid"
url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*vulcan server started" url=\(https:[^ ]*\).*/\1/p' "$tmp/server.log")
    [ -n "$url" ] && curl -fs --cacert "$pki/ca.pem" "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
[ -n "$url" ]
check "the start-up line says https://" $?
curl -fsS --cacert "$pki/ca.pem" "$url/health" >"$tmp/out" 2>"$tmp/err"
check "curl --cacert gets /health over https" $?
! grep -q "beyond loopback" "$tmp/server.log"
check "no clear-text warning on loopback with TLS" $?
port=${url##*:}
curl -sS -m 5 "http://127.0.0.1:$port/health" >"$tmp/out" 2>"$tmp/err"
check "plain http to the TLS port fails" $([ $? -ne 0 ]; echo $?)
curl -sS -m 5 "$url/health" >"$tmp/out" 2>"$tmp/err"
check "curl without the CA refuses the certificate" $([ $? -eq 60 ]; echo $?)

admin=$(cat "$data/initial-admin-token")
VULCAN_TOKEN=$admin "$vulcan" chains ls --server "$url" >"$tmp/out" 2>"$tmp/err"
check "vulcan chains ls without --ca-cert exits 1" $([ $? -eq 1 ]; echo $?)
grep -q "TLS certificate of '$url' does not verify" "$tmp/err" && grep -q -- "--ca-cert" "$tmp/err"
check "naming the server, the certificate problem and --ca-cert" $?
VULCAN_TOKEN=$admin "$vulcan" chains ls --server "$url" --ca-cert "$pki/ca.pem" \
    >"$tmp/out" 2>"$tmp/err"
check "with --ca-cert it works" $?
VULCAN_TOKEN=$admin VULCAN_CA_CERT="$pki/ca.pem" "$vulcan" workers ls --server "$url" \
    >"$tmp/out" 2>"$tmp/err"
check "VULCAN_CA_CERT works too (vulcan workers ls)" $?
VULCAN_TOKEN=$admin "$vulcan" chains ls --server "$url" --ca-cert "$pki/other-ca.pem" \
    >"$tmp/out" 2>"$tmp/err"
check "a CA that did not sign the certificate is refused" $([ $? -eq 1 ]; echo $?)
grep -q "does not verify against --ca-cert" "$tmp/err"
check "and the message names --ca-cert" $?

# ---- Chains over TLS: the local worker (trusting --tls-cert) and a worker with --ca-cert.
cat >"$tmp/local.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment { name "hello"; run "echo hello-over-tls"; }
}
KDL
cat >"$tmp/remote.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "tlsgroup"
    fragment { name "remote"; run "echo remote-over-tls"; }
}
KDL
VULCAN_TOKEN=$admin timeout 60 "$vulcan" submit "$tmp/local.kdl" --server "$url" \
    --ca-cert "$pki/ca.pem" --follow >"$tmp/out" 2>"$tmp/err"
check "a chain completes on the local worker over TLS" $?
grep -q "hello-over-tls" "$tmp/out"
check "with its output" $?

"$vulcan" admin create-registration-token --database "sqlite:$data/vulcan.db" \
    --groups tlsgroup >"$tmp/reg.token" 2>"$tmp/err"
check "a registration token for the remote worker" $?
"$vulcan" worker --server "$url" --group tlsgroup --work-dir "$tmp/w-bad" --name no-ca \
    --registration-token-file "$tmp/reg.token" --sandbox none --log-format text \
    >"$tmp/noca.log" 2>&1 &
noca=$!
pids="$pids $noca"
"$vulcan" worker --server "$url" --group tlsgroup --work-dir "$tmp/w" --name remote \
    --registration-token-file "$tmp/reg.token" --sandbox none --log-format text \
    --ca-cert "$pki/ca.pem" >"$tmp/worker.log" 2>&1 &
wpid=$!
pids="$pids $wpid"
for _ in $(seq 1 100); do grep -q "msg=registered" "$tmp/worker.log" && break; sleep 0.1; done
cp "$tmp/worker.log" "$tmp/out"
grep -q "msg=registered" "$tmp/worker.log"
check "a worker with --ca-cert registers over TLS" $?
for _ in $(seq 1 50); do grep -q "does not verify" "$tmp/noca.log" && break; sleep 0.1; done
cp "$tmp/noca.log" "$tmp/out"
grep -q "does not verify" "$tmp/noca.log" && ! grep -q "msg=registered" "$tmp/noca.log"
check "a worker without it cannot register, and its log says why" $?
kill "$noca" 2>/dev/null
VULCAN_TOKEN=$admin timeout 60 "$vulcan" submit "$tmp/remote.kdl" --server "$url" \
    --ca-cert "$pki/ca.pem" --follow >"$tmp/out" 2>"$tmp/err"
check "a chain completes on the --ca-cert worker over TLS" $?
grep -q "remote-over-tls" "$tmp/out"
check "with its output" $?

# ---- SIGHUP re-reads the certificate.
kill -HUP "$spid"
for _ in $(seq 1 30); do grep -q "TLS certificate reloaded" "$tmp/server.log" && break; sleep 0.1; done
grep -q "TLS certificate reloaded" "$tmp/server.log" &&
    curl -fsS --cacert "$pki/ca.pem" "$url/health" >"$tmp/out" 2>"$tmp/err"
check "SIGHUP reloads the certificate and the server goes on serving" $?

# ---- --token-file for submit.
printf '%s\n' "$admin" >"$tmp/admin.token"
chmod 600 "$tmp/admin.token"
timeout 60 "$vulcan" submit "$tmp/local.kdl" --server "$url" --ca-cert "$pki/ca.pem" \
    --token-file "$tmp/admin.token" --follow >"$tmp/out" 2>"$tmp/err"
check "vulcan submit --token-file works" $?
"$vulcan" submit "$tmp/local.kdl" --server "$url" --ca-cert "$pki/ca.pem" \
    >"$tmp/out" 2>"$tmp/err"
check "and without a token it is refused" $([ $? -eq 1 ]; echo $?)
"$vulcan" repos ls --server "$url" --ca-cert "$pki/ca.pem" --token-file "$tmp/admin.token" \
    >"$tmp/out" 2>"$tmp/err"
check "vulcan repos ls --token-file works (every client command)" $?

# ---- vulcan login / logout.
"$vulcan" login --server "$url" --ca-cert "$pki/ca.pem" --token-file /dev/null \
    >"$tmp/out" 2>"$tmp/err"
check "login with an empty token file fails" $([ $? -ne 0 ]; echo $?)
echo vk_pat_notatoken >"$tmp/bad.token"
"$vulcan" login --server "$url" --ca-cert "$pki/ca.pem" --token-file "$tmp/bad.token" \
    >"$tmp/out" 2>"$tmp/err"
check "login with a wrong token is refused" $([ $? -eq 1 ]; echo $?)
[ ! -e "$XDG_CONFIG_HOME/vulcan/credentials" ]
check "and stores nothing" $?
"$vulcan" login --server "$url" --ca-cert "$pki/ca.pem" --token-file "$tmp/admin.token" \
    >"$tmp/out" 2>"$tmp/err"
check "vulcan login checks the token and stores it" $?
creds="$XDG_CONFIG_HOME/vulcan/credentials"
[ "$(stat -c %a "$creds")" = 600 ] && [ "$(stat -c %a "$XDG_CONFIG_HOME/vulcan")" = 700 ]
check "the credentials file is 0600 in a 0700 directory" $?
grep -q "$url" "$creds"
check "it holds the server URL" $?
"$vulcan" chains ls >"$tmp/out" 2>"$tmp/err"
check "vulcan chains ls then works without --server, VULCAN_TOKEN or --ca-cert" $?
timeout 60 "$vulcan" submit "$tmp/local.kdl" --follow >"$tmp/out" 2>"$tmp/err"
check "and so does vulcan submit --follow" $?
VULCAN_TOKEN=vk_pat_overridden "$vulcan" chains ls >"$tmp/out" 2>"$tmp/err"
check "VULCAN_TOKEN overrides the stored token" $([ $? -eq 1 ]; echo $?)
"$vulcan" logout >"$tmp/out" 2>"$tmp/err"
[ $? -eq 0 ] && [ ! -e "$creds" ]
check "vulcan logout removes the file" $?
"$vulcan" chains ls --server "$url" --ca-cert "$pki/ca.pem" >"$tmp/out" 2>"$tmp/err"
check "after it, no token is sent" $([ $? -eq 1 ]; echo $?)

kill "$spid"
wait "$spid"
check "the server stops cleanly" $?
finish
