#!/bin/bash
# `network #true` (issue 12 item 8): the sandbox has no network unless the fragment asks
# for it; `vulcan server --sandbox-network deny` refuses such a workflow at POST
# /api/v1/parse, naming the fragment and the policy. The loopback TCP server the
# scripts try to reach is the test's own `vulcan server`.
# Usage: test_network.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"

if ! bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true 2>/dev/null; then
    echo "test_network.sh: skipped: bubblewrap cannot run here"
    exit 0
fi

port=$((20000 + $$ % 20000))
"$vulcan" server --listen "127.0.0.1:$port" --data-dir "$tmp/data" --roles api \
    --sandbox-network deny --log-level error >"$tmp/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
done

cat >"$tmp/net.kdl" <<KDL
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment {
        name "offline"
        run "if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo offline=connected; else echo offline=refused; fi"
    }
    fragment {
        name "install"
        network #true
        run "if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo install=connected; else echo install=refused; fi; echo net=\$VULCAN_NETWORK"
    }
}
KDL

"$vulcan" run --sandbox bwrap "$tmp/net.kdl" >"$tmp/out" 2>"$tmp/err"
check "a run with a network fragment exits 0" $?
grep -q "offline=refused" "$tmp/out"
check "a fragment without 'network' cannot reach a loopback server on the host" $?
grep -q "install=connected" "$tmp/out"
check "a fragment with 'network #true' reaches it" $?
grep -q "net=true" "$tmp/out"
check "the script sees VULCAN_NETWORK=true" $?

python3 -c 'import json,sys; print(json.dumps({"content": open(sys.argv[1]).read(), "source_file_path": "net.kdl"}))' \
    "$tmp/net.kdl" >"$tmp/body.json"
code=$(curl -sS -o "$tmp/out" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$tmp/body.json" "http://127.0.0.1:$port/api/v1/parse" 2>"$tmp/err")
[ "$code" = 403 ]
check "with --sandbox-network deny, POST /api/v1/parse refuses (403)" $?
grep -q "fragment 'install' asks for the network" "$tmp/out" && grep -q "sandbox-network deny" "$tmp/out" &&
    grep -q "net.kdl:9:5:" "$tmp/out"
check "the refusal names the fragment, its position and the policy" $?

"$vulcan" server --sandbox-network maybe >"$tmp/out" 2>"$tmp/err"
check "an unknown --sandbox-network policy exits 2" $([ $? -eq 2 ]; echo $?)
"$vulcan" server --help >"$tmp/out" && grep -q -- "--sandbox-network" "$tmp/out"
check "vulcan server --help documents --sandbox-network" $?
"$vulcan" worker --help >"$tmp/out" && grep -q -- "--no-network" "$tmp/out" &&
    grep -q -- "--sandbox-ro" "$tmp/out" && grep -q -- "--sandbox-rw" "$tmp/out"
check "vulcan worker --help documents --no-network, --sandbox-ro and --sandbox-rw" $?

finish
