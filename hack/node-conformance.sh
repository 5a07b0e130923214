#!/usr/bin/env bash
# Kubernetes' node conformance suite against a kubelet on this machine (make node-conformance):
# the [NodeConformance] specs of k8s.io/kubernetes/test/e2e_node at the pinned version, less the
# [Serial], [Slow], [Flaky], [Disruptive] and [Feature:...] ones (upstream's default
# node-conformance selection) and the specs critest/nodeconformance/skips.go lists by name,
# each with its reason (nodeconformance skips prints them).
#
#   hack/node-conformance.sh               against a peapod of its own (own root, state,
#                                          socket, CNI bridge)
#   ENDPOINT=unix:///path.sock hack/...    against any CRI runtime already running (its
#                                          registry mirrors must point at $REGISTRY_ADDR)
#   ENDPOINT=containerd hack/...           against Debian's containerd, started and stopped
#                                          around the run by hack/containerd.sh
#   FOCUS=regex                            only the selected specs whose name matches
#   NODES=n                                parallel ginkgo processes (default 4)
#
# The suite starts its own etcd, kube-apiserver and kubelet (root dir /var/lib/kubelet, ports
# 10248, 10250 and 10255). What it needs that this machine lacks is provided here: every image
# the specs pull is built by critest/e2eimages and served by a registry on $REGISTRY_ADDR
# (registry.k8s.io, docker.io and gcr.io are mirrored to it); it runs the kubelet through
# systemd-run whenever that exists, so it runs with a PATH that has every command but
# systemd-run (systemd is not PID 1 here); it calls sudo, which is a pass-through there; its
# kubelet would move every process of the root cgroup to /system, so --system-cgroups,
# --kubelet-cgroups and --runtime-cgroups are emptied.
#
# It prints one closing line "N passed, N failed, N skipped" and writes the per-spec results
# (JUnit XML) and the logs under _output/node-conformance/<peapod|containerd|endpoint>/. It holds /tmp/peapod-cluster.lock
# for the whole run (it runs a kubelet) and leaves nothing behind: kubelet, pods, mounts, the
# /kubepods cgroups, bridge, sysctls and iptables chains are removed or restored at exit.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/runtime.sh"
. "$(dirname "${BASH_SOURCE[0]}")/lib/procs.sh"
. "$(dirname "${BASH_SOURCE[0]}")/lib/iptables.sh"
repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$PATH:/usr/local/go/bin

RUN=${NODECONF_RUN:-/run/peapod-nodeconf}
DIR=${NODECONF_DIR:-/var/lib/peapod-nodeconf}
# Results per runtime: _output/node-conformance/peapod, .../containerd or .../endpoint.
case ${ENDPOINT:-} in
"") label=peapod ;;
containerd) label=containerd ;;
*) label=endpoint ;;
esac
OUT=${NODECONF_OUT:-$repo/_output/node-conformance/$label}
PROC_LOGS=$OUT
REGISTRY_ADDR=127.0.0.1:5102
BRIDGE=ppnc0
POD_SUBNET=10.85.0.0/16
NODE_LINK=ppncnode0
NODE_IP=10.84.0.1
NODES=${NODES:-4}
ENDPOINT=${ENDPOINT:-}
FOCUS=${FOCUS:-}
SOCKET=$RUN/peapod.sock
PIDS=$RUN/pids
KUBELET_ROOT=/var/lib/kubelet
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward)

say() { printf 'node-conformance: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}
[ "$(id -u)" = 0 ] || die "needs root (it runs a kubelet and a container runtime)"

# ---- node-wide state the kubelet changes ------------------------------------------------------

save_node_state() {
  local s
  mkdir -p "$RUN/saved"
  for s in "${SYSCTLS[@]}"; do
    sysctl -n "$s" >"$RUN/saved/$s" 2>/dev/null || true
  done
  save_chains "$RUN/saved"
  if [ -d "$KUBELET_ROOT" ]; then
    ls -A "$KUBELET_ROOT" >"$RUN/saved/kubelet-root" || true
  fi
  # The kubelet's pod log directories (its default podLogsDir).
  ls -A /var/log/pods >"$RUN/saved/pod-logs" 2>/dev/null || true
}

restore_node_state() {
  local f s v ipt
  [ -d "$RUN/saved" ] || return 0
  for s in "${SYSCTLS[@]}"; do
    f=$RUN/saved/$s
    [ -s "$f" ] || continue
    v=$(cat "$f")
    [ "$(sysctl -n "$s" 2>/dev/null)" != "$v" ] && sysctl -q -w "$s=$v" >/dev/null 2>&1 || true
  done
  # The kubelet's chains (KUBE-*), when they were not there before.
  for ipt in iptables ip6tables; do
    drop_new_chains "$RUN/saved" "$ipt" '^KUBE-'
  done
  # What the kubelet added under its root directory (all of it when there was none).
  if [ -d "$KUBELET_ROOT" ]; then
    local e
    for e in $(ls -A "$KUBELET_ROOT"); do
      grep -qx -- "$e" "$RUN/saved/kubelet-root" 2>/dev/null || rm -rf "${KUBELET_ROOT:?}/$e"
    done
    [ -f "$RUN/saved/kubelet-root" ] || rmdir "$KUBELET_ROOT" 2>/dev/null || true
  fi
}

# ---- clean-up ---------------------------------------------------------------------------------

cleanup() {
  local k8s=$1 p exe d m h
  # The kubelet the suite started (it stops it itself unless interrupted).
  for d in /proc/[0-9]*; do
    exe=$(readlink "$d/exe" 2>/dev/null) || continue
    [ "$exe" = "$k8s/kubelet" ] || continue
    grep -qa -- "--root-dir.$KUBELET_ROOT" "$d/cmdline" 2>/dev/null || continue
    say "stopping the suite's kubelet ${d#/proc/}"
    kill -TERM "${d#/proc/}" 2>/dev/null || true
  done
  sleep 1
  # Every pod of the runtime (a run against any endpoint leaves the runtime as it found it only
  # for its own pods: the suite's namespaces are gone by now, so every pod left is the suite's).
  if [ -n "${CLEAN_ENDPOINT:-}" ] && [ -x "$RUN/bin/clustertool" ]; then
    "$RUN/bin/clustertool" clean -endpoint "$CLEAN_ENDPOINT" >/dev/null 2>&1 || say "some pods could not be removed through the CRI"
  fi
  stop peapod
  if [ "$ENDPOINT" = containerd ]; then
    CONTAINERD_REGISTRY=$REGISTRY_ADDR "$repo/hack/containerd.sh" stop || true
  fi
  stop registry
  # Last resort: the shims of our peapod (run from its copied binary), what is left in /kubepods.
  for d in /proc/[0-9]*; do
    exe=$(readlink "$d/exe" 2>/dev/null) || continue
    case $exe in "$RUN/bin"/*) say "killing leftover ${exe##*/} ${d#/proc/}"; kill -KILL "${d#/proc/}" 2>/dev/null || true ;; esac
  done
  if [ -d /sys/fs/cgroup/pids/kubepods ]; then
    { find /sys/fs/cgroup/pids/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null || true; } | while read -r p; do
      say "killing leftover process $p in /kubepods"
      kill -KILL "$p" 2>/dev/null || true
    done
    sleep 0.2
  fi
  for m in $(awk -v a="$DIR" -v b="$RUN" -v c="$KUBELET_ROOT" '$5 ~ "^"a"(/|$)" || $5 ~ "^"b"(/|$)" || $5 ~ "^"c"/" {print $5}' /proc/self/mountinfo | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "cannot unmount $m"
  done
  for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$h" ] || continue
    find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [ -d "$h" ] && say "cgroup $h is still there (processes left in it?)"
  done
  for l in "$BRIDGE" "$NODE_LINK"; do
    [ -e "/sys/class/net/$l" ] && { ip link del "$l" 2>/dev/null || say "cannot delete link $l"; }
  done
  restore_node_state
  # The pod log directories of the run's pods (a kubelet stopped before its pods leaves them).
  local e l
  if [ -f "$RUN/saved/pod-logs" ] && [ -d /var/log/pods ]; then
    for e in $(ls -A /var/log/pods); do
      grep -qx -- "$e" "$RUN/saved/pod-logs" || rm -rf "/var/log/pods/${e:?}"
    done
  fi
  for l in /var/log/containers/*.log; do
    [ -L "$l" ] || continue
    case $(readlink "$l") in /var/log/pods/*) [ -e "$(readlink "$l")" ] || rm -f "$l" ;; esac
  done
  rm -rf "$RUN" "$DIR"
}

# ---- run --------------------------------------------------------------------------------------
# One function, called at the end: bash reads it whole before it runs, so an edit of this file
# during a run does not change the run.
main() {

  exec 8>/tmp/peapod-cluster.lock
  say "waiting for /tmp/peapod-cluster.lock"
  flock 8

  # Always: a peapod older than the tree would not know the config written below.
  make -C "$repo" --no-print-directory build >/dev/null
  "$repo/hack/k8s-build.sh" kubelet e2e_node agnhost ginkgo
  k8s=$("$repo/hack/k8s-build.sh" --bindir)
  agnhost_src=$(cd "$repo" && go list -m -f '{{.Dir}}' k8s.io/kubernetes@"$(. "$repo/hack/k8s-versions.env"; echo "$K8S_VERSION")" 2>/dev/null || true)
  [ -n "$agnhost_src" ] || agnhost_src=$(go env GOMODCACHE)/k8s.io/kubernetes@$(. "$repo/hack/k8s-versions.env"; echo "$K8S_VERSION")
  agnhost_src=$agnhost_src/test/images/agnhost

  [ -d "$RUN" ] && cleanup "$k8s"
  for h in /sys/fs/cgroup/*/kubepods; do
    [ -d "$h" ] && die "$h exists: another kubelet runs (or one left its pods); stop it first"
  done
  mkdir -p "$RUN" "$PIDS" "$DIR" "$RUN/bin/cni" "$RUN/path"
  rm -rf "$OUT"
  mkdir -p "$OUT"
  save_node_state
  CLEAN_ENDPOINT=
  trap 'rc=$?; cleanup "$k8s"; exit $rc' EXIT
  trap 'exit 130' INT TERM

  # The daemon, the per-pod monitor and the helpers it runs beside it (peapod-shim-runc for
  # libcontainer, peapod-checkpoint for CRIU): a monitor without its helper creates nothing.
  cp "$repo/bin/peapod" "$repo/bin/peapod-shim" "$repo/bin/peapod-shim-runc" "$repo/bin/peapod-checkpoint" "$RUN/bin/"
  cp "$repo"/bin/cni/* "$RUN/bin/cni/"
  (cd "$repo" && go build -o "$RUN/bin/nodeconformance" ./critest/nodeconformance && go build -o "$RUN/bin/clustertool" ./critest/clustertool)

  say "building the test images and starting the registry on $REGISTRY_ADDR"
  (cd "$repo" && start registry "$RUN/bin/nodeconformance" registry -addr "$REGISTRY_ADDR" -agnhost "$k8s/agnhost" -agnhost-src "$agnhost_src")
  wait_for "the test registry" 300 registry grep -qx ready "$OUT/registry.log"

  # The node's address: on a link of its own, so that no traffic goes to the machine's interfaces.
  ip link add "$NODE_LINK" type bridge
  ip addr add "$NODE_IP/32" dev "$NODE_LINK"
  ip link set "$NODE_LINK" up

  case $ENDPOINT in
  "")
    mkdir -p "$DIR/cni"
    bridge_conflist ppnc "$BRIDGE" "$POD_SUBNET" "$RUN/cni-ipam" >"$DIR/cni/10-ppnc.conflist"
    { peapod_toml "$DIR/peapod" "$RUN/pp" "$SOCKET" "${PEAPOD_LOG_LEVEL:-info}" "$DIR/cni" "$RUN/bin/cni" "$REGISTRY_ADDR"
      cat <<EOF

[runtime]
# The RuntimeClass handler the suite's PodOverhead specs run pods with (containerd's
# runtimes.test-handler in hack/containerd.sh).
handlers = ["test-handler"]
EOF
    } >"$DIR/peapod.toml"
    start peapod "$RUN/bin/peapod" --config "$DIR/peapod.toml"
    wait_for "peapod's socket" 30 peapod test -S "$SOCKET"
    endpoint=unix://$SOCKET
    runtime=peapod
    ;;
  containerd)
    endpoint=$(CONTAINERD_REGISTRY=$REGISTRY_ADDR "$repo/hack/containerd.sh" start)
    runtime=containerd
    # The kubelet's cAdvisor reads containerd's containers (their pod and container names, for
    # /metrics/cadvisor) from containerd's socket, /run/containerd/containerd.sock on a real node.
    kubelet_extra="--containerd=${endpoint#unix://}"
    ;;
  *)
    endpoint=$ENDPOINT
    runtime=$ENDPOINT
    ;;
  esac
  CLEAN_ENDPOINT=$endpoint
  kubelet_extra=${kubelet_extra:-}

  # Every command of the machine but systemd-run (and systemctl), plus a sudo that runs its
  # arguments: the suite runs the kubelet directly and calls sudo for its root commands.
  for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
    [ -d "$d" ] && [ ! -L "$d" ] || continue
    for f in "$d"/*; do
      n=${f##*/}
      case $n in systemd-run | systemctl | sudo) continue ;; esac
      [ -x "$f" ] && [ ! -e "$RUN/path/$n" ] && ln -s "$f" "$RUN/path/$n"
    done
  done
  printf '#!/bin/sh\n# The node e2e suite calls sudo; this run is root already.\nexec "$@"\n' >"$RUN/path/sudo"
  chmod 755 "$RUN/path/sudo"

  cat >"$DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /
podCIDR: "10.100.0.0/24"
volumeStatsAggPeriod: 10s
fileCheckFrequency: 10s
evictionPressureTransitionPeriod: 30s
# This machine's disk and memory are shared with other work: no eviction for their fill level.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
serializeImagePulls: false
failSwapOn: false
failCgroupV1: false
resolvConf: /etc/resolv.conf
EOF

  skip='\[Serial\]|\[Slow\]|\[Flaky\]|\[Disruptive\]|\[Feature:[^]]+\]'
  skip+="|$("$RUN/bin/nodeconformance" skip-regex)"
  # Every selected spec has the NodeConformance label (and [NodeConformance] in its name);
  # FOCUS narrows by name.
  args=(--label-filter=NodeConformance --skip="$skip")
  [ -n "$FOCUS" ] && args+=(--focus="$FOCUS")

  say "running the [NodeConformance] specs against $runtime ($endpoint), $NODES processes; logs in $OUT"
  mkdir -p "$RUN/work"
  set +e
  (
    cd "$RUN/work"
    PATH=$RUN/path "$k8s/ginkgo" --nodes="$NODES" --timeout=4h --no-color --poll-progress-after=10m \
      --output-dir="$OUT" --junit-report=junit.xml "${args[@]}" \
      "$k8s/e2e_node.test" -- \
      --k8s-bin-dir="$k8s" --report-dir="$OUT" --prepull-images=false \
      --container-runtime-endpoint="$endpoint" --image-service-endpoint="$endpoint" \
      --kubelet-config-file="$DIR/kubelet.yaml" \
      --kubelet-flags="--system-cgroups= --kubelet-cgroups= --runtime-cgroups= --node-ip=$NODE_IP $kubelet_extra" \
      --v=2
  ) >"$OUT/e2e.log" 2>&1
  rc=$?
  set -e
  if [ ! -f "$OUT/junit.xml" ]; then
    tail -n 40 "$OUT/e2e.log" >&2
    die "the suite wrote no report (exit $rc; log: $OUT/e2e.log)"
  fi
  "$RUN/bin/nodeconformance" summary -junit "$OUT/junit.xml" | tee "$OUT/summary.txt"
}

main "$@"
