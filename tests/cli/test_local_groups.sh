#!/bin/sh
# Local workers of `vulcan server --workers N` serve the machine groups the work names
# (issue 12 item 4): a workflow with machine "ubuntu-24.04" submitted to a server started
# with --workers 1 completes; --groups LIST (or $VULCAN_WORKER_GROUPS) restricts them.
# Usage: test_local_groups.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"

cat >"$tmp/ubuntu.kdl" <<'KDL'
version "0.1"
triggers "push"
chain {
    machine "ubuntu-24.04"
    fragment { name "hello"; run "echo hello from ubuntu" }
}
KDL

server_pid=
stop_server() {
    [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    server_pid=
}
trap 'stop_server; rm -rf "$tmp"' EXIT

# Start a server on a free loopback port with DATA_DIR $1 and more arguments; sets $url.
start_server() {
    data=$1
    shift
    "$vulcan" server --no-auth --listen 127.0.0.1:0 --data-dir "$data" --log-format json \
        --worker-sandbox none "$@" 2>"$data.log" &
    server_pid=$!
    url=
    i=0
    while [ -z "$url" ] && [ $i -lt 100 ]; do
        url=$(sed -n 's/.*"vulcan server started".*"url":"\([^"]*\)".*/\1/p' "$data.log" 2>/dev/null | head -1)
        i=$((i + 1))
        sleep 0.1
    done
}

start_server "$tmp/auto" --workers 1
[ -n "$url" ]
check "the server starts on a free port" $?
timeout 60 "$vulcan" submit --server "$url" --follow "$tmp/ubuntu.kdl" >"$tmp/out" 2>"$tmp/err"
check "a machine \"ubuntu-24.04\" workflow completes with --workers 1" $?
grep -q "hello from ubuntu" "$tmp/out"
check "its output is shown" $?
"$vulcan" workers ls --server "$url" >"$tmp/out" 2>"$tmp/err"
grep -q "ubuntu-24.04" "$tmp/out" && grep -q "default" "$tmp/out"
check "local workers serve 'default' and 'ubuntu-24.04'" $?
stop_server

start_server "$tmp/only" --workers 1 --groups default,linux
timeout 60 "$vulcan" submit --server "$url" "$tmp/ubuntu.kdl" >"$tmp/out" 2>"$tmp/err"
check "submit to a --groups server exits 0" $?
chain=$(cat "$tmp/out")
sleep 3
"$vulcan" chains show --server "$url" "$chain" >"$tmp/out" 2>"$tmp/err"
grep -q "ubuntu-24.04" "$tmp/out" && ! grep -q "completed" "$tmp/out" &&
    grep -q "^waiting:" "$tmp/out"
check "with --groups default,linux the ubuntu-24.04 work waits" $?
"$vulcan" workers ls --server "$url" >"$tmp/out" 2>"$tmp/err"
grep -q "linux" "$tmp/out" && ! grep -q "ubuntu-24.04" "$tmp/out"
check "--groups workers serve exactly the listed groups" $?
stop_server

VULCAN_WORKER_GROUPS=ubuntu-24.04 start_server "$tmp/env" --workers 1
timeout 60 "$vulcan" submit --server "$url" --follow "$tmp/ubuntu.kdl" >"$tmp/out" 2>"$tmp/err"
check "VULCAN_WORKER_GROUPS=ubuntu-24.04 serves the workflow" $?
"$vulcan" workers ls --server "$url" >"$tmp/out" 2>"$tmp/err"
! grep -q "default" "$tmp/out"
check "VULCAN_WORKER_GROUPS replaces 'default'" $?
stop_server

timeout 20 "$vulcan" server --no-auth --listen 127.0.0.1:0 --data-dir "$tmp/nine" --workers 1 \
    --groups a,b,c,d,e,f,g,h,i >"$tmp/out" 2>"$tmp/err"
check "more than 8 --groups fails" $([ $? -eq 1 ]; echo $?)
grep -q "at most 8 machine groups" "$tmp/err"
check "... and says so" $?

"$vulcan" server --help >"$tmp/out"
grep -q -- "--groups LIST" "$tmp/out"
check "server --help documents --groups" $?

finish
