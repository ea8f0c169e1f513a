#!/bin/sh
# Issue 15, secret providers: the two shipped providers (`vulcan secret-provider age` and
# `vulcan secret-provider pass`) with the real age and pass (GnuPG) programs, run through
# the server's provider runner (`vulcan secret-provider test`, the same code the server
# runs at claim): the values come back; keys that leave the directory, files that are not
# age files, wrong identities, a readable identity, values too short or too long, option-
# looking pass names are refused with a message that does not quote the content. The
# server refuses to start on a bad --secret-provider, and logs the good ones.
# Usage: test_providers.sh VULCAN_BINARY
set -u
vulcan=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
pids=""
export HOME="$tmp/home" GNUPGHOME="$tmp/gnupg" PASSWORD_STORE_DIR="$tmp/store"
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; gpgconf --kill gpg-agent 2>/dev/null;
      wait 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$HOME" && mkdir -m 700 "$GNUPGHOME"
for tool in age age-keygen pass gpg; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "test_providers: $tool is missing (scripts/install-deps.sh installs it)"
        exit 1
    fi
done

# The runner, as the server runs a provider: NAME KEY [more test options] -> $tmp/out, $tmp/err
resolve() {
    name=$1 key=$2
    shift 2
    "$vulcan" secret-provider test --secret-provider "$spec" "$@" --show -- "$name" "$key" \
        >"$tmp/out" 2>"$tmp/err"
}

# ---------------------------------------------------------------- age
age-keygen -o "$tmp/age.key" 2>/dev/null && chmod 600 "$tmp/age.key"
recipient=$(age-keygen -y "$tmp/age.key")
mkdir -p "$tmp/age/ci"
printf 'npm_0123456789abcdef\n' | age -r "$recipient" -o "$tmp/age/ci/npm.age"
printf 'line one of a key\nline two\n' | age -a -r "$recipient" -o "$tmp/age/deploy.age"
printf 'abc' | age -r "$recipient" -o "$tmp/age/short.age"
head -c 65537 /dev/zero | tr '\0' x | age -r "$recipient" -o "$tmp/age/big.age"
head -c 65536 /dev/zero | tr '\0' y | age -r "$recipient" -o "$tmp/age/max.age"
printf 'plaintext-secret-stored-by-mistake\n' >"$tmp/age/plain"
printf 'outside-the-directory\n' | age -r "$recipient" -o "$tmp/outside.age"
ln -s ../outside.age "$tmp/age/escape.age"
spec="age=$vulcan secret-provider age --dir $tmp/age --identity $tmp/age.key"

resolve age ci/npm.age
[ "$(cat "$tmp/out")" = npm_0123456789abcdef ]
check "age: a binary age file decrypts, without its trailing newline" $?
resolve age deploy.age
printf 'line one of a key\nline two\n' | cmp -s - "$tmp/out"
check "age: an armored multi-line value comes back whole" $?
resolve age max.age
[ "$(wc -c <"$tmp/out")" = 65537 ]
check "age: a 64 KiB value is accepted" $?

for key in ../outside.age /etc/passwd ci/../../outside.age ./ci/npm.age ci//npm.age 'ci/npm.age/'; do
    resolve age "$key"
    [ $? = 1 ] && [ ! -s "$tmp/out" ] && grep -q "secret provider 'age' failed with exit status 1.*key" "$tmp/err"
    check "age: key '$key' is refused" $?
done
resolve age escape.age
[ $? = 1 ] && [ ! -s "$tmp/out" ] && grep -q "leads out of" "$tmp/err" && ! grep -q outside-the "$tmp/err"
check "age: a symbolic link out of the directory is refused" $?
resolve age plain
[ $? = 1 ] && grep -q "not an age-encrypted file" "$tmp/err" && ! grep -q plaintext-secret "$tmp/err"
check "age: a file in clear is refused without quoting it" $?
resolve age missing.age
[ $? = 1 ] && grep -q "no file 'missing.age'" "$tmp/err"
check "age: a missing file says so" $?
resolve age short.age
[ $? = 1 ] && [ ! -s "$tmp/out" ] && grep -q "shorter than 6" "$tmp/err"
check "age: a value of 3 bytes is refused" $?
resolve age big.age
[ $? = 1 ] && [ ! -s "$tmp/out" ] && grep -q "longer than 65536 bytes" "$tmp/err"
check "age: a value of 64 KiB + 1 is refused" $?

age-keygen -o "$tmp/other.key" 2>/dev/null && chmod 600 "$tmp/other.key"
spec="age=$vulcan secret-provider age --dir $tmp/age --identity $tmp/other.key"
resolve age ci/npm.age
[ $? = 1 ] && [ ! -s "$tmp/out" ] && grep -q "no identity matched" "$tmp/err"
check "age: the wrong identity fails with age's reason" $?
chmod 644 "$tmp/other.key"
resolve age ci/npm.age
[ $? = 1 ] && grep -q "chmod 600" "$tmp/err"
check "age: an identity others can read is refused" $?
spec="age=$vulcan secret-provider age --dir $tmp/age --identity $tmp/age.key --age /nonexistent/age"
resolve age ci/npm.age
[ $? = 1 ] && grep -q "cannot run '/nonexistent/age'" "$tmp/err"
check "age: a missing age program says so" $?

# ---------------------------------------------------------------- pass
gpg --batch --passphrase '' --quick-gen-key vulcan-test@example.invalid default default never \
    >/dev/null 2>&1
check "pass: a throwaway GnuPG key" $?
pass init vulcan-test@example.invalid >/dev/null
printf 'pass_value_0123\nuser: bob\nurl: https://example.invalid\n' | pass insert -m ci/token >/dev/null
printf 'ab\n' | pass insert -m ci/short >/dev/null
printf 'a-value-with-a-cr\r\n' | pass insert -m cr >/dev/null
spec="pass=$vulcan secret-provider pass --store $PASSWORD_STORE_DIR --gnupghome $GNUPGHOME"

resolve pass ci/token
[ "$(cat "$tmp/out")" = pass_value_0123 ]
check "pass: the first line of 'pass show'" $?
resolve pass cr
[ "$(cat "$tmp/out")" = a-value-with-a-cr ]
check "pass: a CRLF line ending is not part of the value" $?
resolve pass ci/nothing
[ $? = 1 ] && [ ! -s "$tmp/out" ] && grep -q "not in the password store" "$tmp/err"
check "pass: a missing entry fails with pass's reason" $?
resolve pass ci/short
[ $? = 1 ] && grep -q "shorter than 6" "$tmp/err"
check "pass: a value of 2 bytes is refused" $?
for key in --help -c ../ci/token /ci/token 'ci token' 'ci/token;id'; do
    resolve pass "$key"
    [ $? = 1 ] && [ ! -s "$tmp/out" ] && grep -q "key" "$tmp/err"
    check "pass: key '$key' is refused" $?
done
# The runner's environment is minimal: without --store and --gnupghome the provider does not
# find the store through the variables this shell exported.
spec="pass=$vulcan secret-provider pass"
resolve pass ci/token
[ $? = 1 ] && [ ! -s "$tmp/out" ] && grep -q "not in the password store" "$tmp/err"
check "pass: the server's PASSWORD_STORE_DIR does not leak into a provider" $?

# ---------------------------------------------------------------- hostile providers, via the CLI
printf '#!/bin/sh\nsleep 60\n' >"$tmp/hang" && chmod +x "$tmp/hang"
spec="hang=$tmp/hang"
start=$(date +%s)
resolve hang k --timeout 500ms
[ $? = 1 ] && grep -q "timed out after 500 ms" "$tmp/err" && [ $(($(date +%s) - start)) -lt 10 ]
check "a hanging provider is killed at the timeout" $?
printf '#!/bin/sh\necho not-json-hunter2\n' >"$tmp/garbage" && chmod +x "$tmp/garbage"
spec="garbage=$tmp/garbage"
resolve garbage k
[ $? = 1 ] && grep -q "no valid JSON" "$tmp/err" && ! grep -q hunter2 "$tmp/err"
check "a provider printing garbage fails without quoting it" $?
"$vulcan" secret-provider test --secret-provider "x=$tmp/garbage" nope k >"$tmp/out" 2>"$tmp/err"
[ $? = 1 ] && grep -q "'nope' is not configured" "$tmp/err"
check "an unknown provider name says so" $?
resolve garbage k --timeout 10m
[ $? = 2 ] && grep -q "from 100ms to 5m" "$tmp/err"
check "a timeout out of range is bad usage" $?

# ---------------------------------------------------------------- the server's options
: >"$tmp/out"
for bad in "age" "Bad=/bin/true" "x=bin/true" "x=/nonexistent" "x=$tmp/age.key" "a=/bin/true,a=/bin/true"; do
    "$vulcan" server --no-auth --listen 127.0.0.1:0 --data-dir "$tmp/bad" \
        --secret-provider "$bad" >"$tmp/out" 2>"$tmp/err" &
    p=$!
    pids="$pids $p"
    for _ in $(seq 1 50); do kill -0 $p 2>/dev/null || break; sleep 0.1; done
    wait $p
    rc=$?
    [ $rc = 2 ] && grep -q "vulcan server: --secret-provider: " "$tmp/err"
    check "the server refuses --secret-provider '$bad'" $?
done
"$vulcan" server --no-auth --listen 127.0.0.1:0 --data-dir "$tmp/bad" \
    --secret-provider-timeout 0s >"$tmp/out" 2>"$tmp/err"
[ $? = 2 ] && grep -q "secret-provider-timeout" "$tmp/err"
check "the server refuses --secret-provider-timeout 0s" $?

VULCAN_SECRET_PROVIDERS="age=$vulcan secret-provider age --dir $tmp/age --identity $tmp/age.key,pass=$vulcan secret-provider pass" \
    "$vulcan" server --no-auth --listen 127.0.0.1:0 --data-dir "$tmp/data" --log-format text \
    --secret-provider-timeout 5s >"$tmp/server.log" 2>&1 &
pids="$pids $!"
url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$tmp/server.log")
    [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
    sleep 0.1
done
[ -n "$url" ] && grep -q 'secret provider configured" name=age' "$tmp/server.log" &&
    grep -q 'secret provider configured" name=pass' "$tmp/server.log"
check "the server starts with providers from VULCAN_SECRET_PROVIDERS and logs them" $?

finish
