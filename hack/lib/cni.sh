# Sourced by hack/cluster.sh, hack/node-conformance.sh and hack/containerd.sh.

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
