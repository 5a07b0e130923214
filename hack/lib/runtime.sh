# Sourced by hack/cluster.sh, hack/node-conformance.sh and hack/containerd.sh: what their
# runtimes share.

# bridge_conflist NAME BRIDGE SUBNET IPAM_DIR prints the CNI network those scripts give their
# runtime: a bridge with host-local addresses from SUBNET (leases in IPAM_DIR), a default
# route, and portmap for hostPorts.
bridge_conflist() {
  cat <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$1",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$2",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$3"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$4"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
  ]
}
JSON
}

# peapod_toml ROOT STATE SOCKET LOG_LEVEL CNI_CONF_DIR CNI_BIN_DIR REGISTRY_ADDR prints the
# config of a peapod of those scripts' own: cgroupfs, the CNI network above, and
# registry.k8s.io, docker.io and gcr.io mirrored to the plain-HTTP test registry. What a
# caller adds (more tables) follows it.
peapod_toml() {
  cat <<TOML
root = "$1"
# Short: a pod's sockets go under <state>/pods/<64 hex>/, and a socket path has 107 bytes at most.
state = "$2"
listen = "$3"
log_level = "$4"
cgroup_driver = "cgroupfs"

[network]
conf_dir = "$5"
bin_dirs = ["$6"]

[registries."registry.k8s.io"]
mirrors = ["http://$7"]

[registries."docker.io"]
mirrors = ["http://$7"]

[registries."gcr.io"]
mirrors = ["http://$7"]

[registries."$7"]
insecure = true
TOML
}
