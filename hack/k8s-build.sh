#!/usr/bin/env bash
# Builds the Kubernetes binaries the one-node cluster needs (kubelet, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl) at the version pinned in
# hack/k8s-versions.env, and etcd, from the Go module proxy, into a cache outside the
# repository: $PEAPOD_K8S_CACHE/<version>/bin (default /var/cache/peapod-k8s). A binary
# already built there is skipped. Nothing built here is committed.
#
# Method: a scratch module in the cache that requires k8s.io/kubernetes and replaces every
# staging module k8s.io/kubernetes' own go.mod lists (its `=> ./staging/...` replaces) with
# the published k8s.io/X at the staging version; CGO_ENABLED=0, -mod=mod, and the
# component-base (and client-go) version ldflags so that `--version` prints the version.
# etcd (go.etcd.io/etcd/server/v3, whose root package is the etcd main) gets a scratch
# module of its own: its dependencies need not agree with Kubernetes'.
#
# Usage: hack/k8s-build.sh [--bindir] [target...]
#   targets: kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl etcd
#            (the default: all of these) and e2e_node (k8s.io/kubernetes/test/e2e_node built
#            as a test binary, e2e_node.test; only when named) and agnhost (the e2e test
#            images' multi-tool, k8s.io/kubernetes/test/images/agnhost, static; only when named)
#            and ginkgo (the ginkgo CLI at the version k8s.io/kubernetes requires, which runs
#            e2e_node.test in parallel processes; only when named)
#   --bindir prints the binary directory and exits.
# Each build's wall time is printed and appended to <cache>/<version>/build.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=k8s-versions.env
. "$here/k8s-versions.env"

cache=${PEAPOD_K8S_CACHE:-/var/cache/peapod-k8s}
top=$cache/$K8S_VERSION
bindir=$top/bin
if [ "${1:-}" = "--bindir" ]; then
  echo "$bindir"
  exit 0
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl etcd)
fi

export PATH=$PATH:/usr/local/go/bin
go=${GO:-go}
# Nothing to do (the common case) takes no lock: a long build of another target (e2e_node)
# must not hold up make cluster.
missing=0
for t in "${targets[@]}"; do
  case $t in
  e2e_node) [ -x "$bindir/e2e_node.test" ] || missing=1 ;;
  agnhost) [ -x "$bindir/agnhost" ] || missing=1 ;;
  ginkgo) [ -x "$bindir/ginkgo" ] || missing=1 ;;
  *) [ -x "$bindir/$t" ] || missing=1 ;;
  esac
done
[ "$missing" = 1 ] || exit 0

mkdir -p "$bindir" "$top/mod" "$cache/etcd-$ETCD_VERSION"
# One build at a time per cache (make cluster and the e2e suite may both ask).
exec 9>"$cache/.build.lock"
flock 9

log=$top/build.log
k8smod=$top/mod
etcdmod=$cache/etcd-$ETCD_VERSION

minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
k8s_ldflags() {
  local flags="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    flags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

# The scratch module for k8s.io/kubernetes, written once per version.
prepare_k8s() {
  [ -f "$k8smod/.ready" ] && return 0
  echo "preparing $k8smod (k8s.io/kubernetes $K8S_VERSION, staging $K8S_STAGING_VERSION)"
  local upstream
  upstream=$(cd "$k8smod" && GOFLAGS=-mod=mod "$go" mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  [ -f "$upstream" ] || { echo "no go.mod downloaded for k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
  {
    echo "module peapod.local/k8s-build"
    echo
    # The toolchain line of the upstream module, so the build uses the Go it was made for (or newer).
    grep -E '^go [0-9]' "$upstream"
    grep -E '^godebug ' "$upstream" || true
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    # Every staging module upstream replaces with a local directory, except the sample CLI
    # plugin, which is not published.
    sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$upstream" |
      grep -vx 'k8s.io/sample-cli-plugin' | sort -u |
      while read -r m; do echo "	$m => $m $K8S_STAGING_VERSION"; done
    echo ")"
  } >"$k8smod/go.mod"
  touch "$k8smod/.ready"
}

prepare_etcd() {
  [ -f "$etcdmod/.ready" ] && return 0
  echo "preparing $etcdmod (go.etcd.io/etcd/server/v3 $ETCD_VERSION)"
  cat >"$etcdmod/go.mod" <<MOD
module peapod.local/etcd-build

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  touch "$etcdmod/.ready"
}

timed() { # name cmd...: runs cmd, prints and logs its wall time
  local name=$1 start end
  shift
  start=$(date +%s.%N)
  "$@"
  end=$(date +%s.%N)
  local secs
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')
  echo "built $name in ${secs}s"
  echo "$(date -u +%FT%TZ) $name ${secs}s go=$("$go" env GOVERSION) $(nproc)cpu" >>"$log"
}

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
for t in "${targets[@]}"; do
  case $t in
  kubelet | kube-apiserver | kube-controller-manager | kube-scheduler | kubectl)
    if [ -x "$bindir/$t" ]; then continue; fi
    prepare_k8s
    echo "building $t $K8S_VERSION into $bindir"
    (cd "$k8smod" && timed "$t" "$go" build -trimpath -ldflags "$(k8s_ldflags)" -o "$bindir/$t.tmp" "k8s.io/kubernetes/cmd/$t")
    mv "$bindir/$t.tmp" "$bindir/$t"
    ;;
  e2e_node)
    if [ -x "$bindir/e2e_node.test" ]; then continue; fi
    prepare_k8s
    echo "building e2e_node.test $K8S_VERSION into $bindir"
    (cd "$k8smod" && timed e2e_node.test "$go" test -c -trimpath -ldflags "$(k8s_ldflags)" -o "$bindir/e2e_node.test.tmp" k8s.io/kubernetes/test/e2e_node)
    mv "$bindir/e2e_node.test.tmp" "$bindir/e2e_node.test"
    ;;
  agnhost)
    if [ -x "$bindir/agnhost" ]; then continue; fi
    prepare_k8s
    echo "building agnhost ($K8S_VERSION's test/images/agnhost) into $bindir"
    (cd "$k8smod" && timed agnhost "$go" build -trimpath -ldflags "-s -w -buildid=" -o "$bindir/agnhost.tmp" k8s.io/kubernetes/test/images/agnhost)
    mv "$bindir/agnhost.tmp" "$bindir/agnhost"
    ;;
  ginkgo)
    if [ -x "$bindir/ginkgo" ]; then continue; fi
    prepare_k8s
    echo "building the ginkgo CLI (k8s.io/kubernetes $K8S_VERSION's version) into $bindir"
    (cd "$k8smod" && timed ginkgo "$go" build -trimpath -ldflags "-s -w" -o "$bindir/ginkgo.tmp" github.com/onsi/ginkgo/v2/ginkgo)
    mv "$bindir/ginkgo.tmp" "$bindir/ginkgo"
    ;;
  etcd)
    if [ -x "$bindir/etcd" ]; then continue; fi
    prepare_etcd
    echo "building etcd $ETCD_VERSION into $bindir"
    (cd "$etcdmod" && timed etcd "$go" build -trimpath -ldflags "-s -w" -o "$bindir/etcd.tmp" go.etcd.io/etcd/server/v3)
    mv "$bindir/etcd.tmp" "$bindir/etcd"
    ;;
  *)
    echo "unknown target $t" >&2
    exit 2
    ;;
  esac
done
