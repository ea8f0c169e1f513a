#!/bin/sh
# The main job: a Vulcan CI server on SQLite with local workers, running an
# example workflow so you can watch it, then serving until Ctrl-C.
#
#   scripts/demo.sh [WORKFLOW]        (make demo)
#
# Environment: PORT (default 8080), WORKERS (default 2), DATA_DIR (default
# ./vulcan-data), BUILD (default ./build).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
vulcan="$build/vulcan"
workflow=${1:-$root/examples/hello.kdl}
port=${PORT:-8080}
url="http://127.0.0.1:$port"
data=${DATA_DIR:-$root/vulcan-data}

"$vulcan" server --listen "127.0.0.1:$port" --data-dir "$data" --workers "${WORKERS:-2}" \
    --log-format text --log-level warn &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; exit 0' INT TERM

i=0
until curl -fsS "$url/health" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 $server 2>/dev/null; then
        echo "demo: the server did not start (is port $port free? PORT=... changes it)" >&2
        kill -TERM $server 2>/dev/null || true
        exit 1
    fi
    sleep 0.1
done

# The server made the site admin 'admin' at its first start; the demo gives itself a
# token of theirs (kept in DATA_DIR/demo-token, mode 0600) for the client commands.
umask 077
if ! "$vulcan" admin create-token --database "sqlite:$data/vulcan.db" --user admin \
    --scopes read,write,admin --name "make demo" >"$data/demo-token"; then
    echo "demo: cannot make a token for the demo" >&2
    kill -TERM $server 2>/dev/null || true
    exit 1
fi
umask 022
VULCAN_TOKEN=$(cat "$data/demo-token")
export VULCAN_TOKEN

echo "== Vulcan CI server at $url (SQLite in $data, ${WORKERS:-2} local workers)"
echo "== submitting $workflow"
"$vulcan" submit --server "$url" --branch main --follow "$workflow" || true

cat <<TXT

== The server keeps running; every request needs a credential. Try:
   export VULCAN_TOKEN=\$(cat $data/demo-token)
   $vulcan submit --server $url --follow examples/hello.kdl
   $vulcan chains ls --server $url
   curl -s -H "Authorization: Bearer \$VULCAN_TOKEN" $url/api/v1/workers
   $vulcan run examples/hello.kdl      # a one-off run without a server or credentials
== The console at $url/ asks for a login. Give the user 'admin' a password first:
   printf '%s\\n' 'a long password' | $vulcan admin set-password --database sqlite:$data/vulcan.db admin
== Ctrl-C stops the server.
TXT
wait $server
