#!/usr/bin/env bash
# Debian's containerd (and runc) beside peapod, for side-by-side comparisons (make
# node-conformance ENDPOINT=..., critest -endpoint, benchmarks). Nothing of it is shared with
# the machine's own containerd, if any: its own root, state, socket, CNI network and config.
#
#   hack/containerd.sh start      installs containerd and runc through apt when missing, writes
#                                 its config and starts it; prints the endpoint when ready
#   hack/containerd.sh stop       removes every pod through the CRI, stops containerd by its PID
#                                 and its shims, and removes its mounts, bridge and directories,
#                                 and the /k8s.io cgroup when it made it
#   hack/containerd.sh endpoint   prints the CRI endpoint (unix:///...)
#   hack/containerd.sh status     says whether it runs
#
# Environment (the same values for start and stop):
#   CONTAINERD_DIR       root and config (default /var/lib/peapod-containerd)
#   CONTAINERD_RUN       state, socket, PID file, log (default /run/peapod-containerd)
#   CONTAINERD_REGISTRY  host:port of a plain-HTTP registry that registry.k8s.io, docker.io
#                        and gcr.io are mirrored to (default 127.0.0.1:5101, the test
#                        registry of make cluster and make node-conformance)
#   CONTAINERD_BRIDGE    the CNI bridge (default ppctrd0), CONTAINERD_SUBNET its pod subnet
#                        (default 10.86.0.0/16)
#   CONTAINERD_SANDBOX_IMAGE  the pause image (default registry.k8s.io/pause:3.10.2, which
#                        the node-conformance registry serves)
# Runtime handlers: runc (the default) and test-handler (runc too: the RuntimeClass handler
# Kubernetes' node e2e suite uses).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/runtime.sh"
repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$PATH:/usr/local/go/bin

DIR=${CONTAINERD_DIR:-/var/lib/peapod-containerd}
RUN=${CONTAINERD_RUN:-/run/peapod-containerd}
REGISTRY=${CONTAINERD_REGISTRY:-127.0.0.1:5101}
BRIDGE=${CONTAINERD_BRIDGE:-ppctrd0}
SUBNET=${CONTAINERD_SUBNET:-10.86.0.0/16}
SANDBOX_IMAGE=${CONTAINERD_SANDBOX_IMAGE:-registry.k8s.io/pause:3.10.2}
SOCKET=$RUN/containerd.sock
PIDFILE=$RUN/containerd.pid
LOG=$RUN/containerd.log

say() { printf 'containerd.sh: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

running() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}
pid() { cat "$PIDFILE" 2>/dev/null || true; }
alive() {
  local p
  p=$(pid)
  [ -n "$p" ] && running "$p"
}

install() {
  if command -v containerd >/dev/null && command -v runc >/dev/null && command -v containerd-shim-runc-v2 >/dev/null; then
    return 0
  fi
  say "installing Debian's containerd and runc"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends containerd runc >/dev/null
}

start() {
  if alive; then
    echo "unix://$SOCKET"
    return 0
  fi
  install
  [ -x "$repo/bin/cni/bridge" ] || "$repo/hack/build-cni.sh" "$repo/bin/cni"
  mkdir -p "$DIR" "$RUN/bin/cni" "$DIR/cni"
  # Copies: a rebuild while containerd runs does not change its plugins.
  cp "$repo"/bin/cni/* "$RUN/bin/cni/"
  (cd "$repo" && go build -o "$RUN/bin/clustertool" ./critest/clustertool)
  bridge_conflist ppctrd "$BRIDGE" "$SUBNET" "$RUN/cni-ipam" >"$DIR/cni/10-ppctrd.conflist"
  local mirrors="" host restrict=false
  # CAP_SYS_RESOURCE is bit 24 of the effective set.
  if (((0x$(awk '/^CapEff:/{print $2}' /proc/self/status) >> 24) & 1)) ; then restrict=false; else restrict=true; fi
  for host in registry.k8s.io docker.io gcr.io; do
    mirrors+="
[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"$host\"]
  endpoint = [\"http://$REGISTRY\"]"
  done
  cat >"$DIR/config.toml" <<EOF
version = 2
root = "$DIR/root"
state = "$RUN/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$SOCKET"
[ttrpc]
  address = "$RUN/containerd.sock.ttrpc"
[debug]
  address = "$RUN/debug.sock"
  level = "info"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$DIR/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$SANDBOX_IMAGE"
  # What peapod's clamp_oom_score_adj does: without CAP_SYS_RESOURCE (this VM's root lacks
  # it) an oom_score_adj below the daemon's own cannot be written, and runc fails every
  # sandbox with "can't get final child's PID from pipe".
  restrict_oom_score_adj = $restrict
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.test-handler]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "$RUN/bin/cni"
  conf_dir = "$DIR/cni"
$mirrors
EOF
  # Pods without a cgroup parent go under containerd's own /k8s.io cgroup; stop removes it
  # only when this containerd made it (a machine's own containerd may use it too).
  [ -d /sys/fs/cgroup/memory/k8s.io ] || [ -d /sys/fs/cgroup/k8s.io ] || touch "$RUN/k8s.io-cgroup-ours"
  setsid containerd --config "$DIR/config.toml" </dev/null >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + 60))
  until "$RUN/bin/clustertool" images -endpoint "unix://$SOCKET" >/dev/null 2>&1; do
    if ! alive; then
      tail -n 30 "$LOG" >&2 || true
      die "containerd exited (log: $LOG)"
    fi
    ((SECONDS < deadline)) || die "containerd did not answer on $SOCKET in 60s (log: $LOG)"
    sleep 0.2
  done
  echo "unix://$SOCKET"
}

stop() {
  local p i
  p=$(pid)
  if [ -n "$p" ] && running "$p"; then
    if [ -x "$RUN/bin/clustertool" ]; then
      "$RUN/bin/clustertool" clean -endpoint "unix://$SOCKET" >/dev/null || say "some pods could not be removed through the CRI"
    fi
    kill -TERM "$p" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      running "$p" || break
      sleep 0.1
    done
    running "$p" && kill -KILL "$p" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  # Shims left (a pod the CRI could not remove): those started for this containerd's socket.
  local d cmd
  for d in /proc/[0-9]*; do
    { cmd=$(tr '\0' ' ' <"$d/cmdline"); } 2>/dev/null || continue
    case $cmd in *containerd-shim*"-address $SOCKET "*)
      say "killing leftover shim ${d#/proc/}"
      kill -KILL "${d#/proc/}" 2>/dev/null || true
      ;;
    esac
  done
  sleep 0.2
  local m
  for m in $(awk -v a="$DIR" -v b="$RUN" '$5 ~ "^"a"(/|$)" || $5 ~ "^"b"(/|$)" {print $5}' /proc/self/mountinfo | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "cannot unmount $m"
  done
  if [ -e "/sys/class/net/$BRIDGE" ]; then
    ip link del "$BRIDGE" 2>/dev/null || say "cannot delete bridge $BRIDGE"
  fi
  if [ -e "$RUN/k8s.io-cgroup-ours" ]; then
    local c
    for c in /sys/fs/cgroup/k8s.io /sys/fs/cgroup/*/k8s.io; do
      [ -d "$c" ] || continue
      rmdir "$c" 2>/dev/null || say "cannot remove cgroup $c (pods still in it?)"
    done
  fi
  rm -rf "$RUN" "$DIR"
}

[ "$(id -u)" = 0 ] || die "needs root"
case ${1:-} in
start) start ;;
stop) stop ;;
endpoint) echo "unix://$SOCKET" ;;
status) if alive; then echo "containerd: running (pid $(pid), unix://$SOCKET)"; else echo "containerd: not running"; fi ;;
*) die "usage: $0 start|stop|endpoint|status" ;;
esac
