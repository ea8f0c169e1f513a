#!/bin/sh
# `vulcan run` inside a project (issue 12 item 3): the work tree as it is, uncommitted and
# untracked files included; --commit REF for a clean commit; a notice outside a work tree.
# Usage: test_run_checkout.sh VULCAN_BINARY
set -u
vulcan=$1
. "$(dirname "$0")/lib.sh"

proj="$tmp/proj"
mkdir -p "$proj/.vulcan"
cat >"$proj/.vulcan/ci.kdl" <<'KDL'
version "0.1"
triggers "push"
chain {
    machine "default"
    fragment {
        name "show"
        run "echo tracked=$(cat tracked.txt); echo untracked=$(cat new.txt 2>/dev/null || echo none); test ! -e ignored.log && echo ignored=absent"
    }
}
KDL
cd "$proj" || exit 1
git init -q -b main .
git config user.email t@example.com
git config user.name t
printf 'ignored.log\n' >.gitignore
echo old >tracked.txt
git add -A && git commit -qm one
echo committed >tracked.txt
git commit -qam two
echo dirty >tracked.txt          # an uncommitted change
echo fresh >new.txt              # an untracked file
echo secret >ignored.log         # ignored: stays out
before_index=$(git ls-files -s | sha256sum)
before_head=$(git rev-parse HEAD)

"$vulcan" run .vulcan/ci.kdl >"$tmp/out" 2>"$tmp/err"
check "a run in the work tree exits 0" $?
grep -q "tracked=dirty" "$tmp/out"
check "the uncommitted change is seen" $?
grep -q "untracked=fresh" "$tmp/out"
check "the untracked file is seen" $?
grep -q "ignored=absent" "$tmp/out"
check "an ignored file stays out" $?
[ "$(git ls-files -s | sha256sum)" = "$before_index" ] && [ "$(git rev-parse HEAD)" = "$before_head" ] &&
    [ -z "$(git stash list)" ] && [ "$(git status --porcelain | sort | tr '\n' ' ')" = " M tracked.txt ?? new.txt " ]
check "the user's index, HEAD and status are untouched" $?

"$vulcan" run --commit HEAD~1 .vulcan/ci.kdl >"$tmp/out" 2>"$tmp/err"
check "a run of --commit HEAD~1 exits 0" $?
grep -q "tracked=old" "$tmp/out" && grep -q "untracked=none" "$tmp/out"
check "--commit runs the clean commit, without work-tree changes" $?

"$vulcan" run --commit 'nosuch;touch pwned' .vulcan/ci.kdl >"$tmp/out" 2>"$tmp/err"
check "an unknown --commit exits 1" $([ $? -eq 1 ]; echo $?)
grep -q "no commit 'nosuch;touch pwned'" "$tmp/err" && [ ! -e pwned ] && [ ! -e "$tmp/pwned" ]
check "an unknown --commit is named and never reaches a shell" $?

mkdir "$tmp/plain"
cp .vulcan/ci.kdl "$tmp/plain/ci.kdl"
cd "$tmp/plain" || exit 1
GIT_CEILING_DIRECTORIES="$tmp" "$vulcan" run ci.kdl >"$tmp/out" 2>"$tmp/err"
grep -q "not inside a git work tree" "$tmp/err"
check "outside a work tree it says so" $?
GIT_CEILING_DIRECTORIES="$tmp" "$vulcan" run --commit HEAD ci.kdl >"$tmp/out" 2>"$tmp/err"
check "--commit outside a work tree exits 1" $([ $? -eq 1 ]; echo $?)

finish
