#!/bin/sh
# Run a command against a private, throw-away PostgreSQL cluster.
#
#   scripts/pg-test.sh COMMAND [ARGS...]
#
# Creates a cluster in a fresh temporary directory (initdb + pg_ctl; as the `postgres`
# user through runuser when run as root), listening on 127.0.0.1 at a free port, exports
#   VK_TEST_PG_URL=postgres://postgres@127.0.0.1:PORT/postgres   (and VK_BENCH_PG_URL)
#   VK_TEST_PG_DIR=<temp dir>      VK_TEST_PG_CTL="<this script> --ctl"
# runs COMMAND, then stops and removes the cluster and exits with COMMAND's status.
# If the cluster cannot be started it prints the server log and exits 1 (tests fail,
# they never skip). `$VK_TEST_PG_CTL stop|start` stops (fast) or starts the same cluster
# again, for tests that restart the server in the middle of a run.
set -u

pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
        if [ -x "$d/initdb" ]; then echo "$d"; return; fi
    done
    command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)"
}

as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start_cluster() { # dir port
    as_pg "$B/pg_ctl" -D "$1/data" -l "$1/pg.log" -w -t 30 -o "-k $1 -p $2 \
-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
-c full_page_writes=off -c max_connections=200" start >/dev/null
}

B=$(pg_bin)
if [ -z "$B" ] || [ ! -x "$B/initdb" ]; then
    echo "pg-test: PostgreSQL server binaries not found (install postgresql)" >&2
    exit 1
fi

if [ "${1:-}" = "--ctl" ]; then
    : "${VK_TEST_PG_DIR:?}" "${VK_TEST_PG_PORT:?}"
    case "${2:-}" in
    stop) as_pg "$B/pg_ctl" -D "$VK_TEST_PG_DIR/data" -m fast -w -t 30 stop >/dev/null ;;
    start) start_cluster "$VK_TEST_PG_DIR" "$VK_TEST_PG_PORT" ;;
    *) echo "usage: $0 --ctl stop|start" >&2; exit 2 ;;
    esac
    exit $?
fi

if [ $# -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

D=$(mktemp -d "${TMPDIR:-/tmp}/vk-pg.XXXXXX") || exit 1
chmod 755 "$D"
if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$D"
fi

cleanup() {
    as_pg "$B/pg_ctl" -D "$D/data" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! as_pg "$B/initdb" -D "$D/data" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 \
    >"$D/initdb.log" 2>&1; then
    echo "pg-test: initdb failed:" >&2
    cat "$D/initdb.log" >&2
    exit 1
fi

started=""
for try in 1 2 3 4 5 6 7 8; do
    # A port from the pid and the try: different concurrent runs pick different ones.
    P=$(( 20000 + ( ($$ * 7 + try * 7919 + $(date +%N | sed 's/^0*//;s/^$/0/') ) % 30000 ) ))
    if start_cluster "$D" "$P" 2>>"$D/start.log"; then
        started=1
        break
    fi
done
if [ -z "$started" ]; then
    echo "pg-test: cannot start PostgreSQL:" >&2
    cat "$D/start.log" "$D/pg.log" >&2 2>/dev/null
    exit 1
fi

export VK_TEST_PG_URL="postgres://postgres@127.0.0.1:$P/postgres"
export VK_BENCH_PG_URL="$VK_TEST_PG_URL"
export VK_TEST_PG_DIR="$D" VK_TEST_PG_PORT="$P"
VK_TEST_PG_CTL="$(cd "$(dirname "$0")" && pwd)/$(basename "$0") --ctl"
export VK_TEST_PG_CTL

"$@"
status=$?
exit $status
