#!/bin/sh
# Issue 14 item 10: the sandbox's /etc holds only what scripts need. A fragment run by a
# real server and worker (`vulcan run --sandbox bwrap`) lists /etc: shadow, gshadow, their
# backups, sudoers, ssh host keys and services' configuration are absent and passwd is
# the sandbox's own, while sh, id, git, curl --version and resolving localhost work.
# Usage: test_sandbox_etc.sh VULCAN_BINARY
set -u
vulcan=$(realpath "$1")
. "$(dirname "$0")/lib.sh"

if ! command -v bwrap >/dev/null 2>&1; then
    echo "test_sandbox_etc.sh: skipped (no bubblewrap)"
    exit 0
fi

cat >"$tmp/etc.kdl" <<'KDL'
version "0.1"
triggers "manual"
chain {
    machine "default"
    fragment {
        name "etc"
        run #"""
set +e
echo "etc: $(ls -A /etc | tr '\n' ' ')"
echo "ssh: $(ls -A /etc/ssh 2>/dev/null | tr '\n' ' ')"
for f in shadow shadow- gshadow gshadow- sudoers sudoers.d ssh/ssh_host_rsa_key \
    ssh/ssh_host_ed25519_key ssh/sshd_config machine-id subuid postgresql cron.d pam.d; do
    test -e "/etc/$f" && echo "PRESENT /etc/$f"
done
grep -c . /etc/passwd | sed 's/^/passwd-lines=/'
id -un | sed 's/^/user=/'
sh -c 'echo sh-ok'
git --version >/dev/null && echo git-ok
git init -q r && git -C r -c user.email=ci@example.org -c user.name=ci commit -q --allow-empty -m x && echo git-commit-ok
curl --version >/dev/null && echo curl-ok
getent hosts localhost | grep -q 127.0.0.1 && echo dns-ok
test -e /etc/ssl/certs/ca-certificates.crt && echo certs-ok
touch /etc/vk-x 2>/dev/null && echo etc-writable
exit 0
"""#
    }
}
KDL
"$vulcan" run --sandbox bwrap "$tmp/etc.kdl" >"$tmp/out" 2>"$tmp/err"
check "the fragment runs in bubblewrap" $?
sed -n 's/^\[etc\] etc: //p' "$tmp/out" >"$tmp/list"
[ -s "$tmp/list" ] && grep -qw hosts "$tmp/list" && grep -qw resolv.conf "$tmp/list" &&
    grep -qw passwd "$tmp/list"
check "/etc is listed and holds hosts, resolv.conf, passwd" $?
! grep -q '^\[etc\] PRESENT' "$tmp/out"
check "no shadow, gshadow, sudoers, ssh host key, machine-id or service configuration" $?
! grep -qw 'shadow\|gshadow\|sudoers\|postgresql\|pam.d\|cron.d' "$tmp/list"
check "and none of them in the listing" $?
grep -q '^\[etc\] ssh: \(ssh_config\( ssh_config.d\)\? \)\?$' "$tmp/out"
check "/etc/ssh has at most the client configuration" $?
n=$(sed -n 's/^\[etc\] passwd-lines=//p' "$tmp/out")
[ -n "$n" ] && [ "$n" -le 3 ] && [ "$n" -lt "$(grep -c . /etc/passwd)" ]
check "/etc/passwd is the sandbox's ($n entries), not the host's" $?
grep -q '^\[etc\] user=root$' "$tmp/out" || grep -q '^\[etc\] user=vulcan$' "$tmp/out"
check "id names the sandbox user" $?
for w in sh-ok git-ok git-commit-ok curl-ok dns-ok certs-ok; do
    grep -q "^\[etc\] $w\$" "$tmp/out"
    check "inside: $w" $?
done
! grep -q 'etc-writable' "$tmp/out"
check "/etc is read-only" $?

# The same as an unprivileged user: /etc/passwd names it "vulcan".
if id nobody >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    mkdir -p "$tmp/nob" && cp "$tmp/etc.kdl" "$tmp/nob/" && chown -R nobody "$tmp/nob" &&
        chmod 755 "$tmp"
    (cd "$tmp/nob" && HOME="$tmp/nob" runuser -u nobody -- "$vulcan" run --sandbox bwrap etc.kdl) \
        >"$tmp/out" 2>"$tmp/err"
    grep -q '^\[etc\] user=vulcan$' "$tmp/out" && grep -q '^\[etc\] dns-ok$' "$tmp/out" &&
        ! grep -q '^\[etc\] PRESENT' "$tmp/out"
    check "as an unprivileged user the sandbox user is vulcan and the same files are absent" $?
fi
finish
