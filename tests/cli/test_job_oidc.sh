#!/bin/sh
# Issue 13, job identity: a real fragment of `vulcan server --require-auth --workers 1`
# asks VULCAN_ID_TOKEN_REQUEST_URL for an id token with VULCAN_ID_TOKEN_REQUEST_TOKEN, and
# an independent implementation (python3-jwt, Debian's) checks it with nothing but the
# server's published JWKS: the ES256 signature, issuer, audience, expiry (at most 10
# minutes) and the claims of DESIGN §7. A forged, re-signed or expired token is refused by
# the same check; a job token is refused once its attempt has ended.
# Usage: test_job_oidc.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
py=/usr/bin/python3
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

"$vulcan" server --require-auth --workers 1 --worker-sandbox none --listen 127.0.0.1:0 \
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
[ "$(stat -c %a "$tmp/data/job-oidc-key.pem")" = 600 ]
check "the signing key is made at first start, mode 0600" $?
curl -fs "$url/.well-known/openid-configuration" >"$tmp/disc.json"
check "the discovery document is served anonymously" $?
curl -fs "$url/.well-known/jwks.json" >"$tmp/jwks.json"
check "and the JWKS" $?

cat >"$tmp/wf.kdl" <<'KDL'
version "0.1"
name "release"
triggers "manual"
chain {
    machine "default"
    fragment {
        name "deploy"
        run "curl -fsS -H \"Authorization: Bearer $VULCAN_ID_TOKEN_REQUEST_TOKEN\" \"$VULCAN_ID_TOKEN_REQUEST_URL?audience=sts.example.com\" > \"$IDTOK\"; cat \"$IDTOK\"; echo; printf '%s\\n' \"$VULCAN_ID_TOKEN_REQUEST_TOKEN\" > \"$JOBTOK\""
    }
}
KDL
python3 -c 'import json,sys; print(json.dumps({"content": open(sys.argv[1]).read(), "source_file_path": ".vulcan/release.kdl", "branch": "main", "env": {"JOBTOK": sys.argv[2], "IDTOK": sys.argv[3]}}))' \
    "$tmp/wf.kdl" "$tmp/jobtok" "$tmp/tok.json" >"$tmp/body.json"
curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $admin" \
    --data-binary @"$tmp/body.json" "$url/api/v1/parse" >"$tmp/sub.json"
chain=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chain_id"])' "$tmp/sub.json")
st=
for _ in $(seq 1 200); do
    st=$(curl -s -H "Authorization: Bearer $admin" "$url/api/v1/chains/$chain" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    case "$st" in completed | failed) break ;; esac
    sleep 0.1
done
[ "$st" = completed ]
check "the fragment asking for a token completes" $?
VULCAN_TOKEN=$admin "$vulcan" logs "$chain" --server "$url" >"$tmp/log" 2>&1
grep -q '{"value":"[^"]*"}' "$tmp/tok.json"
check "and gets {\"value\": JWT}" $?
# The token printed by the fragment is masked in its log (docs/secrets.md "Masking").
grep -qF '{"value":"***"}' "$tmp/log" &&
    ! grep -qF "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["value"])' "$tmp/tok.json")" "$tmp/log"
check "the ID token the fragment printed is *** in its log" $?

cat >"$tmp/verify.py" <<'PY'
import json, sys, time
import jwt
from jwt.algorithms import ECAlgorithm
issuer, jwks, tok, mode = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))["value"], sys.argv[4]
keys = {k["kid"]: ECAlgorithm.from_jwk(json.dumps(k)) for k in jwks["keys"]}
if mode == "tamper":   # change a claim, keep the signature
    h, p, s = tok.split(".")
    import base64
    claims = json.loads(base64.urlsafe_b64decode(p + "=="))
    claims["ref"] = "refs/heads/evil"
    p = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    tok = ".".join([h, p, s])
elif mode == "resign": # a token signed with another key of the same kid
    from cryptography.hazmat.primitives.asymmetric import ec
    other = ec.generate_private_key(ec.SECP256R1())
    claims = jwt.decode(tok, options={"verify_signature": False})
    tok = jwt.encode(claims, other, algorithm="ES256", headers={"kid": jwt.get_unverified_header(tok)["kid"]})
kid = jwt.get_unverified_header(tok)["kid"]
leeway = -400 if mode == "late" else 0  # as if checked 400 s later
c = jwt.decode(tok, keys[kid], algorithms=["ES256"], audience="sts.example.com", issuer=issuer,
               leeway=leeway, options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]})
assert c["exp"] - c["iat"] <= 600, "lives longer than 10 minutes"
for k in ["org", "repository", "repository_url", "ref", "sha", "workflow", "chain_id",
          "fragment_id", "attempt", "trigger", "environment", "machine_group", "worker_id"]:
    assert k in c, "no claim " + k
assert c["org"] == "default" and c["ref"] == "refs/heads/main" and c["trigger"] == "manual"
assert c["workflow"] == ".vulcan/release.kdl" and c["machine_group"] == "default" and c["attempt"] == 1
assert c["sub"] == "org:default:repo::ref:refs/heads/main:workflow:.vulcan/release.kdl:fragment:deploy", c["sub"]
print("ok", c["chain_id"], c["fragment_id"])
PY
iss=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["issuer"])' "$tmp/disc.json")
[ "$iss" = "$url" ]
check "the issuer is the server's URL" $?
$py "$tmp/verify.py" "$iss" "$tmp/jwks.json" "$tmp/tok.json" ok >"$tmp/out" 2>"$tmp/err"
check "python3-jwt verifies signature, issuer, audience, expiry and the claims" $?
grep -q "ok $chain" "$tmp/out"
check "the token names its chain" $?
for mode in tamper resign late; do
    $py "$tmp/verify.py" "$iss" "$tmp/jwks.json" "$tmp/tok.json" $mode >"$tmp/out" 2>"$tmp/err"
    check "a $mode token is refused by the same check" $([ $? -ne 0 ]; echo $?)
done
jt=$(cat "$tmp/jobtok")
code=$(curl -s -o "$tmp/out" -w '%{http_code}' -H "Authorization: Bearer $jt" "$url/api/v1/id-token")
[ "$code" = 401 ]
check "the job token is refused once its attempt has ended (401)" $?
code=$(curl -s -o "$tmp/out" -w '%{http_code}' -H "Authorization: Bearer $admin" "$url/api/v1/id-token")
[ "$code" = 401 ]
check "a personal access token gets no id token (401)" $?
grep -Eq 'eyJ[0-9A-Za-z_-]{20}|vk_job_[0-9A-Za-z]{20}' "$tmp/server.log"
check "no id token or job token in the server log" $([ $? -ne 0 ]; echo $?)

# Key rotation: the new key signs, the previous one stays in the JWKS, so the token it
# signed a moment ago still verifies with the JWKS of the restarted server.
kill $pids 2>/dev/null
wait 2>/dev/null
"$vulcan" admin rotate-job-key --data-dir "$tmp/data" >"$tmp/rot" 2>&1
check "vulcan admin rotate-job-key makes a new key" $?
[ "$(stat -c %a "$tmp/data/job-oidc-key.pem")" = 600 ] && [ -f "$tmp/data/job-oidc-key.pem.previous" ]
check "the new key is 0600 and the previous one is kept beside it" $?
"$vulcan" server --require-auth --workers 0 --listen 127.0.0.1:0 --data-dir "$tmp/data" \
    --log-format text >"$tmp/server2.log" 2>&1 &
pids=$!
url2=
for _ in $(seq 1 100); do
    url2=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$tmp/server2.log")
    [ -n "$url2" ] && curl -fs "$url2/health" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "$url2/.well-known/jwks.json" >"$tmp/jwks2.json"
check "the restarted server serves its JWKS" $?
python3 - "$tmp/jwks.json" "$tmp/jwks2.json" <<'PY'
import json, sys
old = [k["kid"] for k in json.load(open(sys.argv[1]))["keys"]]
new = [k["kid"] for k in json.load(open(sys.argv[2]))["keys"]]
assert len(old) == 1 and len(new) == 2, (old, new)
assert new[1] == old[0] and new[0] != old[0], (old, new)
PY
check "its JWKS has the new key first and the previous one second" $?
$py "$tmp/verify.py" "$iss" "$tmp/jwks2.json" "$tmp/tok.json" ok >"$tmp/out" 2>"$tmp/err"
check "the token signed before the rotation still verifies with the new JWKS" $?
"$vulcan" admin rotate-job-key --data-dir "$tmp/nowhere" >"$tmp/rot2" 2>&1
check "rotating where there is no key fails (exit 1)" $([ $? -eq 1 ]; echo $?)
finish
