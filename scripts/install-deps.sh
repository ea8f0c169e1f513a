#!/bin/sh
# Install every Debian package that building and testing Vulcan CI needs.
# Idempotent: when everything is present it prints nothing and exits 0.
set -eu

PKGS="build-essential cmake ninja-build pkg-config clang clang-format clang-tidy cppcheck
libclang-rt-14-dev libcmocka-dev libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev libargon2-dev libxmlsec1-dev libxml2-dev zlib1g-dev
libgnutls28-dev libssl-dev openssl libsqlite3-dev sqlite3 libpq-dev postgresql bubblewrap git git-lfs ca-certificates curl procps
prometheus chromium nodejs python3 python3-jwt python3-cryptography age pass gnupg
simplesamlphp php-cli php-xml php-mbstring php-curl
systemd python3-yaml haproxy rsyslog"

root=$(cd "$(dirname "$0")/.." && pwd)

# npm packages of the browser, OTLP and commit-status tests, from their committed lock files
# (playwright-core only drives Debian's chromium; it never downloads a browser).
npm_deps() {
    if ! command -v npm >/dev/null 2>&1; then
        echo "install-deps: npm is missing (it comes with Node.js; on Debian: apt-get install npm)" >&2
        exit 1
    fi
    for dir in "$root/tests/browser" "$root/tests/otlp" "$root/tests/status"; do
        [ -f "$dir/package-lock.json" ] || continue
        stamp="$dir/node_modules/.package-lock.json"
        if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
            echo "install-deps: npm ci in ${dir#"$root"/}"
            (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund \
                --loglevel=error >/dev/null)
        fi
    done
}

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    npm_deps
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
npm_deps
