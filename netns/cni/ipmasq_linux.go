package cni

import (
	"encoding/json"
	"fmt"
	"net"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ip"
)

// releaseIPMasq removes the masquerade rule the bridge plugin added for the pod. The bridge
// plugin's DEL finds the pod's addresses on its interface and so skips this when the netns is
// already gone; prev, the cached ADD result, still has them. It uses the plugin's own code, so
// rule and chain names match whatever this plugin version created.
func releaseIPMasq(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf, prev types.Result) error {
	masq := false
	for _, p := range list.Plugins {
		var c struct {
			IPMasq bool `json:"ipMasq"`
		}
		if p.Network.Type == "bridge" && json.Unmarshal(p.Bytes, &c) == nil && c.IPMasq {
			masq = true
		}
	}
	if !masq {
		return nil
	}
	res, err := current.NewResultFromResult(prev)
	if err != nil {
		return fmt.Errorf("convert cached result: %w", err)
	}
	var nets []*net.IPNet
	for _, ipc := range res.IPs {
		n := ipc.Address
		nets = append(nets, &n)
	}
	if len(nets) == 0 {
		return nil
	}
	return ip.TeardownIPMasqForNetworks(nets, list.Name, rt.IfName, rt.ContainerID)
}
