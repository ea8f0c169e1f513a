#!/bin/sh
# Issue 17, needs and outputs through the real binary. `vulcan parse` shows `needs` and
# refuses unknown names and cycles with file:line:col; `vulcan run` (a real server and
# worker) starts a fragment only when what it needs has ended, gives it $NEEDS_<X>_RESULT
# and the outputs written to $VULCAN_OUTPUT, skips the dependents of a failure saying so,
# and runs examples/ci-c-library.kdl to the end. Then a `vulcan server` (SQLite, or the
# PostgreSQL of scripts/pg-test.sh when VK_TEST_PG_URL is set) runs the example and a DAG
# whose output holds a secret: GET /chains/{id} shows needs, outputs (masked) and matrix
# copies; and a hostile worker speaking the protocol with curl has outputs with a bad
# name, a NUL byte or too many bytes refused (400), and nothing stored.
# Usage: test_needs.sh VULCAN_BINARY
set -u
vulcan=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
. "$(dirname "$0")/lib.sh"
spid=
trap '[ -n "$spid" ] && kill $spid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

# ---------------------------------------------------------------- parse and load errors
cat >dag.kdl <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    parallel {
        fragment { name "release"; needs "build" "lint"; run "echo release-at $(date +%s%N) build=$NEEDS_BUILD_RESULT lint=$NEEDS_LINT_RESULT v=$NEEDS_LINT_VERSION"; }
        fragment { name "lint"; run "sleep 0.5; echo version=7 >> $VULCAN_OUTPUT; echo lint-at $(date +%s%N)"; }
        fragment { name "build"; matrix { cc "gcc" "clang"; }; run "sleep 0.3; echo build-$MATRIX_CC-at $(date +%s%N)"; }
    }
    fragment { name "after"; needs "release"; condition "$NEEDS_RELEASE_RESULT == 'success'"; run "echo after-ran"; }
}
KDL
"$vulcan" parse dag.kdl >out 2>err
check "vulcan parse loads a DAG" $?
grep -q 'fragment "release" \[default\] needs "build" "lint"' out
check "vulcan parse shows the needs of 'release'" $?
"$vulcan" parse --json dag.kdl >dag.json 2>err
python3 - dag.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = d["fragments"][0]
assert p["children"][0]["needs"] == ["build", "lint"], p["children"][0]
assert "needs" not in p["children"][1], p["children"][1]
assert d["fragments"][1]["needs"] == ["release"], d["fragments"][1]
PY
check "vulcan parse --json has 'needs' where written, nothing elsewhere" $?

cat >unknown.kdl <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment { name "a"; run "x"; }
    fragment { name "b"; needs "a" "nope"; run "y"; }
}
KDL
"$vulcan" parse unknown.kdl >out 2>err
[ $? -ne 0 ] && grep -q "unknown.kdl:6:36: error: unknown fragment 'nope' in 'needs'" err
check "an unknown name is a load error at its file:line:col" $?

cat >cycle.kdl <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    parallel {
        fragment { name "a"; needs "c"; run "x"; }
        fragment { name "b"; needs "a"; run "x"; }
        fragment { name "c"; needs "b"; run "x"; }
    }
}
KDL
"$vulcan" parse cycle.kdl >out 2>err
[ $? -ne 0 ] && grep -qF 'cycle.kdl:7:36: error: needs cycle: `b` needs `a` → `c` needs `b` → `a` needs `c`' err
check "a cycle is a load error naming its whole path" $?

cat >seq.kdl <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment { name "first"; needs "second"; run "x"; }
    fragment { name "second"; run "y"; }
}
KDL
"$vulcan" parse seq.kdl >out 2>err
[ $? -ne 0 ] && grep -qF 'seq.kdl:5:36: error: needs cycle: `second` comes after `first` in its sequence → `first` needs `second`' err
check "needing what comes later in a sequence is a cycle too" $?

# ---------------------------------------------------------------- vulcan run
timeout 120 "$vulcan" run --sandbox none dag.kdl >out 2>err
check "vulcan run of the DAG completes" $?
python3 - out <<'PY'
import re, sys
t = {}
for line in open(sys.argv[1]):
    m = re.search(r"(release|lint|build-gcc|build-clang)-at (\d+)", line)
    if m:
        t[m.group(1)] = int(m.group(2))
assert len(t) == 4, t
assert t["release"] > max(t["lint"], t["build-gcc"], t["build-clang"]), t
PY
check "release started after lint and both build copies ended (its siblings in parallel)" $?
grep -q "build=success lint=success v=7" out
check "release saw \$NEEDS_BUILD_RESULT, \$NEEDS_LINT_RESULT and lint's output" $?
grep -q "after-ran" out
check "a condition on \$NEEDS_RELEASE_RESULT held" $?

cat >fail.kdl <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    parallel {
        fail-fast #false
        fragment { name "build"; run "exit 3"; }
        fragment { name "lint"; run "echo lint-ran"; }
        fragment { name "release"; needs "build" "lint"; run "echo release-ran"; }
        fragment { name "docs"; needs "lint"; run "echo docs-ran"; }
        fragment { name "crash"; needs "build"; when "failure"; run "echo crash-ran $NEEDS_BUILD_RESULT"; }
        fragment { name "tidy"; needs "release"; when "always"; run "echo tidy-ran release=$NEEDS_RELEASE_RESULT"; }
    }
}
KDL
timeout 120 "$vulcan" run --sandbox none fail.kdl >out 2>err
check "a chain whose build fails ends failed (exit 1)" $([ $? -eq 1 ]; echo $?)
grep -q 'skipped: needs `build`, which failed' out && ! grep -q release-ran out
check "release is skipped: needs \`build\`, which failed" $?
grep -q docs-ran out && grep -q "crash-ran failure" out && grep -q "tidy-ran release=skipped" out
check "what needs only lint runs; when failure/always dependents run and see the results" $?

cat >bad.kdl <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    parallel {
        fail-fast #false
        fragment { name "big"; run "head -c 1100000 /dev/zero | tr '\\0' x | sed 's/^/A=/' >> $VULCAN_OUTPUT"; }
        fragment { name "form"; run "echo 'not an output line' >> $VULCAN_OUTPUT"; }
        fragment { name "name"; run "echo '1x=y' >> $VULCAN_OUTPUT"; }
        fragment { name "heredoc"; run "printf 'N<<EOF\\nno end\\n' >> $VULCAN_OUTPUT"; }
        fragment { name "link"; run "rm $VULCAN_OUTPUT; ln -s /etc/hostname $VULCAN_OUTPUT"; }
    }
}
KDL
timeout 120 "$vulcan" run --sandbox none bad.kdl >out 2>err
check "a chain with bad outputs ends failed (exit 1)" $([ $? -eq 1 ]; echo $?)
grep -q 'big.*\$VULCAN_OUTPUT holds more than 1024 KiB' out
check "over 1 MiB of outputs fails the attempt, saying so" $?
grep -q 'form.*\$VULCAN_OUTPUT line 1: expected NAME=VALUE or NAME<<DELIMITER' out &&
    grep -q "name.*'1x' is not an output name" out && grep -q "heredoc.*'N<<EOF' has no closing line 'EOF'" out
check "a line of neither form, a bad name and an unclosed heredoc fail the attempt" $?
grep -q 'link.*\$VULCAN_OUTPUT is gone or is not a regular file' out
check "a link put in place of \$VULCAN_OUTPUT is not followed" $?

mkdir ex && (cd ex && timeout 180 "$vulcan" run --sandbox none "$src/examples/ci-c-library.kdl") >out 2>err
check "examples/ci-c-library.kdl runs to the end under vulcan run" $?
grep -q "releasing libdemo 1.4.2 (lint: clean, build: success)" out &&
    [ "$(grep -c 'built libdemo 1.4.2 with' out)" -eq 4 ]
check "its four builds and the release read the version output" $?

# ---------------------------------------------------------------- a server
db=${VK_TEST_PG_URL:+--database $VK_TEST_PG_URL}
dburl=${VK_TEST_PG_URL:-sqlite:$tmp/data/vulcan.db}
# shellcheck disable=SC2086
"$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" $db --workers 1 \
    --groups default,debian-12,ubuntu-24 --worker-sandbox none --log-format text \
    >server.log 2>&1 &
spid=$!
url=
for _ in $(seq 1 150); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' server.log)
    [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
[ -n "$url" ]
check "the server starts (${VK_TEST_PG_URL:+postgres}${VK_TEST_PG_URL:-sqlite})" $?
admin=$(cat "$tmp/data/initial-admin-token")
export VULCAN_TOKEN=$admin

wait_chain() { # id → $tmp/chain.json once final
    for _ in $(seq 1 300); do
        curl -s -H "Authorization: Bearer $admin" "$url/api/v1/chains/$1" >chain.json
        grep -q '"status": *"\(completed\|failed\|cancelled\)"' chain.json &&
            python3 -c 'import json,sys; d=json.load(open("chain.json")); sys.exit(d["status"] not in ("completed","failed","cancelled"))' &&
            return 0
        sleep 0.2
    done
    return 1
}

"$vulcan" submit --server "$url" "$src/examples/ci-c-library.kdl" >sub.out 2>&1
check "the example is submitted" $?
cid=$(grep -o '[0-9a-f]\{8\}-[0-9a-f-]\{27\}' sub.out | head -1)
wait_chain "$cid"
check "the example's chain ends" $?
python3 - chain.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "completed", d["status"]
def walk(fs):
    for f in fs:
        yield f
        yield from walk(f.get("children", []))
by = {f["name"]: f for f in walk(d["fragments"])}
assert by["release"]["needs"] == ["version", "lint", "build"], by["release"]
assert by["release"]["status"] == "completed", by["release"]
assert by["version"]["outputs"]["version"] == "1.4.2", by["version"]
assert "needs" not in by["lint"] and "outputs" in by["lint"], by["lint"]
c = by["build (clang, ubuntu-24)"]
assert c["matrix_values"] == {"cc": "clang", "runner": "ubuntu-24"} and by["build"]["matrix"] is True, c
assert by["crash-logs"]["status"] == "skipped", by["crash-logs"]
PY
check "GET /chains/{id}: needs, outputs, matrix copies; the release completed" $?

# An output holding a secret is stored masked.
value="out-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$value" | "$vulcan" secrets set --server "$url" OUT_KEY >set.out 2>&1
check "a secret is set" $?
cat >sec.kdl <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    parallel {
        fragment { name "make"; secrets "OUT_KEY"; run "echo token=$OUT_KEY >> $VULCAN_OUTPUT; echo plain=visible >> $VULCAN_OUTPUT"; }
        fragment { name "use"; needs "make"; run "echo use-got $NEEDS_MAKE_PLAIN $NEEDS_MAKE_TOKEN"; }
    }
}
KDL
"$vulcan" submit --server "$url" sec.kdl >sub.out 2>&1
cid=$(grep -o '[0-9a-f]\{8\}-[0-9a-f-]\{27\}' sub.out | head -1)
wait_chain "$cid"
python3 - chain.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "completed", d
mk = d["fragments"][0]["children"][0]
assert mk["outputs"] == {"token": "***", "plain": "visible"}, mk.get("outputs")
PY
check "the output holding the secret is stored as ***" $?
! grep -qF "$value" chain.json server.log
check "the secret's value is neither in the chain JSON nor in the server log" $?

# ---------------------------------------------------------------- a hostile worker
cat >one.kdl <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "hostile"
    parallel {
        fragment { name "h"; run "true"; }
        fragment { name "after"; needs "h"; run "echo after-h $NEEDS_H_GOOD"; }
    }
}
KDL
"$vulcan" submit --server "$url" one.kdl >sub.out 2>&1
hcid=$(grep -o '[0-9a-f]\{8\}-[0-9a-f-]\{27\}' sub.out | head -1)
reg=$("$vulcan" admin create-registration-token --database "$dburl")
curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $reg" \
    -d '{"machine_group":"hostile","name":"raw","version":"1"}' \
    "$url/api/v1/workers/register" >reg.json
wid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["worker_id"])' reg.json)
wtok=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["worker_token"])' reg.json)
curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $wtok" \
    -d "{\"worker_id\":\"$wid\",\"wait_s\":10}" "$url/api/v1/work/request" >work.json
python3 -c 'import json,sys; w=json.load(open(sys.argv[1])); print("fid=%s attempt=%d jtok=%s" % (w["fragment_id"], w["attempt"], w["job_token"]))' work.json >work.sh
check "the raw worker claims 'h'" $?
. ./work.sh
result() { # outputs-json → HTTP status
    printf '{"worker_id":"%s","fragment_id":"%s","attempt":%s,"success":true,"exit_code":0,"outputs":%s}' \
        "$wid" "$fid" "$attempt" "$1" >body.json
    curl -s -o resp.json -w '%{http_code}' -H 'Content-Type: application/json' \
        -H "Authorization: Bearer $jtok" --data-binary @body.json "$url/api/v1/work/result"
}
[ "$(result '{"bad-name":"x"}')" = 400 ] && grep -q "bad-name" resp.json
check "an output name outside [A-Za-z_][A-Za-z0-9_]* is refused (400)" $?
[ "$(result '{"9lives":"x"}')" = 400 ]
check "an output name starting with a digit is refused (400)" $?
[ "$(result '{"A":"x\u0000y"}')" = 400 ]
check "an output value with a NUL byte is refused (400)" $?
[ "$(result '{"A":5}')" = 400 ] && [ "$(result '["A"]')" = 400 ]
check "outputs that are not an object of strings are refused (400)" $?
big=$(python3 -c 'print("x" * 70000)')
[ "$(result "{\"A\":\"$big\"}")" = 400 ]
check "a value over 64 KiB is refused (400)" $?
many=$(python3 -c 'import json; print(json.dumps({"K%d" % i: "y" * 60000 for i in range(20)}))')
[ "$(result "$many")" = 400 ] && grep -q "in all" resp.json
check "more than 1 MiB of outputs in all is refused (400)" $?
lots=$(python3 -c 'import json; print(json.dumps({"K%d" % i: "" for i in range(300)}))')
[ "$(result "$lots")" = 400 ]
check "more than 256 outputs are refused (400)" $?
curl -s -H "Authorization: Bearer $admin" "$url/api/v1/chains/$hcid" >chain.json
python3 - chain.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
h = d["fragments"][0]["children"][0]
assert h["status"] == "running" and "outputs" not in h, h
PY
check "after the refusals nothing is stored and the attempt still runs" $?
[ "$(result '{"GOOD":"fine"}')" = 200 ]
check "valid outputs are accepted (200)" $?
curl -s -H "Authorization: Bearer $admin" "$url/api/v1/chains/$hcid" >chain.json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); h=d["fragments"][0]["children"][0]; assert h["outputs"] == {"GOOD": "fine"}, h' chain.json
check "GET /chains/{id} shows the stored outputs" $?
curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer $wtok" \
    -d "{\"worker_id\":\"$wid\",\"wait_s\":10}" "$url/api/v1/work/request" >work2.json
python3 -c 'import json,sys; w=json.load(open(sys.argv[1])); assert w["name"] == "after" and w["env"]["NEEDS_H_GOOD"] == "fine" and w["env"]["NEEDS_H_RESULT"] == "success", w.get("env")' work2.json
check "the dependent's work item carries \$NEEDS_H_GOOD and \$NEEDS_H_RESULT" $?
finish
