// Package cgroups places pods in cgroups and turns CRI resources into OCI resources.
//
// It has four parts:
//
//   - Resources mirrors CRI's LinuxContainerResources (plus a configured pids limit) without
//     importing cri-api, validates it and converts it to and from specs.LinuxResources.
//   - QoSClass and PodQoSClass derive a pod's Kubernetes QoS class from what CRI carries.
//   - PodCgroupParent, ContainerCgroupsPath and ContainerCgroupPath name cgroups: the
//     caller's CgroupParent when a kubelet gives one, else peapod's own QoS tiers
//     (/peapod, /peapod/burstable, /peapod/besteffort), for the cgroupfs and systemd drivers.
//   - Manager creates, updates, reads and removes pod cgroups through
//     github.com/opencontainers/cgroups (fs for v1, fs2 for v2, systemd for both).
//
// Container cgroups are created by libcontainer from the OCI spec's linux.cgroupsPath;
// this package only names them (ContainerCgroupsPath) and can update or read them.
//
// This package is the only importer of github.com/opencontainers/cgroups.
package cgroups
