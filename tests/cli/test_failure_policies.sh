#!/bin/sh
# Issue 17, failure policies through `vulcan run` (a real server and worker): an
# `allow-failure #true` fragment fails without failing the chain; after a real failure the
# rest is skipped, but `when "failure"` and `when "always"` fragments still run (the
# crash-log upload and the clean-up of the issue), and a `when "failure"` one is skipped
# when nothing failed. The summary shows each, and the skip reasons say why.
# Usage: test_failure_policies.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"
cd "$tmp" || exit 1

cat >"$tmp/p.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment { name "lint"; run "echo lint-ran; exit 3"; allow-failure #true; }
    fragment { name "early-notice"; run "echo early-notice-ran"; when "failure"; }
    fragment { name "build"; run "echo build-ran; exit 1"; }
    fragment { name "test"; run "echo test-ran"; }
    fragment { name "crash-logs"; run "echo crash-logs-ran"; when "failure"; }
    fragment { name "cleanup"; run "echo cleanup-ran"; when "always"; }
}
KDL
timeout 120 "$vulcan" run --sandbox none p.kdl >"$tmp/out" 2>"$tmp/err"
check "the chain fails because build failed (exit 1)" $([ $? -eq 1 ]; echo $?)
for f in lint-ran build-ran crash-logs-ran cleanup-ran; do
    grep -q "$f" "$tmp/out"
    check "$f" $?
done
! grep -q "test-ran" "$tmp/out"
check "the fragment after the failure did not run" $?
! grep -q "early-notice-ran" "$tmp/out"
check "a when \"failure\" fragment before any failure (lint's is allowed) did not run" $?
sed -n '/^FRAGMENT /,/^chain /p' "$tmp/out" >"$tmp/table"
grep -q '^lint  *failed' "$tmp/table" && grep -q '^cleanup  *completed' "$tmp/table" &&
    grep -q '^crash-logs  *completed' "$tmp/table" && grep -q '^test  *skipped' "$tmp/table"
check "the summary: lint failed (allowed), test skipped, crash-logs and cleanup completed" $?

cat >"$tmp/ok.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment { name "flaky"; run "exit 1"; allow-failure #true; }
    fragment { name "notify"; run "echo notify-ran"; when "failure"; }
    fragment { name "tidy"; run "echo tidy-ran"; when "always"; }
}
KDL
timeout 120 "$vulcan" run --sandbox none ok.kdl >"$tmp/out2" 2>"$tmp/err2"
check "only an allowed failure: the chain completes (exit 0)" $?
grep -q "tidy-ran" "$tmp/out2" && ! grep -q "notify-ran" "$tmp/out2"
check "when \"always\" ran, when \"failure\" did not" $?
"$vulcan" parse p.kdl >"$tmp/parse" 2>&1
check "vulcan parse loads the policies" $?
grep -q '"lint" .* allow-failure' "$tmp/parse" && grep -q '"cleanup" .* when always' "$tmp/parse"
check "vulcan parse shows allow-failure and when" $?
finish
