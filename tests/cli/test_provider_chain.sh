#!/bin/sh
# Issue 15, secret providers end to end: a real `vulcan server` with the shipped `age` and
# `pass` providers (real age, pass and GnuPG) and a local worker runs chains whose secrets
# come from them: the values arrive as a variable and as a secret file, are masked in the
# stored log, and are asked for at each claim (a changed file gives the new value). A
# provider that fails, hangs or is not configured fails the attempt with its reason and
# never runs the script. A slow provider does not hold back other claims: a chain without
# secrets completes on a second worker while the provider still runs.
# Usage: test_provider_chain.sh VULCAN_BINARY
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
        echo "test_provider_chain: $tool is missing (scripts/install-deps.sh installs it)"
        exit 1
    fi
done

# ---- the stores: an age directory and a pass store with a throwaway GnuPG key
age-keygen -o "$tmp/age.key" 2>/dev/null && chmod 600 "$tmp/age.key"
recipient=$(age-keygen -y "$tmp/age.key")
mkdir -p "$tmp/age/ci"
age_value=age-npm-token-4f1c9a2e7b
printf '%s\n' "$age_value" | age -r "$recipient" -o "$tmp/age/ci/npm.age"
printf 'first-line-of-a-key-file\nsecond-line-of-a-key-file\n' |
    age -a -r "$recipient" -o "$tmp/age/deploy.age"
gpg --batch --passphrase '' --quick-gen-key vulcan-test@example.invalid default default never \
    >/dev/null 2>&1
pass init vulcan-test@example.invalid >/dev/null
pass_value=pass-db-password-93b7e0
printf '%s\nuser: ci\n' "$pass_value" | pass insert -m ci/db >/dev/null
check "age and pass stores are made" $?
printf '#!/bin/sh\necho "the vault is sealed" >&2\nexit 3\n' >"$tmp/broken" && chmod +x "$tmp/broken"
printf '#!/bin/sh\nsleep 60\n' >"$tmp/hang" && chmod +x "$tmp/hang"
# Answers after 4 s: long enough to see that other claims go on meanwhile.
cat >"$tmp/slow" <<'EOS'
#!/bin/sh
cat >/dev/null
sleep 4
printf '{"value": "slow-provider-value-77"}'
EOS
chmod +x "$tmp/slow"

start() { # log, extra... -> $url, $spid
    l=$1
    shift
    : >"$l"
    "$vulcan" server --listen 127.0.0.1:0 --data-dir "$tmp/data" --log-format text --no-auth \
        "$@" >"$l" 2>&1 &
    spid=$!
    pids="$pids $spid"
    url=
    for _ in $(seq 1 100); do
        url=$(sed -n 's/.*vulcan server started" url=\(http:[^ ]*\).*/\1/p' "$l")
        [ -n "$url" ] && curl -fs "$url/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    export VULCAN_SERVER="$url"
    [ -n "$url" ]
}
field() { # chain id, python expression over the chain JSON `d` -> its value
    curl -fs "$url/api/v1/chains/$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print($2)"
}
wait_done() { # chain id
    [ -n "$1" ] || return 1
    for _ in $(seq 1 300); do
        case $(field "$1" 'd["status"]') in completed | failed | cancelled) return 0 ;; esac
        sleep 0.1
    done
    return 1
}
submit() { # workflow text -> $cid
    printf '%s\n' "$1" >"$tmp/wf.kdl"
    "$vulcan" submit "$tmp/wf.kdl" >"$tmp/sub" 2>"$tmp/err"
    cid=$(head -n 1 "$tmp/sub")
}
# A one-fragment workflow using secret $1 (as a variable) with script $2.
wf() {
    printf 'version "0.1"\ntriggers "push"\nchain {\n    machine "default"\n    fragment {\n        name "use"\n        secrets "%s"\n        run """\n%s\n"""\n    }\n}\n' "$1" "$2"
}

start "$tmp/server.log" --workers 2 \
    --secret-provider "age=$vulcan secret-provider age --dir $tmp/age --identity $tmp/age.key" \
    --secret-provider "pass=$vulcan secret-provider pass --store $PASSWORD_STORE_DIR --gnupghome $GNUPGHOME" \
    --secret-provider "broken=$tmp/broken" --secret-provider "hang=$tmp/hang" \
    --secret-provider "slow=$tmp/slow" --secret-provider-timeout 7s
check "the server starts with five providers" $?

"$vulcan" secrets set --provider age --key ci/npm.age NPM_TOKEN </dev/null >/dev/null 2>"$tmp/err" &&
    "$vulcan" secrets set --provider age --key deploy.age DEPLOY_KEY </dev/null >/dev/null 2>&1 &&
    "$vulcan" secrets set --provider pass --key ci/db DB_PASSWORD </dev/null >/dev/null 2>&1 &&
    "$vulcan" secrets set --provider broken --key any BROKEN_ONE </dev/null >/dev/null 2>&1 &&
    "$vulcan" secrets set --provider hang --key any HANGING_ONE </dev/null >/dev/null 2>&1 &&
    "$vulcan" secrets set --provider slow --key any SLOW_ONE </dev/null >/dev/null 2>&1 &&
    "$vulcan" secrets set --provider nowhere --key any UNCONFIGURED </dev/null >/dev/null 2>&1
check "provider-backed secrets are defined" $?

# ---- age and pass in one chain: variable, secret file, masked
cat >"$tmp/both.kdl" <<'EOF2'
version "0.1"
triggers "push"
chain {
    machine "default"
    secrets "NPM_TOKEN" "DB_PASSWORD"
    fragment {
        name "use"
        secret-file "DEPLOY_KEY"
        run """
            printf %s "$NPM_TOKEN" | sha256sum | sed 's/ .*//; s/^/age-digest=/'
            printf %s "$DB_PASSWORD" | sha256sum | sed 's/ .*//; s/^/pass-digest=/'
            sha256sum <"$DEPLOY_KEY" | sed 's/ .*//; s/^/file-digest=/'
            echo "raw: $NPM_TOKEN and $DB_PASSWORD"
            echo "withheld: ${VULCAN_SECRETS_WITHHELD:-none}"
            """
    }
}
EOF2
"$vulcan" submit "$tmp/both.kdl" >"$tmp/sub" 2>"$tmp/err"
cid=$(head -n 1 "$tmp/sub")
wait_done "$cid" && [ "$(field "$cid" 'd["status"]')" = completed ]
check "a chain with age and pass secrets completes" $?
"$vulcan" logs "$cid" >"$tmp/log" 2>&1
age_digest=$(printf %s "$age_value" | sha256sum | sed 's/ .*//')
pass_digest=$(printf %s "$pass_value" | sha256sum | sed 's/ .*//')
grep -q "age-digest=$age_digest" "$tmp/log" && grep -q "pass-digest=$pass_digest" "$tmp/log"
check "the script gets the age and the pass values" $?
grep -q "file-digest=$(printf 'first-line-of-a-key-file\nsecond-line-of-a-key-file' | sha256sum | sed 's/ .*//')" "$tmp/log"
check "a secret-file from age holds the whole multi-line value" $?
grep -q 'raw: \*\*\* and \*\*\*' "$tmp/log" && ! grep -q "$age_value\|$pass_value" "$tmp/log" &&
    grep -q "withheld: none" "$tmp/log"
check "provider values are masked in the log" $?
! grep -a -q "$age_value\|$pass_value\|second-line-of-a-key" "$tmp/server.log" "$tmp/data"/*.db* 2>/dev/null
check "no provider value in the server log or the database" $?
grep -q 'secret from a provider.*name=NPM_TOKEN.*provider=age' "$tmp/server.log"
check "the server logs which provider gave which name (never the value)" $?

# ---- asked at each claim: a changed value is the new one next time
new_value=age-npm-token-rotated-5d2
printf '%s\n' "$new_value" | age -r "$recipient" -o "$tmp/age/ci/npm.age"
submit "$(wf NPM_TOKEN 'printf %s "$NPM_TOKEN" | sha256sum | sed "s/ .*//; s/^/digest=/"')"
wait_done "$cid" && "$vulcan" logs "$cid" >"$tmp/log" 2>&1 &&
    grep -q "digest=$(printf %s "$new_value" | sha256sum | sed 's/ .*//')" "$tmp/log"
check "the provider is asked at each claim (a rotated value arrives)" $?

# ---- failures fail the attempt with the reason; the script never runs
submit "$(wf BROKEN_ONE 'echo the-script-ran')"
wait_done "$cid" && [ "$(field "$cid" 'd["status"]')" = failed ]
check "a failing provider fails the chain" $?
err=$(field "$cid" 'd["fragments"][0]["error"]')
echo "$err" | grep -q "secret 'BROKEN_ONE': secret provider 'broken' failed with exit status 3: the vault is sealed"
check "the fragment's error names the secret, the provider and its reason ($err)" $?
"$vulcan" logs "$cid" 2>/dev/null | grep -q the-script-ran
[ $? = 1 ]
check "the script did not run" $?

t0=$(date +%s)
submit "$(wf HANGING_ONE 'echo the-script-ran')"
wait_done "$cid" && [ "$(field "$cid" 'd["status"]')" = failed ] &&
    field "$cid" 'd["fragments"][0]["error"]' | grep -q "timed out after 7000 ms" &&
    [ $(($(date +%s) - t0)) -lt 25 ]
check "a hanging provider is killed at the timeout and fails the attempt" $?

submit "$(wf UNCONFIGURED 'echo the-script-ran')"
wait_done "$cid" && [ "$(field "$cid" 'd["status"]')" = failed ] &&
    field "$cid" 'd["fragments"][0]["error"]' | grep -q "provider 'nowhere', which this server does not have"
check "a provider the server does not have fails the attempt with what to do" $?

# ---- a slow provider does not hold back other claims
submit "$(wf SLOW_ONE 'printf %s "$SLOW_ONE" | wc -c | sed "s/^/len=/"')"
slow=$cid
sleep 0.5
t0=$(date +%s%N)
submit 'version "0.1"
triggers "push"
chain {
    machine "default"
    fragment { name "quick"; run "echo quick"; }
}'
quick=$cid
wait_done "$quick" && [ "$(field "$quick" 'd["status"]')" = completed ]
quick_ok=$?
t1=$(date +%s%N)
[ $quick_ok = 0 ] && [ "$(field "$slow" 'd["status"]')" = running ]
check "a chain without secrets completes in $(((t1 - t0) / 1000000)) ms while a provider still runs for another claim" $?
wait_done "$slow" && [ "$(field "$slow" 'd["status"]')" = completed ] &&
    "$vulcan" logs "$slow" 2>/dev/null | grep -q "len=22"
check "the slow provider's chain then completes with its value" $?

kill "$spid" && wait "$spid" 2>/dev/null
code=$?
[ $code = 0 ]
check "the server stops cleanly" $?
finish
