#!/bin/sh
# Issue 17, console: the API keeps matrix metadata (migration 15). A matrix chain run by a
# real server: GET /api/v1/chains/{id} marks the matrix group "matrix": true and gives each
# copy its combination as "matrix_values" (in the matrix's order, include variables last);
# other fragments carry neither; a rerun keeps them. Usage: test_matrix_api.sh VULCAN
# With VK_TEST_PG_URL (scripts/pg-test.sh, cli_matrix_api_pg) the server uses PostgreSQL.
vulcan=$1
. "$(dirname "$0")/lib.sh"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
mkdir -p "$tmp/data"
set --
[ -n "${VK_TEST_PG_URL:-}" ] && set -- --database "$VK_TEST_PG_URL"
"$vulcan" server --no-auth --listen "127.0.0.1:$port" --data-dir "$tmp/data" --workers 1 \
    --worker-sandbox none --log-format text "$@" >"$tmp/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$tmp"' EXIT
i=0
until curl -sf "$url/health" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -gt 100 ] && { echo "server did not start"; cat "$tmp/server.log"; exit 1; }
    sleep 0.1
done

cat >"$tmp/wf.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment {
        name "test"
        matrix {
            cc "gcc" "clang"
            os "deb" "ubu"
            include { cc "gcc"; flags "-O3"; }
            fail-fast #false
        }
        run "test {matrix.cc}-{matrix.os} != clang-ubu"
    }
    fragment { name "after"; run "echo after" }
}
KDL

# Wait for chain $1 to end; its JSON in $tmp/chain.json, its status in $status.
wait_chain() {
    status=""
    i=0
    while [ $i -lt 300 ]; do
        curl -sf "$url/api/v1/chains/$1" >"$tmp/chain.json" 2>/dev/null
        status=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' "$tmp/chain.json" 2>/dev/null)
        case $status in completed | failed | cancelled) return ;; esac
        i=$((i + 1))
        sleep 0.2
    done
}

check_matrix() {
    python3 - "$tmp/chain.json" >"$tmp/err" 2>&1 <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
g, after = c["fragments"]
assert g["name"] == "test" and g["matrix"] is True and g["is_parallel"] is True, g
assert "matrix_values" not in g, g
copies = g["children"]
got = [(x["name"], list(x["matrix_values"].items())) for x in copies]
want = [("test (gcc, deb, -O3)", [("cc", "gcc"), ("os", "deb"), ("flags", "-O3")]),
        ("test (gcc, ubu, -O3)", [("cc", "gcc"), ("os", "ubu"), ("flags", "-O3")]),
        ("test (clang, deb)", [("cc", "clang"), ("os", "deb")]),
        ("test (clang, ubu)", [("cc", "clang"), ("os", "ubu")])]
assert got == want, got
assert all("matrix" not in x for x in copies), copies
st = {x["name"]: x["status"] for x in copies}
assert st["test (clang, ubu)"] == "failed" and list(st.values()).count("completed") == 3, st
assert "matrix" not in after and "matrix_values" not in after, after
assert after["status"] == "skipped" and after["error"].startswith("skipped: "), after
PY
}

if [ -n "${VK_TEST_PG_URL:-}" ]; then
    grep -q 'store=postgres' "$tmp/server.log"
    check "the server runs on PostgreSQL" $?
fi
"$vulcan" submit "$tmp/wf.kdl" --server "$url" >"$tmp/out" 2>"$tmp/err"
check "submit the matrix chain" $?
chain=$(tail -n 1 "$tmp/out")
wait_chain "$chain"
[ "$status" = failed ]
check "the chain with one failing copy ends failed (status: $status)" $?
check_matrix
check "the API marks the matrix group and gives each copy its combination, in order" $?

curl -sf -X POST "$url/api/v1/chains/$chain/rerun" >"$tmp/rerun.json" 2>"$tmp/err"
check "rerun the chain" $?
again=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chain_id"])' "$tmp/rerun.json" 2>/dev/null)
[ -n "$again" ] && wait_chain "$again"
check_matrix
check "the rerun keeps the matrix metadata" $?
finish
