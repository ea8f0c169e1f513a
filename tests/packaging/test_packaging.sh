#!/bin/sh
# Issue 22, packaging for many machines: the systemd units in packaging/systemd pass
# `systemd-analyze verify` with no complaint at all (an unknown or misspelt key is a
# warning there, and fails this test); the command line each unit runs is one `vulcan`
# accepts (the server's starts with a config file like the one the unit names and answers
# /health/ready; the worker's parses); the Kubernetes example parses as YAML and the
# metrics its autoscalers query are ones a running server exports.
# Usage: test_packaging.sh VULCAN_BINARY SOURCE_DIR
set -u
vulcan=$(realpath "$1")
src=$(realpath "$2")
. "$src/tests/cli/lib.sh"
spid=
trap '[ -n "$spid" ] && kill -9 $spid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "test_packaging: systemd-analyze is missing (scripts/install-deps.sh installs systemd)"
    exit 1
fi

mkdir -p "$tmp/units"
for u in vulcan-server.service vulcan-worker@.service; do
    sed "s|/usr/bin/vulcan|$vulcan|g" "$src/packaging/systemd/$u" >"$tmp/units/$u"
done
(cd "$tmp/units" && systemd-analyze verify vulcan-server.service) >"$tmp/out" 2>&1
[ $? = 0 ] && [ ! -s "$tmp/out" ]
check "vulcan-server.service: systemd-analyze verify is clean $(head -c 300 "$tmp/out")" $?
cp "$tmp/units/vulcan-worker@.service" "$tmp/units/vulcan-worker@linux-x64.service"
(cd "$tmp/units" && systemd-analyze verify vulcan-worker@linux-x64.service) >"$tmp/out" 2>&1
[ $? = 0 ] && [ ! -s "$tmp/out" ]
check "vulcan-worker@.service: systemd-analyze verify is clean $(head -c 300 "$tmp/out")" $?
for k in NoNewPrivileges ProtectSystem ProtectHome PrivateTmp; do
    grep -q "^$k=" "$src/packaging/systemd/vulcan-server.service" &&
        grep -q "^$k=" "$src/packaging/systemd/vulcan-worker@.service"
    check "both units set $k" $?
done
grep -q '^Delegate=yes' "$src/packaging/systemd/vulcan-worker@.service"
check "the worker unit delegates its cgroup subtree (per-attempt limits)" $?

# The server's ExecStart, with a config file and a data directory of this test.
cmdline=$(sed -n 's/^ExecStart=//p' "$tmp/units/vulcan-server.service")
printf 'listen "127.0.0.1:0"\nno-auth #true\n' >"$tmp/server.kdl"
set -- $(echo "$cmdline" | sed "s|/etc/vulcan/server.kdl|$tmp/server.kdl|; s|/var/lib/vulcan|$tmp/state|")
mkdir -m 700 "$tmp/state"
"$@" --log-format text >"$tmp/server.log" 2>&1 &
spid=$!
url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$tmp/server.log")
    [ -n "$url" ] && curl -fs "$url/health/ready" >/dev/null 2>&1 && break
    sleep 0.1
done
[ -n "$url" ] && curl -fs "$url/health/ready" | grep -q '"ready"'
check "the server unit's command line starts a server that is ready ($(tail -n 1 "$tmp/server.log" | head -c 200))" $?
curl -fs "$url/metrics" >"$tmp/metrics"
for m in vulcan_fragments_ready vulcan_fragments_running; do
    grep -q "^# TYPE $m gauge" "$tmp/metrics"
    check "the server exports $m, which the autoscalers query" $?
done
kill "$spid" && wait "$spid" 2>/dev/null
check "the server stops on SIGTERM (the unit's KillSignal) with status 0" $?
spid=

# The worker's ExecStart parses (--help after the same options prints its usage).
wcmd=$(sed -n 's/^ExecStart=//p' "$tmp/units/vulcan-worker@.service" | sed "s|%i|linux-x64|g; s|%H|host|g")
set -- $wcmd
"$@" --help >"$tmp/out" 2>&1 && grep -q "usage: vulcan worker" "$tmp/out"
check "the worker unit's command line is one vulcan worker accepts" $?

/usr/bin/python3 - "$src/packaging/kubernetes/workers-keda.yaml" >"$tmp/out" 2>&1 <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = [d["kind"] for d in docs]
assert kinds == ["Deployment", "ScaledObject", "HorizontalPodAutoscaler"], kinds
dep = docs[0]
c = dep["spec"]["template"]["spec"]["containers"][0]
assert c["args"][0] == "worker" and "--group" in c["args"], c["args"]
assert docs[1]["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
q = docs[1]["spec"]["triggers"][0]["metadata"]["query"]
assert "vulcan_fragments_ready" in q, q
PY
check "the Kubernetes example parses and scales the worker Deployment on the queue ($(head -c 200 "$tmp/out"))" $?
finish
