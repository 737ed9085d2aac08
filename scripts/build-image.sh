#!/usr/bin/env bash
# Build the gprpipe runtime image.
#
#   scripts/build-image.sh [--engine podman|docker|apptainer] [--tag TAG] [--base IMAGE]
#                          [--no-cache]
#
# podman/docker: builds containers/Containerfile from the repository root, TAG defaults to
#   localhost/gprpipe:<gprpipe --version of this source tree>. The base image is --base if given, else
#   python:3.11-slim when it is present or can be pulled, else a Debian bookworm base built
#   with debootstrap and imported as localhost/gprpipe-base:bookworm (cached: built once).
#   pip inside the build reaches the package index through the host network
#   (--network=host) and, for podman, the host CA bundle (-v /etc/ssl/certs:...:ro).
# apptainer: builds containers/gprpipe.def into TAG (a .sif path, default
#   gprpipe_<version>.sif in the current directory). Needs network access to docker.io.
#
# The image records the gprpipe version (label org.gprpipe.version, env GPRPIPE_VERSION);
# `gprpipe run` refuses an image whose version differs from the host's.
set -euo pipefail

die() { echo "build-image.sh: $*" >&2; exit 1; }
log() { echo "build-image.sh: $*" >&2; }
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE=podman
TAG=""
BASE=""
NO_CACHE=()
LOCAL_BASE=localhost/gprpipe-base:bookworm
PUBLIC_BASE=docker.io/library/python:3.11-slim

while [ $# -gt 0 ]; do
    case "$1" in
        --engine) [ $# -ge 2 ] || die "--engine needs a value"; ENGINE="$2"; shift 2 ;;
        --engine=*) ENGINE="${1#*=}"; shift ;;
        --tag) [ $# -ge 2 ] || die "--tag needs a value"; TAG="$2"; shift 2 ;;
        --tag=*) TAG="${1#*=}"; shift ;;
        --base) [ $# -ge 2 ] || die "--base needs a value"; BASE="$2"; shift 2 ;;
        --base=*) BASE="${1#*=}"; shift ;;
        --no-cache) NO_CACHE=(--no-cache); shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

PYTHON="$(command -v python3 || command -v python || true)"
[ -n "$PYTHON" ] || die "python3 is needed to read the gprpipe version"
# The version the host reports (`gprpipe --version` of this source tree: setuptools-scm's
# at install time, from git), so that `gprpipe run` accepts the image; the image build has
# no git metadata and gets it as SETUPTOOLS_SCM_PRETEND_VERSION.
VERSION="$(PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -c \
    'import gprpipe; print(gprpipe.__version__)' 2>/dev/null)" \
    || VERSION="$(cd "$ROOT" && "$PYTHON" -m setuptools_scm 2>/dev/null)" \
    || die "cannot tell the gprpipe version (install gprpipe or setuptools-scm)"

start=$(date +%s)

build_debian_base() {
    # localhost/gprpipe-base:bookworm from Debian packages, for machines without a registry.
    local exe="$1"
    if "$exe" image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
        log "base $LOCAL_BASE exists (cached), not rebuilding"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "building the Debian base with debootstrap needs root"
    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq debootstrap >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; } \
            || die "cannot install debootstrap (apt-get install -y debootstrap)"
    fi
    local dir t0
    dir="$(mktemp -d "${TMPDIR:-/var/tmp}/gprpipe-base.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$dir'" EXIT
    t0=$(date +%s)
    log "debootstrap bookworm into $dir (about a minute)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip \
        bookworm "$dir" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >"$dir.log" 2>&1 \
        || { tail -n 20 "$dir.log" >&2; die "debootstrap failed (full log: $dir.log)"; }
    rm -f "$dir.log"
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    log "debootstrap took $(( $(date +%s) - t0 )) s; importing as $LOCAL_BASE"
    tar -C "$dir" -c . | "$exe" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        - "$LOCAL_BASE" >/dev/null || die "$exe import of the Debian base failed"
    rm -rf "$dir"
    trap - EXIT
}

choose_base() {
    local exe="$1"
    if [ -n "$BASE" ]; then
        if [ "$BASE" = "$LOCAL_BASE" ]; then build_debian_base "$exe"; fi
        return
    fi
    if "$exe" image inspect "$PUBLIC_BASE" >/dev/null 2>&1; then
        BASE="$PUBLIC_BASE"
    elif timeout 120 "$exe" pull -q "$PUBLIC_BASE" >/dev/null 2>&1; then
        BASE="$PUBLIC_BASE"
    else
        log "cannot pull $PUBLIC_BASE (no registry reachable): using a Debian base instead"
        build_debian_base "$exe"
        BASE="$LOCAL_BASE"
    fi
}

case "$ENGINE" in
    podman|docker)
        command -v "$ENGINE" >/dev/null 2>&1 \
            || die "$ENGINE not found (for podman: scripts/setup-podman.sh)"
        if [ "$ENGINE" = docker ] && ! docker info >/dev/null 2>&1; then
            die "the Docker daemon is not reachable (docker info fails): start it, or use --engine podman"
        fi
        TAG="${TAG:-localhost/gprpipe:${VERSION//+/-}}"  # '+' (local version) is no tag character
        choose_base "$ENGINE"
        args=(build -f "$ROOT/containers/Containerfile" -t "$TAG" --network=host
              --build-arg "BASE=$BASE" --build-arg "GPRPIPE_VERSION=$VERSION" ${NO_CACHE[@]+"${NO_CACHE[@]}"})
        if [ "$ENGINE" = podman ]; then
            args+=(--ignorefile "$ROOT/containers/Containerfile.dockerignore")
            CA=/etc/ssl/certs/ca-certificates.crt
            if [ -f "$CA" ]; then
                args+=(-v /etc/ssl/certs:/etc/ssl/certs:ro --build-arg "CA_BUNDLE=$CA")
            fi
        else
            export DOCKER_BUILDKIT=1  # reads containers/Containerfile.dockerignore
        fi
        log "building $TAG (gprpipe $VERSION) from $BASE"
        old_id="$("$ENGINE" image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)"
        t0=$(date +%s)
        "$ENGINE" "${args[@]}" "$ROOT" || die "$ENGINE build failed"
        new_id="$("$ENGINE" image inspect --format '{{.Id}}' "$TAG")"
        if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
            # the previous build of this tag is now untagged: remove it (kept if in use)
            "$ENGINE" rmi "$old_id" >/dev/null 2>&1 || true
        fi
        log "image build took $(( $(date +%s) - t0 )) s"
        got="$("$ENGINE" image inspect --format '{{ index .Config.Labels "org.gprpipe.version" }}' "$TAG")"
        [ "$got" = "$VERSION" ] || die "image $TAG records gprpipe version '$got', expected $VERSION"
        "$ENGINE" run --rm "$TAG" python -c "import gprpipe, h5py, numpy, scipy, uproot, mplhep, jinja2" \
            || die "smoke test failed: the image cannot import gprpipe and its dependencies"
        ;;
    apptainer)
        APPT="$(command -v apptainer || command -v singularity || true)"
        [ -n "$APPT" ] || die "apptainer not found: install Apptainer (https://apptainer.org), or build with --engine podman"
        TAG="${TAG:-gprpipe_$VERSION.sif}"
        [ -z "$BASE" ] || log "--base is ignored for apptainer (edit From: in containers/gprpipe.def)"
        extra=()
        [ "$(id -u)" -eq 0 ] || extra+=(--fakeroot)
        TAG_ABS="$(cd "$(dirname "$TAG")" && pwd)/$(basename "$TAG")"
        log "building $TAG_ABS (gprpipe $VERSION)"
        (cd "$ROOT" && "$APPT" build --force ${extra[@]+"${extra[@]}"} \
            --build-arg "GPRPIPE_VERSION=$VERSION" "$TAG_ABS" containers/gprpipe.def) \
            || die "apptainer build failed"
        got="$("$APPT" inspect --labels "$TAG_ABS" | sed -n 's/^org\.gprpipe\.version: *//p')"
        [ "$got" = "$VERSION" ] || die "image $TAG_ABS records gprpipe version '$got', expected $VERSION"
        ;;
    *) die "unknown engine '$ENGINE' (podman, docker or apptainer)" ;;
esac

log "built $TAG (gprpipe $VERSION) in $(( $(date +%s) - start )) s"
echo "$TAG"
