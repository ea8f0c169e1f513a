#!/bin/sh
# Install every Debian package that building and testing Vulcan CI needs.
# Idempotent: when everything is present it prints nothing and exits 0.
set -eu

PKGS="build-essential cmake ninja-build pkg-config clang clang-format clang-tidy cppcheck
libclang-rt-14-dev libcmocka-dev libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev
libssl-dev libsqlite3-dev libpq-dev postgresql bubblewrap git ca-certificates curl procps
prometheus"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
