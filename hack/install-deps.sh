#!/usr/bin/env bash
# Installs what peapod needs on a fresh Debian 12 machine. Idempotent: installs only what is missing.
set -euo pipefail

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH=$PATH:/usr/local/go/bin
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install-deps: Go 1.26 is required (see go.mod); put it on PATH" >&2
  exit 1
fi

# package -> a file it provides, to skip apt when everything is there.
declare -A need=(
  [libseccomp-dev]=/usr/include/seccomp.h
  [pkg-config]=/usr/bin/pkg-config
  [iptables]=/usr/sbin/iptables
  [iproute2]=/usr/sbin/ip
  [gcc]=/usr/bin/gcc
  [libc6-dev]=/usr/include/stdio.h
  [procps]=/usr/bin/ps
  [util-linux]=/usr/bin/nsenter
  [kmod]=/usr/sbin/modprobe
  # systemd-analyze, for the test of the installed unit (works without systemd as PID 1).
  [systemd]=/usr/bin/systemd-analyze
  # CheckpointContainer dumps containers with CRIU (through libcontainer).
  [criu]=/usr/sbin/criu
  # What the node e2e images (critest/e2eimages, make node-conformance) copy in: bash, curl
  # and OpenBSD's netcat, which upstream's agnhost image has and busybox lacks.
  [bash]=/bin/bash
  [curl]=/usr/bin/curl
  [netcat-openbsd]=/bin/nc.openbsd
)
missing=()
for pkg in "${!need[@]}"; do
  [ -e "${need[$pkg]}" ] || missing+=("$pkg")
done
# The test images are built from Debian's dynamic busybox. busybox-static installs the same
# /bin/busybox, statically linked, so the file says nothing: ask dpkg for the package.
# Installing busybox replaces busybox-static (the two conflict).
if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' busybox 2>/dev/null)" != "ii " ]; then
  missing+=(busybox)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# overlayfs and bridge netfilter are modules on some kernels.
for mod in overlay br_netfilter; do
  modprobe "$mod" 2>/dev/null || true
done

# golangci-lint (make lint), built from the Go module proxy at a pinned version into a cache
# outside the repo; make lint runs $PEAPOD_TOOLS/bin/golangci-lint, which points at it.
GOLANGCI_LINT_VERSION=v2.15.0
tools=${PEAPOD_TOOLS:-/var/cache/peapod-tools}
lint_dir=$tools/golangci-lint-$GOLANGCI_LINT_VERSION
if [ ! -x "$lint_dir/golangci-lint" ]; then
  echo "install-deps: building golangci-lint $GOLANGCI_LINT_VERSION into $lint_dir"
  mkdir -p "$lint_dir"
  # Outside the repo, so that its go.mod plays no part.
  (cd / && GOBIN=$lint_dir go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION")
fi
mkdir -p "$tools/bin"
ln -sfn "$lint_dir/golangci-lint" "$tools/bin/golangci-lint"
