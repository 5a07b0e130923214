#!/usr/bin/env bash
# A one-node Kubernetes on peapod, on this machine, on 127.0.0.1 and a link of its own (make cluster,
# make cluster-down, and the e2e suite's TestMain).
#
#   hack/cluster.sh up      builds what is missing (peapod; the Kubernetes binaries through
#                           hack/k8s-build.sh), then starts the test registry, a peapod daemon
#                           of its own, etcd, kube-apiserver, kube-controller-manager,
#                           kube-scheduler and a kubelet, and waits for the node to be Ready
#   hack/cluster.sh down    stops everything up started (by PID), removes every pod, and
#                           leaves no mount, cgroup, veth, bridge, iptables rule or sysctl
#                           change behind
#   hack/cluster.sh status  prints what runs
#   hack/cluster.sh restart-kubelet
#                           restarts the kubelet; its configuration gets the lines of
#                           $PEAPOD_CLUSTER_KUBELET_EXTRA (KubeletConfiguration YAML) appended
#
# The cluster never shares anything with the test suites' daemons: its peapod has its own
# root, state and socket, and its own CNI network (bridge peapodk8s0, 10.88.0.0/16, leases
# under its state); the kubelet's pods live under the /kubepods cgroup tree, peapod's own QoS
# tiers under /peapod. Certificates are generated at each `up` (openssl), and `down` removes
# them with the rest: the admin kubeconfig is $CLUSTER_DIR/admin.kubeconfig while it runs.
# Logs stay in $CLUSTER_LOGS after `down`.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/runtime.sh"
. "$(dirname "${BASH_SOURCE[0]}")/lib/procs.sh"
. "$(dirname "${BASH_SOURCE[0]}")/lib/iptables.sh"
repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$PATH:/usr/local/go/bin

CLUSTER_DIR=${PEAPOD_CLUSTER_DIR:-/var/lib/peapod-cluster}
CLUSTER_RUN=${PEAPOD_CLUSTER_RUN:-/run/peapod-cluster}
CLUSTER_LOGS=${PEAPOD_CLUSTER_LOGS:-/var/log/peapod-cluster}
PROC_LOGS=$CLUSTER_LOGS

# Ports, all on 127.0.0.1, away from the defaults so that a kubelet or etcd someone else
# runs on this machine does not collide with the cluster's.
REGISTRY_ADDR=127.0.0.1:5101
ETCD_PORT=23790
ETCD_PEER_PORT=23800
APISERVER_PORT=16443
CM_PORT=10357
SCHEDULER_PORT=10359
KUBELET_PORT=10350
KUBELET_HEALTHZ_PORT=10348
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1
POD_SUBNET=10.88.0.0/16
BRIDGE=peapodk8s0

PKI=$CLUSTER_DIR/pki
MANIFESTS=$CLUSTER_DIR/manifests
KUBELET_DIR=$CLUSTER_DIR/kubelet
POD_LOGS=$CLUSTER_DIR/pod-logs
PIDS=$CLUSTER_RUN/pids
SOCKET=$CLUSTER_RUN/peapod.sock
ADMIN=$CLUSTER_DIR/admin.kubeconfig
NODE=$(hostname | tr '[:upper:]' '[:lower:]')
# The node's address: the kubelet serves on it (not on 127.0.0.1, because the apiserver's node
# proxy, behind /api/v1/nodes/<node>/proxy/stats/summary, refuses loopback addresses) and
# reports it as the node's InternalIP. It is an address of the cluster's own, on a link up
# makes and down removes, so that no traffic of the cluster goes to an address of the
# machine's real interfaces. The link is an empty bridge: kernels without the dummy driver
# (this VM's among them) all have bridges, which CNI needs anyway.
NODE_LINK=ppk8snode0
NODE_IP=10.87.0.1
node_ip() {
  if [ ! -e "/sys/class/net/$NODE_LINK" ]; then
    ip link add "$NODE_LINK" type bridge || die "cannot create the node's link $NODE_LINK"
  fi
  ip addr replace "$NODE_IP/32" dev "$NODE_LINK"
  ip link set "$NODE_LINK" up
  echo "$NODE_IP"
}

# The node-wide settings a kubelet changes (its kernel tunables) and the one the bridge plugin
# may change: noted at up, restored at down.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward)
# Components in start order; down stops them in reverse.
COMPONENTS=(registry peapod etcd kube-apiserver kube-controller-manager kube-scheduler kubelet)

say() { printf 'cluster: %s\n' "$*"; }
die() {
  printf 'cluster: %s\n' "$*" >&2
  exit 1
}


# ---- certificates -------------------------------------------------------------------------

# cert NAME CA SUBJECT USAGE [SANS]: a P-256 key and a certificate signed by CA.
cert() {
  local name=$1 ca=$2 subj=$3 usage=$4 sans=${5:-}
  local ext=$PKI/$name.ext
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } >"$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" \
    -CAcreateserial -days 365 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

ca() {
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$PKI/$1.key" -subj "/CN=$2" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/$1.crt" 2>/dev/null
}

gen_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  ca ca "peapod-cluster-ca"
  ca front-proxy-ca "peapod-cluster-front-proxy-ca"
  local ips
  ips=IP:$(node_ip)
  cert apiserver ca "/CN=kube-apiserver" serverAuth \
    "DNS:localhost,DNS:$NODE,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$SERVICE_IP${ips:+,$ips}"
  cert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
  cert admin ca "/O=system:masters/CN=kubernetes-admin" clientAuth
  cert controller-manager ca "/CN=system:kube-controller-manager" clientAuth
  cert scheduler ca "/CN=system:kube-scheduler" clientAuth
  cert kubelet-client ca "/O=system:nodes/CN=system:node:$NODE" clientAuth
  cert kubelet-serving ca "/CN=$NODE" serverAuth "DNS:$NODE,DNS:localhost,IP:127.0.0.1${ips:+,$ips}"
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

# kubeconfig FILE USER CERT: a kubeconfig with the CA and the client certificate embedded.
kubeconfig() {
  local file=$1 user=$2 cert=$3
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: peapod
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$cert.crt")
    client-key-data: $(base64 -w0 <"$PKI/$cert.key")
contexts:
- name: $user@peapod
  context:
    cluster: peapod
    user: $user
current-context: $user@peapod
EOF
  chmod 600 "$file"
}

# ---- node-wide state ----------------------------------------------------------------------

save_node_state() {
  local s
  mkdir -p "$CLUSTER_RUN/saved"
  # The kubelet's device manager makes /var/lib/kubelet/device-plugins/kubelet.sock whatever
  # its --root-dir.
  [ -e /var/lib/kubelet ] || touch "$CLUSTER_RUN/saved/no-var-lib-kubelet"
  for s in "${SYSCTLS[@]}"; do
    sysctl -n "$s" >"$CLUSTER_RUN/saved/$s" 2>/dev/null || true
  done
  save_chains "$CLUSTER_RUN/saved"
}

restore_node_state() {
  local s v f
  if [ -e "$CLUSTER_RUN/saved/no-var-lib-kubelet" ]; then
    rm -f /var/lib/kubelet/device-plugins/kubelet.sock
    rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet 2>/dev/null || true
  fi
  for f in "$CLUSTER_RUN"/saved/*.*; do
    [ -e "$f" ] || continue
    s=${f##*/}
    case $s in *.chains | no-*) continue ;; esac
    v=$(cat "$f")
    [ -n "$v" ] && [ "$(sysctl -n "$s" 2>/dev/null)" != "$v" ] && sysctl -q -w "$s=$v" >/dev/null 2>&1 || true
  done
  # The chains the kubelet made (KUBE-*; it never removes them) and the portmap plugin's,
  # when they were not there before up and nothing jumps to them any more but their own.
  # The portmap chains are the node's, shared by every portmap user (the test suites'
  # daemons too): they go only while no hostPort of anyone has a rule in them.
  local ipt ours
  for ipt in iptables ip6tables; do
    ours='^(KUBE-|CNI-HOSTPORT-)'
    if [ "$("$ipt" -t nat -S CNI-HOSTPORT-DNAT 2>/dev/null | wc -l)" -gt 1 ]; then
      ours='^KUBE-'
    fi
    drop_new_chains "$CLUSTER_RUN/saved" "$ipt" "$ours"
  done
}

# ---- up -----------------------------------------------------------------------------------

build() {
  if [ ! -x "$repo/bin/peapod" ] || [ ! -x "$repo/bin/peapod-shim" ] || [ ! -x "$repo/bin/peapod-shim-runc" ] || [ ! -x "$repo/bin/peapod-checkpoint" ] || [ ! -x "$repo/bin/cni/bridge" ]; then
    say "building peapod (make build)"
    make -C "$repo" --no-print-directory build >/dev/null
  fi
  "$repo/hack/k8s-build.sh"
}

up() {
  if alive kubelet || alive kube-apiserver || alive peapod; then
    die "a cluster runs already (hack/cluster.sh status; hack/cluster.sh down to stop it)"
  fi
  local t0=$SECONDS
  # A failed up takes down what it started (the logs stay).
  trap 'rc=$?; if [ $rc -ne 0 ]; then say "up failed: taking down what started (logs: $CLUSTER_LOGS)"; down quiet; fi' EXIT
  build
  local k8s
  k8s=$("$repo/hack/k8s-build.sh" --bindir)
  # Leftovers of a cluster that was not brought down cleanly.
  [ -d "$CLUSTER_RUN" ] && down quiet
  mkdir -p "$CLUSTER_DIR" "$CLUSTER_RUN" "$PIDS" "$CLUSTER_LOGS" "$MANIFESTS" "$KUBELET_DIR" "$POD_LOGS"
  rm -f "$CLUSTER_LOGS"/kubelet.log.* # the previous cluster's restarted kubelets
  save_node_state

  # Binaries copied, so a `make build` while the cluster runs does not change its peapod.
  local bin=$CLUSTER_RUN/bin
  mkdir -p "$bin/cni"
  cp "$repo/bin/peapod" "$repo/bin/peapod-shim" "$repo/bin/peapod-shim-runc" "$repo/bin/peapod-checkpoint" "$bin/"
  cp "$repo"/bin/cni/* "$bin/cni/"
  say "building the test registry"
  (cd "$repo" && go build -o "$bin/clustertool" ./critest/clustertool)

  gen_pki
  kubeconfig "$ADMIN" kubernetes-admin admin
  kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
  kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" system:kube-scheduler scheduler
  kubeconfig "$CLUSTER_DIR/kubelet.kubeconfig" "system:node:$NODE" kubelet-client

  # The test registry, serving the busybox test images under their well-known names.
  start registry "$bin/clustertool" registry -addr "$REGISTRY_ADDR"
  wait_for "the test registry" 120 registry grep -qx ready "$CLUSTER_LOGS/registry.log"

  # peapod, with its own root, state, socket and network.
  mkdir -p "$CLUSTER_DIR/cni"
  bridge_conflist peapodk8s "$BRIDGE" "$POD_SUBNET" "$CLUSTER_RUN/cni-ipam" >"$CLUSTER_DIR/cni/10-peapodk8s.conflist"
  peapod_toml "$CLUSTER_DIR/peapod" "$CLUSTER_RUN/pp" "$SOCKET" "${PEAPOD_CLUSTER_LOG_LEVEL:-info}" \
    "$CLUSTER_DIR/cni" "$bin/cni" "$REGISTRY_ADDR" >"$CLUSTER_DIR/peapod.toml"
  start peapod "$bin/peapod" --config "$CLUSTER_DIR/peapod.toml"
  wait_for "peapod's socket" 30 peapod test -S "$SOCKET"

  # A throwaway etcd: no fsync (a cluster for tests and trials, brought up afresh each time).
  start etcd "$k8s/etcd" --name peapod --data-dir "$CLUSTER_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "peapod=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn
  wait_for "etcd" 60 etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"

  start kube-apiserver "$k8s/kube-apiserver" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --service-cluster-ip-range="$SERVICE_CIDR" --endpoint-reconciler-type=none \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true \
    --client-ca-file="$PKI/ca.crt" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --profiling=false
  wait_for "kube-apiserver" 120 kube-apiserver "$k8s/kubectl" --kubeconfig "$ADMIN" get --raw /readyz

  start kube-controller-manager "$k8s/kube-controller-manager" \
    --bind-address=127.0.0.1 --secure-port="$CM_PORT" --leader-elect=false \
    --kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
    --client-ca-file="$PKI/ca.crt" --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
    --root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --use-service-account-credentials=true --service-cluster-ip-range="$SERVICE_CIDR" \
    --controllers='*,-nodeipam' --profiling=false
  start kube-scheduler "$k8s/kube-scheduler" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --leader-elect=false \
    --kubeconfig="$CLUSTER_DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig="$CLUSTER_DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig="$CLUSTER_DIR/scheduler.kubeconfig" \
    --profiling=false

  local nodeip
  nodeip=$(node_ip)
  echo "$nodeip" >"$CLUSTER_RUN/node-ip"
  cat >"$CLUSTER_DIR/kubelet-base.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $nodeip
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$SOCKET
imageServiceEndpoint: unix://$SOCKET
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
staticPodPath: $MANIFESTS
fileCheckFrequency: 5s
podLogsDir: $POD_LOGS
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
# This machine's disk is shared with other work: no eviction for its fill level.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
EOF
  start_kubelet "$k8s"
  wait_for "the default service account" 60 kube-controller-manager "$k8s/kubectl" --kubeconfig "$ADMIN" get serviceaccount default
  trap - EXIT
  say "up in $((SECONDS - t0))s: node $NODE Ready on peapod ($SOCKET)"
  cat <<EOF

  export KUBECONFIG=$ADMIN
  export PATH=$k8s:\$PATH
  kubectl get nodes -o wide
  kubectl run hello --image=registry.k8s.io/e2e-test-images/busybox:1.29-2 -- sh -c 'echo hello; sleep 3600'

  Images under registry.k8s.io, docker.io and gcr.io are pulled from the test registry on
  $REGISTRY_ADDR (busybox-based test images only: there is no internet here).
  Static pods: $MANIFESTS. Logs: $CLUSTER_LOGS. Stop everything: make cluster-down.
EOF
}

# start_kubelet BINDIR: the kubelet, on kubelet-base.yaml plus $PEAPOD_CLUSTER_KUBELET_EXTRA;
# waits until it is healthy and the node Ready.
start_kubelet() {
  local k8s=$1
  local extra=${PEAPOD_CLUSTER_KUBELET_EXTRA:-} keys
  # A top-level key of the extra lines replaces the base's (YAML keys must be unique).
  keys=$(printf '%s\n' "$extra" | sed -n 's/^\([A-Za-z]*\):.*/\1/p' | paste -sd' ' -)
  {
    awk -v keys=" $keys " '/^[^ #]/ { k = $0; sub(/:.*/, "", k); skip = index(keys, " " k " ") > 0 } !skip' "$CLUSTER_DIR/kubelet-base.yaml"
    printf '%s\n' "$extra"
  } >"$CLUSTER_DIR/kubelet.yaml"
  start kubelet "$k8s/kubelet" --config="$CLUSTER_DIR/kubelet.yaml" \
    --kubeconfig="$CLUSTER_DIR/kubelet.kubeconfig" --root-dir="$KUBELET_DIR" \
    --cert-dir="$KUBELET_DIR/pki" --hostname-override="$NODE" --node-ip="$(cat "$CLUSTER_RUN/node-ip")"
  wait_for "the kubelet" 120 kubelet curl -sf "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
  wait_for "node $NODE to be Ready" 120 kubelet "$k8s/kubectl" --kubeconfig "$ADMIN" wait --for=condition=Ready "node/$NODE" --timeout=2s
}

restart_kubelet() {
  alive kubelet || die "no kubelet runs (hack/cluster.sh up)"
  stop kubelet
  mv "$CLUSTER_LOGS/kubelet.log" "$CLUSTER_LOGS/kubelet.log.$(date +%s)" 2>/dev/null || true
  start_kubelet "$("$repo/hack/k8s-build.sh" --bindir)"
}

# ---- down ---------------------------------------------------------------------------------

down() {
  local quiet=${1:-}
  local bin=$CLUSTER_RUN/bin
  # The kubelet first, so that nothing restarts what is removed next.
  stop kubelet
  if alive peapod && [ -x "$bin/clustertool" ]; then
    "$bin/clustertool" clean -endpoint "unix://$SOCKET" || say "some pods could not be removed through the CRI"
  fi
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    stop "${COMPONENTS[i]}"
  done
  # Last resort, when a pod could not be removed: the shims of the cluster's peapod (run from
  # its copied binary) and whatever is left in the kubelet's pod cgroups.
  local exe p
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    case $exe in "$bin"/*) say "killing leftover ${exe##*/} ${p#/proc/}"; kill -KILL "${p#/proc/}" 2>/dev/null || true ;; esac
  done
  if [ -d /sys/fs/cgroup/pids/kubepods ]; then
    { find /sys/fs/cgroup/pids/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null || true; } | while read -r p; do
      say "killing leftover process $p in /kubepods"
      kill -KILL "$p" 2>/dev/null || true
    done
    sleep 0.2
  fi
  # Whatever is still mounted under the cluster's directories (the kubelet's volume tmpfs
  # mounts, a pod peapod could not remove), deepest first.
  local m
  for m in $(awk -v a="$CLUSTER_DIR" -v b="$CLUSTER_RUN" '$5 ~ "^"a"(/|$)" || $5 ~ "^"b"(/|$)" {print $5}' /proc/self/mountinfo | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "cannot unmount $m"
  done
  # The kubelet's pod cgroups (each hierarchy), deepest first.
  local h
  for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [ -d "$h" ] && say "cgroup $h is still there (processes left in it?)"
  done
  # The network: the bridge (its veths went with the pods' namespaces).
  if [ -e "/sys/class/net/$BRIDGE" ]; then
    ip link del "$BRIDGE" 2>/dev/null || say "cannot delete bridge $BRIDGE"
  fi
  if [ -e "/sys/class/net/$NODE_LINK" ]; then
    ip link del "$NODE_LINK" 2>/dev/null || say "cannot delete the node's link $NODE_LINK"
  fi
  restore_node_state
  # The kubelet's links to container logs, into the cluster's pod log dir.
  local l
  for l in /var/log/containers/*.log; do
    [ -L "$l" ] || continue
    case $(readlink "$l") in "$POD_LOGS"/*) rm -f "$l" ;; esac
  done
  rmdir /var/log/containers 2>/dev/null || true
  rm -rf "$CLUSTER_RUN" "$CLUSTER_DIR"
  [ -n "$quiet" ] || say "down: nothing of the cluster runs"
}

status() {
  local c
  for c in "${COMPONENTS[@]}"; do
    if alive "$c"; then echo "$c: running (pid $(pid_of "$c"))"; else echo "$c: not running"; fi
  done
  [ -f "$ADMIN" ] && echo "KUBECONFIG=$ADMIN"
  return 0
}

[ "$(id -u)" = 0 ] || die "needs root (it runs a kubelet and a container runtime)"
case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
restart-kubelet) restart_kubelet ;;
*) die "usage: $0 up|down|status|restart-kubelet" ;;
esac
