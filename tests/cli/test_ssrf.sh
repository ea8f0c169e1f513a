#!/bin/sh
# Issue 14, item 1, each attack against a real `vulcan server` on loopback: repository URLs
# the server must not fetch (a loopback http service, file:// and local paths, the cloud
# metadata address 169.254.169.254, names that are loopback: localhost, the machine's own
# name after DNS, ext:: and option-looking hosts) are refused and the internal service sees
# no connection; when the operator allows a range, git's complaints (an internal service's
# body with token=abc123) stay in the server log and the caller gets a fixed message, the
# same for an open and a closed port; URL imports obey the same rules; turning
# allow_url_imports on needs a maintainer.
# Usage: test_ssrf.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

start() { # data dir, log, extra... -> $url
    d=$1 l=$2
    shift 2
    : >"$l"
    "$vulcan" server --listen 127.0.0.1:0 --data-dir "$d" --log-format text "$@" >"$l" 2>&1 &
    pids="$pids $!"
    url=
    for _ in $(seq 1 100); do
        url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$l")
        [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    [ -n "$url" ]
}
post_repo() { # repository URL [token] -> $code, $tmp/ans
    code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Content-Type: application/json' \
        -H "Authorization: Bearer ${2:-none}" --data "{\"url\":\"$1\"}" "$u/api/v1/repos")
}
repo_id() { sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' "$tmp/ans"; }
conns() { wc -l <"$tmp/conns" | tr -d ' '; }

# The internal service: answers every request as a git server whose error carries a secret.
cat >"$tmp/svc.py" <<'PY'
import http.server, sys
log = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(log, "a") as f:
            f.write(self.path + "\n")
        msg = b"ERR internal: token=abc123 db=prod\n"
        pkt = b"%04x" % (len(msg) + 4) + msg
        self.send_response(200)
        self.send_header("Content-Type", "application/x-git-upload-pack-advertisement")
        self.send_header("Content-Length", str(len(pkt)))
        self.end_headers()
        self.wfile.write(pkt)
    do_POST = do_GET
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(s.server_address[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
PY
: >"$tmp/conns"
python3 "$tmp/svc.py" "$tmp/svcport" "$tmp/conns" &
pids="$pids $!"
for _ in $(seq 1 50); do [ -s "$tmp/svcport" ] && break; sleep 0.1; done
sp=$(cat "$tmp/svcport")
# a closed port: bound and closed again
cp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# A repository on this machine, with a workflow and a secret next to it.
repo=$tmp/repo
mkdir -p "$repo/.vulcan" "$repo/config"
echo 'DB_PASSWORD=hunter2' >"$repo/config/prod.env"
cat >"$repo/.vulcan/ci.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment { from "../config/prod.env"; }
}
KDL
git -C "$repo" init -q -b main && git -C "$repo" add -A &&
    git -C "$repo" -c user.name=t -c user.email=t@t commit -qm init
check "a local repository" $?

# ---- The default policy: https and ssh to public addresses only.
start "$tmp/d1" "$tmp/s1.log" --no-auth
check "a server with the default policy" $?
u=$url
post_repo "http://127.0.0.1:$sp/x.git"
[ "$code" = 400 ] && grep -q '"url_not_allowed"' "$tmp/ans" && grep -q "http scheme" "$tmp/ans"
check "http:// is not a default scheme (400)" $?
post_repo "file://$repo"
[ "$code" = 400 ] && grep -q -- "--allow-file-repos" "$tmp/ans"
check "file:// needs --allow-file-repos (400)" $?
post_repo "$repo"
[ "$code" = 400 ] && grep -q -- "--allow-file-repos" "$tmp/ans"
check "a local path needs --allow-file-repos (400)" $?
for h in 169.254.169.254 "[fe80::1]" 10.0.0.1 "[::ffff:127.0.0.1]" 2130706433 0x7f.1 \
    localhost localhost. a.localhost 0.0.0.0 100.64.0.1 "[fd00::1]" 224.0.0.1; do
    post_repo "https://$h:$sp/x.git"
    [ "$code" = 400 ] && grep -q "the host is a" "$tmp/ans"
    check "https://$h is refused before any connection (400)" $?
done
post_repo "ssh://-oProxyCommand=touch%20$tmp/pwned/x"
[ "$code" = 400 ]
check "an option-looking ssh host is refused (400)" $?
post_repo "ext::sh -c touch% $tmp/pwned"
[ "$code" = 400 ]
check "ext:: is refused (400)" $?
wf='version \"0.1\"\ntriggers \"manual\"\nchain {\n    machine \"default\"\n    fragment { name \"x\"; run \"true\"; }\n}\n'
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data "{\"content\":\"$wf\",\"repository_url\":\"file:///etc\"}" "$u/api/v1/parse")
[ "$code" = 400 ] && grep -q "url_not_allowed" "$tmp/ans"
check "a chain for a file:// repository (cloned by the local workers) is refused (400)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data "{\"content\":\"$wf\",\"repository_url\":\"https://169.254.169.254/x\"}" \
    "$u/api/v1/parse")
[ "$code" = 400 ]
check "and one for the metadata address (400)" $?
[ "$(conns)" = 0 ] && [ ! -e "$tmp/pwned" ]
check "the internal service saw no connection, no command ran" $?

# ---- A name that DNS turns into a loopback or private address: refused after resolution.
me=$(hostname)
me_local=
if python3 -c 'import ipaddress,socket,sys
a={i[4][0] for i in socket.getaddrinfo(sys.argv[1],443)}
sys.exit(0 if a and not any(ipaddress.ip_address(x).is_global for x in a) else 1)' "$me" 2>/dev/null; then
    me_local=$(python3 -c 'import socket,sys; print("y" if all(i[4][0].startswith("127.") or i[4][0] == "::1" for i in socket.getaddrinfo(sys.argv[1],443)) else "")' "$me")
    post_repo "https://$me:$sp/x.git"
    [ "$code" = 201 ]
    check "https://$me passes the checks that need no resolver (201)" $?
    id=$(repo_id)
    code=$(curl -s -o "$tmp/ans" -w '%{http_code}' "$u/api/v1/repos/$id/workflows")
    [ "$code" = 403 ] && grep -q "resolves to a" "$tmp/ans"
    check "but its addresses are refused before the fetch (403)" $?
    [ "$(conns)" = 0 ]
    check "and the service saw no connection" $?
else
    echo "note: $me resolves to a public address here; the resolver case is not tried"
fi

# ---- The operator allows loopback and http: git runs, its words stay in the log.
start "$tmp/d2" "$tmp/s2.log" --no-auth --repo-schemes https,ssh,http --allow-repo-hosts 127.0.0.0/8
check "a server allowing 127.0.0.0/8 and http" $?
u=$url
post_repo "http://127.0.0.1:$sp/x.git"
[ "$code" = 201 ]
check "a loopback http repository inside the allowed range (201)" $?
open_id=$(repo_id)
code=$(curl -s -o "$tmp/open" -w '%{http_code}' "$u/api/v1/repos/$open_id/workflows")
[ "$code" = 502 ] && grep -q "see the server log, request id" "$tmp/open" &&
    ! grep -q "abc123" "$tmp/open"
check "the service's error body (token=abc123) does not reach the caller (502)" $?
[ "$(conns)" -ge 1 ] && grep -q "token=abc123" "$tmp/s2.log"
check "git did reach the service, and its full error is in the server log" $?
rid=$(sed -n 's/.*request id \([0-9a-f-]*\).*/\1/p' "$tmp/open")
grep "cannot fetch the repository" "$tmp/s2.log" | grep -q "$rid"
check "the log line names the request id the caller got" $?
post_repo "http://127.0.0.1:$cp/x.git"
closed_id=$(repo_id)
code=$(curl -s -o "$tmp/closed" -w '%{http_code}' "$u/api/v1/repos/$closed_id/workflows")
[ "$code" = 502 ]
check "a closed port: 502" $?
sed 's/request id [0-9a-f-]*/request id X/' "$tmp/open" >"$tmp/open.n"
sed 's/request id [0-9a-f-]*/request id X/' "$tmp/closed" >"$tmp/closed.n"
cmp -s "$tmp/open.n" "$tmp/closed.n"
check "open and closed ports answer the same (no port scanner)" $?
post_repo "file://$repo"
[ "$code" = 400 ]
check "file:// still needs --allow-file-repos there (400)" $?

# ---- Redirects: git follows none, so a checked host cannot send it to an unchecked one.
cat >"$tmp/redir.py" <<'PY'
import http.server, os, sys
bind, portfile, log, target = sys.argv[1:5]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(log, "a") as f:
            f.write(self.path + "\n")
        self.send_response(302 if target != "-" else 404)
        if target != "-":
            self.send_header("Location", target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer((bind, 0), H)
open(portfile + ".tmp", "w").write(str(s.server_address[1]))
os.rename(portfile + ".tmp", portfile)
s.serve_forever()
PY
: >"$tmp/inner"
: >"$tmp/outer"
python3 "$tmp/redir.py" 127.0.0.2 "$tmp/innerport" "$tmp/inner" - &
pids="$pids $!"
for _ in $(seq 1 50); do [ -s "$tmp/innerport" ] && break; sleep 0.1; done
python3 "$tmp/redir.py" 127.0.0.1 "$tmp/outerport" "$tmp/outer" "http://127.0.0.2:$(cat "$tmp/innerport")" &
pids="$pids $!"
for _ in $(seq 1 50); do [ -s "$tmp/outerport" ] && break; sleep 0.1; done
start "$tmp/d5" "$tmp/s5.log" --no-auth --repo-schemes https,ssh,http --allow-repo-hosts 127.0.0.1/32
u=$url
post_repo "http://127.0.0.2:$(cat "$tmp/innerport")/x.git"
[ "$code" = 400 ]
check "127.0.0.2 is outside --allow-repo-hosts 127.0.0.1/32 (400)" $?
post_repo "http://127.0.0.1:$(cat "$tmp/outerport")/x.git"
id=$(repo_id)
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' "$u/api/v1/repos/$id/workflows")
[ "$code" = 502 ] && [ -s "$tmp/outer" ] && [ ! -s "$tmp/inner" ]
check "a redirect from the allowed host to 127.0.0.2 is not followed" $?

# ---- URL imports: the same rules, checked on every connection libcurl opens.
start "$tmp/d3" "$tmp/s3.log" --no-auth --allow-file-repos
check "a server allowing local repositories" $?
u=$url
post_repo "file://$repo"
[ "$code" = 201 ]
check "file:// with --allow-file-repos (201)" $?
id=$(repo_id)
wf='version \"0.1\"\ntriggers \"manual\"\nchain {\n    machine \"default\"\n    fragment { name \"x\"; run \"true\"; }\n}\n'
code=$(curl -s -o "$tmp/out" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data "{\"content\":\"$wf\",\"repository_url\":\"file://$repo\"}" "$u/api/v1/parse")
[ "$code" = 201 ]
check "and so is a chain for it (201)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' "$u/api/v1/repos/$id/workflows")
[ "$code" = 200 ] && grep -q '"ci.kdl"\|ci.kdl' "$tmp/ans"
check "the operator's flag lets the server read a local repository (200)" $?
cat >"$repo/.vulcan/ci.kdl" <<KDL
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment { from "https://127.0.0.1:$sp/a.kdl"; }
}
KDL
git -C "$repo" -c user.name=t -c user.email=t@t commit -qam imports
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' \
    --data '{"allow_url_imports":true}' "$u/api/v1/repos/$id")
[ "$code" = 200 ]
check "allow_url_imports on (--no-auth: the caller is the owner)" $?
before=$(conns)
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' "$u/api/v1/repos/$id/workflows")
[ "$code" = 200 ] && grep -q "not allowed: the host is a loopback address" "$tmp/ans"
check "a URL import of a loopback address is refused" $?
if [ -n "$me_local" ]; then
    sed -i "s|https://127.0.0.1:|https://$me:|" "$repo/.vulcan/ci.kdl"
    git -C "$repo" -c user.name=t -c user.email=t@t commit -qam "import by name"
    code=$(curl -s -o "$tmp/ans" -w '%{http_code}' "$u/api/v1/repos/$id/workflows")
    [ "$code" = 200 ] && grep -q "the import's host is a loopback address" "$tmp/ans"
    check "an import by a name resolving to loopback is refused when libcurl connects" $?
fi
[ "$(conns)" = "$before" ]
check "and the service saw no connection from the imports" $?

# ---- allow_url_imports needs a maintainer.
start "$tmp/d4" "$tmp/s4.log" --allow-file-repos
u=$url
db="sqlite:$tmp/d4/vulcan.db"
"$vulcan" admin create-user --database "$db" dev --org default --role developer >"$tmp/out" 2>&1 &&
    "$vulcan" admin create-user --database "$db" boss --org default --role maintainer >"$tmp/out" 2>&1
check "a developer and a maintainer" $?
dev=$("$vulcan" admin create-token --database "$db" --user dev)
boss=$("$vulcan" admin create-token --database "$db" --user boss)
post_repo "file://$repo" "$boss"
[ "$code" = 201 ]
check "a maintainer adds the repository" $?
id=$(repo_id)
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $dev" --data '{"allow_url_imports":true}' "$u/api/v1/repos/$id")
[ "$code" = 403 ] && grep -q maintainer "$tmp/ans"
check "a developer cannot turn allow_url_imports on (403)" $?
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $boss" --data '{"allow_url_imports":true}' "$u/api/v1/repos/$id")
[ "$code" = 200 ] && grep -q '"allow_url_imports": *true' "$tmp/ans"
check "a maintainer can (200)" $?

finish
