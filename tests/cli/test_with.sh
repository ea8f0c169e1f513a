#!/bin/sh
# Issue 17, reusable fragments with parameters through the real binary: an imported file
# declares `param "NAME"` (optionally with a default) and uses `{with.NAME}`; each import
# gives `from "…" { with { NAME "value" } }`. `vulcan parse` shows every import filled in
# and refuses an unknown or missing parameter at its file:line:col; `vulcan run` runs
# the filled-in scripts; a `vulcan server` (SQLite, or the PostgreSQL of
# scripts/pg-test.sh when VK_TEST_PG_URL is set) runs the same workflow from a
# repository's .vulcan directory through a manual trigger, and the logs hold each value.
# Usage: test_with.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
spid=
trap '[ -n "$spid" ] && kill $spid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

# ---------------------------------------------------------------- parse and load errors
repo="$tmp/repo"
mkdir -p "$repo/.vulcan/fragments"
cat >"$repo/.vulcan/fragments/build.kdl" <<'KDL'
param "target"
param "opt" default="-O2"
fragment {
    name "build {with.target}"
    env { CFLAGS "{with.opt}" }
    run "echo built-for={with.target} cflags=$CFLAGS"
}
KDL
cat >"$repo/.vulcan/ci.kdl" <<'KDL'
version "0.1"
triggers "push" "manual"
chain {
    machine "default"
    checkout #false
    parallel {
        fragment { from "fragments/build.kdl" { with { target "x86_64" } } }
        fragment { from "fragments/build.kdl" { with { target "aarch64"; opt "-Os" } } }
    }
}
KDL
"$vulcan" parse "$repo/.vulcan/ci.kdl" >out 2>err
check "vulcan parse loads two imports of one file with parameters" $?
grep -q "build x86_64" out && grep -q "build aarch64" out
check "vulcan parse shows each import's fragments filled in ($(head -c 300 out))" $?
"$vulcan" parse --json "$repo/.vulcan/ci.kdl" >ci.json 2>err
python3 - ci.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
def walk(fs):
    for f in fs:
        yield f
        yield from walk(f.get("children", []))
runs = sorted(f["run"] for f in walk(d["fragments"]) if f.get("run"))
assert runs == ["echo built-for=aarch64 cflags=$CFLAGS", "echo built-for=x86_64 cflags=$CFLAGS"], runs
PY
check "vulcan parse --json has each copy's script with its own value" $?

cat >missing.kdl <<KDL
version "0.1"
triggers "push"
chain {
    machine "default"
    fragment { from "$repo/.vulcan/fragments/build.kdl" }
}
KDL
"$vulcan" parse missing.kdl >out 2>err
[ $? -ne 0 ] && grep -q "missing.kdl:5:21: error: '.*build.kdl' needs parameter 'target'" err
check "a required parameter not given is a load error at the import ($(head -c 200 err))" $?
cat >unknown.kdl <<KDL
version "0.1"
triggers "push"
chain {
    machine "default"
    fragment { from "$repo/.vulcan/fragments/build.kdl" { with { target "x"; arch "y" } } }
}
KDL
"$vulcan" parse unknown.kdl >out 2>err
[ $? -ne 0 ] && grep -q "unknown.kdl:5:[0-9]*: error: unknown parameter 'arch'; '.*build.kdl' declares: target, opt" err
check "an unknown parameter is a load error naming the declared ones ($(head -c 200 err))" $?

# ---------------------------------------------------------------- vulcan run
timeout 120 "$vulcan" run --sandbox none "$repo/.vulcan/ci.kdl" >out 2>err
check "vulcan run of the workflow completes" $?
grep -q "built-for=x86_64 cflags=-O2" out && grep -q "built-for=aarch64 cflags=-Os" out
check "each import ran with its values, a default where none was given" $?

# ---------------------------------------------------------------- a server, from a repository
(cd "$repo" && git init -q -b main && git add . && git -c user.name=t -c user.email=t@t commit -q -m ci)
db=${VK_TEST_PG_URL:+--database $VK_TEST_PG_URL}
# shellcheck disable=SC2086
"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" $db --no-auth --workers 1 \
    --allow-file-repos --worker-sandbox none --log-format text >server.log 2>&1 &
spid=$!
url=
for _ in $(seq 1 150); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' server.log)
    [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
[ -n "$url" ]
check "the server starts (${VK_TEST_PG_URL:+postgres}${VK_TEST_PG_URL:-sqlite})" $?
curl -fs -X POST -H 'Content-Type: application/json' \
    --data "{\"url\": \"file://$repo\", \"provider\": \"github\"}" "$url/api/v1/repos" >repo.json
rid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' repo.json)
curl -fs -X POST -H 'Content-Type: application/json' --data '{"branch": "main"}' \
    "$url/api/v1/repos/$rid/trigger" >trig.json
cid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chains"][0])' trig.json)
[ -n "$cid" ]
check "a manual run of the repository's workflow starts a chain ($(head -c 200 trig.json))" $?
st=
for _ in $(seq 1 300); do
    st=$(curl -fs "$url/api/v1/chains/$cid" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    case $st in completed | failed | cancelled) break ;; esac
    sleep 0.1
done
[ "$st" = completed ]
check "the chain completes ($st)" $?
"$vulcan" logs --server "$url" "$cid" >logs 2>&1
grep -q "built-for=x86_64 cflags=-O2" logs && grep -q "built-for=aarch64 cflags=-Os" logs
check "the server's workers ran each import with its values ($(head -c 300 logs))" $?

finish
