// Package cni connects pods to a network by running CNI plugins through libcni, and is the
// only peapod package that imports libcni.
//
// The network is the first config in the CNI config directory (lexical order, as the kubelet
// and containerd choose), or, when that directory has none, peapod's built-in network: bridge
// peapod0, host-local IPAM on 10.89.0.0/16, masquerade, and portmap for hostPort. The loopback
// plugin brings up lo in every pod either way. libcni's cache (Config.CacheDir) records each
// attachment, so Teardown after a daemon restart has the prevResult and port mappings that DEL
// needs.
package cni
