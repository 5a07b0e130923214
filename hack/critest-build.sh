#!/usr/bin/env bash
# critest-build.sh SRC OUT [REF]: build cri-tools' critest binary at tag REF (default v1.36.0)
# into OUT, from SRC: a clone of https://github.com/kubernetes-sigs/cri-tools (a checkout or a
# bare clone; the tag is exported with git archive, so SRC's working tree is not touched).
# Upstream critest is a test binary (go test -c ./cmd/critest), not a module the Go proxy
# serves; cri-tools vendors its dependencies, so the build needs no network. OUT is kept when
# it already reports REF's version.
set -euo pipefail

src=${1:?usage: critest-build.sh SRC OUT [REF]}
out=${2:?usage: critest-build.sh SRC OUT [REF]}
ref=${3:-v1.36.0}
go=${GO:-go}
version=${ref#v}

if [[ -x "$out" ]] && "$out" -version 2>/dev/null | grep -qx "critest version: $version"; then
	echo "critest-build: $out is critest $version already"
	exit 0
fi
if ! git -C "$src" rev-parse --verify --quiet "$ref^{commit}" >/dev/null; then
	echo "critest-build: $src is not a cri-tools clone with $ref (git clone https://github.com/kubernetes-sigs/cri-tools)" >&2
	exit 2
fi

work=$(mktemp -d /tmp/critest-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
git -C "$src" archive --format=tar "$ref" | tar -x -C "$work"
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
echo "critest-build: building critest $version from $src into $out"
(cd "$work" && CGO_ENABLED=0 "$go" test -c -mod=vendor -trimpath \
	-ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=$version" -o "$out" ./cmd/critest)
