#!/usr/bin/env bash
# Install Debian's chromium (the headless browser the report tests drive through playwright).
#
# Idempotent: installs the `chromium` package only when /usr/bin/chromium is missing, then
# checks that it starts headless. Needs root (or sudo) for apt-get. Exits non-zero with one
# clear message on failure.
set -euo pipefail

die() { echo "setup-chromium.sh: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "must run as root (or with sudo available) to install chromium"
    SUDO="sudo"
fi

if ! [ -x /usr/bin/chromium ]; then
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install chromium with your distribution's package manager"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show chromium >/dev/null 2>&1; then
        $SUDO apt-get update -qq || die "apt-get update failed"
    fi
    if ! $SUDO apt-get install -y -qq chromium >/dev/null; then
        $SUDO apt-get update -qq || die "apt-get update failed"
        $SUDO apt-get install -y -qq chromium >/dev/null || die "apt-get install chromium failed"
    fi
fi
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium is still missing after installation"
/usr/bin/chromium --headless --no-sandbox --disable-gpu --dump-dom about:blank >/dev/null 2>&1 \
    || die "/usr/bin/chromium does not start headless"
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null)"
