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
"$vulcan" server --no-auth --listen "127.0.0.1:$port" --data-dir "$tmp/data" --roles api \
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

"$vulcan" run --sandbox bwrap --env VULCAN_NETWORK=true "$tmp/net.kdl" >"$tmp/out" 2>"$tmp/err"
grep -q "offline=refused" "$tmp/out"
check "setting VULCAN_NETWORK by hand grants no network" $?

python3 -c 'import json,sys; print(json.dumps({"content": open(sys.argv[1]).read(), "source_file_path": "net.kdl"}))' \
    "$tmp/net.kdl" >"$tmp/body.json"
code=$(curl -sS -o "$tmp/out" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$tmp/body.json" "http://127.0.0.1:$port/api/v1/parse" 2>"$tmp/err")
[ "$code" = 403 ]
check "with --sandbox-network deny, POST /api/v1/parse refuses (403)" $?
grep -q "fragment 'install' asks for the network" "$tmp/out" && grep -q "sandbox-network deny" "$tmp/out" &&
    grep -q "net.kdl:9:5:" "$tmp/out"
check "the refusal names the fragment, its position and the policy" $?

# A worker started with --no-network fails such a fragment rather than run it offline.
port2=$((port + 1))
"$vulcan" server --no-auth --listen "127.0.0.1:$port2" --data-dir "$tmp/data2" --roles api,orchestrator \
    --log-level error >"$tmp/server2.log" 2>&1 &
server2=$!
"$vulcan" worker --server "http://127.0.0.1:$port2" --group default --work-dir "$tmp/w" \
    --no-network --wait 1 --log-level error >"$tmp/worker.log" 2>&1 &
worker=$!
trap 'kill "$server" "$server2" "$worker" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port2/health" >/dev/null 2>&1 && break
    sleep 0.1
done
code=$(curl -sS -o "$tmp/out" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$tmp/body.json" "http://127.0.0.1:$port2/api/v1/parse" 2>"$tmp/err")
[ "$code" = 201 ]
check "with the default policy (allow), the workflow is accepted" $?
chain=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chain_id"])' "$tmp/out" 2>/dev/null)
for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$port2/api/v1/chains/$chain" >"$tmp/out" 2>"$tmp/err"
    grep -q '"status": *"\(failed\|succeeded\|cancelled\)"' "$tmp/out" &&
        grep -q "no-network" "$tmp/out" && break
    sleep 0.2
done
grep -q "fragment 'install' asks for the network ('network #true') but this worker runs with --no-network" "$tmp/out"
check "a --no-network worker fails the fragment and says why" $?
grep -q '"name":"install".*"status":"failed"' "$tmp/out" && grep -q '"status":"completed"' "$tmp/out"
check "only the network fragment fails; the one without network ran" $?

"$vulcan" server --sandbox-network maybe >"$tmp/out" 2>"$tmp/err"
check "an unknown --sandbox-network policy exits 2" $([ $? -eq 2 ]; echo $?)
"$vulcan" server --help >"$tmp/out" && grep -q -- "--sandbox-network" "$tmp/out"
check "vulcan server --help documents --sandbox-network" $?
"$vulcan" worker --help >"$tmp/out" && grep -q -- "--no-network" "$tmp/out" &&
    grep -q -- "--sandbox-ro" "$tmp/out" && grep -q -- "--sandbox-rw" "$tmp/out"
check "vulcan worker --help documents --no-network, --sandbox-ro and --sandbox-rw" $?

finish
