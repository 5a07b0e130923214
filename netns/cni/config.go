package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
)

// Defaults of the built-in network, used when ConfDir holds no CNI config.
const (
	DefaultNetworkName = "peapod"
	DefaultBridge      = "peapod0"
	DefaultSubnet      = "10.89.0.0/16"
	// DefaultIPAMDataDir is where the built-in network's host-local IPAM keeps its leases.
	// It is one node-wide place, not under a daemon's own state, because the bridge and the
	// subnet are node-wide too: two peapods on one node (a test daemon beside the real one)
	// must draw addresses from the same pool. It is volatile, like the pods themselves.
	DefaultIPAMDataDir = "/run/peapod/cni/networks"
)

// The version of the CNI spec the built-in configs speak; the plugins built by
// hack/build-cni.sh support it.
const builtinCNIVersion = "1.0.0"

// loopbackNetwork names the separate one-plugin network that brings up lo in every pod,
// whichever network the config directory describes (as containerd does).
const loopbackNetwork = "cni-loopback"

// Config says where CNI configs, plugins and state live.
type Config struct {
	// ConfDir holds the network configs (*.conflist, *.conf, *.json); the first in lexical
	// order that parses is used. Empty or missing means the built-in network.
	ConfDir string
	// BinDirs are searched in order for plugin binaries.
	BinDirs []string
	// CacheDir keeps libcni's record of each attachment (its config, arguments and result),
	// so a DEL after a daemon restart still gets the prevResult and port mappings. It should
	// be volatile like the namespaces (e.g. /run/peapod/cni): after a reboot the pods, their
	// IPs and their iptables rules are gone too.
	CacheDir string

	// SkipLoopback leaves lo to the caller (netns.NewPinned brings it up): no loopback plugin
	// runs on Setup or Teardown.
	SkipLoopback bool

	// The built-in network. Empty fields take the Default* values; tests set their own
	// so they never collide with a running peapod.
	NetworkName string
	Bridge      string
	Subnet      string
	// IPAMDataDir is where the built-in network's host-local IPAM records leases. Empty means
	// DefaultIPAMDataDir. Tests with their own bridge and subnet use their own.
	IPAMDataDir string
}

func (c Config) withDefaults() Config {
	if c.NetworkName == "" {
		c.NetworkName = DefaultNetworkName
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if c.Subnet == "" {
		c.Subnet = DefaultSubnet
	}
	if c.IPAMDataDir == "" {
		c.IPAMDataDir = DefaultIPAMDataDir
	}
	return c
}

// builtinList is the network peapod uses when ConfDir has no config: one bridge with
// host-local IPAM, masquerade for traffic leaving the node, and portmap for hostPort (its snat
// masquerades connections from the node's own 127.0.0.1, which hostPort on localhost needs).
// Without portmap it is the list for a pod with no hostPort.
func builtinList(c Config, portmap bool) (*libcni.NetworkConfigList, error) {
	ipam := map[string]any{
		"type":   "host-local",
		"ranges": [][]map[string]string{{{"subnet": c.Subnet}}},
		"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
	}
	ipam["dataDir"] = c.IPAMDataDir
	plugins := []map[string]any{{
		"type":        "bridge",
		"bridge":      c.Bridge,
		"isGateway":   true,
		"ipMasq":      false, // one subnet rule instead: see masq_linux.go
		"hairpinMode": true,
		"ipam":        ipam,
	}}
	if portmap {
		plugins = append(plugins, map[string]any{
			"type":         "portmap",
			"capabilities": map[string]bool{"portMappings": true},
			"snat":         true,
		})
	}
	b, err := json.Marshal(map[string]any{
		"cniVersion": builtinCNIVersion,
		"name":       c.NetworkName,
		"plugins":    plugins,
	})
	if err != nil {
		return nil, err
	}
	list, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("built-in cni network: %w", err)
	}
	return list, nil
}

func loopbackConfList() (*libcni.NetworkConfigList, error) {
	b, err := json.Marshal(map[string]any{
		"cniVersion": builtinCNIVersion,
		"name":       loopbackNetwork,
		"plugins":    []map[string]string{{"type": "loopback"}},
	})
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(b)
}

// network is one loaded network config.
type network struct {
	list   *libcni.NetworkConfigList
	source string // the file it came from, or "built-in"
	// noHostPorts is, for the built-in network only, list without portmap: for a pod with no
	// hostPort, portmap has nothing to do. libcni caches the list a pod was set up with and
	// its DEL replays that, so such a pod runs no portmap on stop either (nor its iptables).
	noHostPorts *libcni.NetworkConfigList
}

// builtin says whether this is peapod's built-in network.
func (nw *network) builtin() bool { return nw.noHostPorts != nil }

// loadNetwork returns the network to use: the first config in dir (lexical order) that parses
// and has plugins, or the built-in one when dir has no config file at all. Config files that
// are all broken are ErrFailedPrecondition: silently using another network than the one the
// administrator wrote would be worse than not being ready.
func loadNetwork(c Config) (*network, error) {
	var files []string
	if c.ConfDir != "" {
		var err error
		files, err = libcni.ConfFiles(c.ConfDir, []string{".conf", ".conflist", ".json"})
		if err != nil {
			return nil, fmt.Errorf("read cni config dir %s: %w", c.ConfDir, err)
		}
		slices.Sort(files)
	}
	if len(files) == 0 {
		list, err := builtinList(c, true)
		if err != nil {
			return nil, err
		}
		noHostPorts, err := builtinList(c, false)
		if err != nil {
			return nil, err
		}
		return &network{list: list, source: "built-in", noHostPorts: noHostPorts}, nil
	}
	var errs []error
	for _, f := range files {
		list, err := loadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return &network{list: list, source: f}, nil
	}
	return nil, fmt.Errorf("no usable cni network config in %s: %w: %w", c.ConfDir, errors.Join(errs...), errdefs.ErrFailedPrecondition)
}

func loadFile(f string) (*libcni.NetworkConfigList, error) {
	var list *libcni.NetworkConfigList
	if strings.HasSuffix(f, ".conflist") {
		var err error
		if list, err = libcni.NetworkConfFromFile(f); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	} else {
		// A .conf (or .json) holds a single plugin.
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var probe struct {
			Plugins json.RawMessage `json:"plugins"`
		}
		// A .conf that holds a list anyway is read as one, as the kubelet's loader did.
		if err := json.Unmarshal(b, &probe); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if probe.Plugins == nil {
			// Wrap the plugin in a list of one, as libcni's deprecated ConfListFromConf does.
			var one struct {
				Name       string `json:"name"`
				CNIVersion string `json:"cniVersion"`
			}
			if err := json.Unmarshal(b, &one); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			b, err = json.Marshal(map[string]any{"name": one.Name, "cniVersion": one.CNIVersion, "plugins": []json.RawMessage{b}})
			if err != nil {
				return nil, err
			}
		}
		list, err = libcni.NetworkConfFromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	if len(list.Plugins) == 0 {
		return nil, fmt.Errorf("%s: network %q has no plugins", f, list.Name)
	}
	return list, nil
}
