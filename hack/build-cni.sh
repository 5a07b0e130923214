#!/usr/bin/env bash
# Builds the CNI plugins peapod's built-in network needs (bridge, host-local, loopback, portmap)
# from github.com/containernetworking/plugins at the version go.mod pins, into one directory
# (default bin/cni). Idempotent: when the binaries were already built from that version with
# this Go toolchain it returns at once.
#
# Usage: hack/build-cni.sh [outdir]
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-bin/cni}
mod=github.com/containernetworking/plugins
pkgs=(
  "$mod/plugins/main/bridge"
  "$mod/plugins/ipam/host-local"
  "$mod/plugins/main/loopback"
  "$mod/plugins/meta/portmap"
)

go=${GO:-go}
version=$("$go" list -m -f '{{.Version}}' "$mod")
stamp="$version $("$go" env GOVERSION)"

uptodate=1
for p in "${pkgs[@]}"; do
  [ -x "$out/${p##*/}" ] || uptodate=0
done
if [ "$uptodate" = 1 ] && [ "$(cat "$out/.version" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi

mkdir -p "$out"
# Static, stripped, and stamped with the version the way upstream's build_linux.sh does, so
# `bridge --version` says which release it is.
CGO_ENABLED=0 "$go" build -trimpath \
  -ldflags "-s -w -X $mod/pkg/utils/buildversion.BuildVersion=$version" \
  -o "$out/" "${pkgs[@]}"
echo "$stamp" >"$out/.version"
echo "build-cni: built ${pkgs[*]##*/} $version into $out"
