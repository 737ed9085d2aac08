#!/usr/bin/env bash
# Install and configure Podman on Debian 12 so that gprpipe can run steps in containers.
#
# Idempotent: installs podman + runc only when missing, (re)writes
# /etc/containers/containers.conf only when its content differs, then checks `podman info`.
# Configuration (see ../shared/ENVIRONMENT.md): runtime runc (crun fails on hybrid cgroups)
# and explicit default ulimits (otherwise setrlimit is refused inside containers).
# Needs root (or sudo) for apt-get and /etc. Exits non-zero with one clear message on failure.
set -euo pipefail

die() { echo "setup-podman.sh: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "must run as root (or with sudo available) to install podman"
    SUDO="sudo"
fi

need_install=0
command -v podman >/dev/null 2>&1 || need_install=1
command -v runc >/dev/null 2>&1 || need_install=1
if [ "$need_install" -eq 1 ]; then
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install podman and runc with your distribution's package manager"
    export DEBIAN_FRONTEND=noninteractive
    # Update the package lists only when podman is not installable from the current ones.
    if ! apt-cache show podman >/dev/null 2>&1 || ! apt-cache show runc >/dev/null 2>&1; then
        $SUDO apt-get update -qq || die "apt-get update failed"
    fi
    if ! $SUDO apt-get install -y -qq podman runc >/dev/null; then
        $SUDO apt-get update -qq || die "apt-get update failed"
        $SUDO apt-get install -y -qq podman runc >/dev/null || die "apt-get install podman runc failed"
    fi
fi
command -v podman >/dev/null 2>&1 || die "podman is still not on PATH after installation"

CONF=/etc/containers/containers.conf
want="$(cat <<'CONF_EOF'
# Written by gprpipe scripts/setup-podman.sh
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
CONF_EOF
)"
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$want" ]; then
    if [ -f "$CONF" ] && ! grep -q "Written by gprpipe" "$CONF"; then
        $SUDO cp "$CONF" "$CONF.gprpipe-backup"
        echo "setup-podman.sh: previous $CONF saved as $CONF.gprpipe-backup"
    fi
    $SUDO mkdir -p /etc/containers
    printf '%s\n' "$want" | $SUDO tee "$CONF" >/dev/null
    echo "setup-podman.sh: wrote $CONF"
fi

if ! info="$(podman info --format '{{.Host.OCIRuntime.Name}} {{.Version.Version}}' 2>&1)"; then
    die "podman is installed but 'podman info' fails: $info"
fi
echo "setup-podman.sh: podman ready (runtime and version: $info)"
