// Package config is peapod's configuration: the TOML file's schema with its fixed key names
// and the comment of every key (the `comment` tags, which `peapod config default` prints),
// the defaults that work with no file at all, and validation that reports every problem with
// its key and line.
package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"go.uber.org/zap/zapcore"
)

// Defaults from DESIGN.md §4.
const (
	DefaultRoot        = "/var/lib/peapod"
	DefaultState       = "/run/peapod"
	DefaultListen      = "/run/peapod/peapod.sock"
	DefaultLogLevel    = "info"
	DefaultCNIConfDir  = "/etc/cni/net.d"
	DefaultCNIBinDir   = "/opt/cni/bin"
	DefaultStreamAddr  = "127.0.0.1:0"
	DriverCgroupfs     = "cgroupfs"
	DriverSystemd      = "systemd"
	DefaultPauseImage  = "registry.k8s.io/pause:3.10"
	DefaultRuntimeName = "peapod"
	// DefaultShimTimeoutSeconds is runtime.shim_timeout_seconds when the file says nothing.
	DefaultShimTimeoutSeconds = 5
)

// MaxSocketPath is the longest unix socket path the kernel accepts: sun_path holds 108
// bytes, the last one a NUL.
const MaxSocketPath = 107

// Config is the whole daemon configuration. Key names are fixed: operators and scripts rely
// on them. Every key carries a `comment` tag: `peapod config default` prints it above the
// key (a test checks that none is missing).
type Config struct {
	Root         string              `toml:"root" json:"root" comment:"Persistent state: metadata (bbolt), images, containers' writable layers. An absolute path."`
	State        string              `toml:"state" json:"state" comment:"Volatile state: pinned namespaces, pod shims and their sockets. An absolute path short enough for the pod sockets below it (state/pods/<64-hex id>/stream.sock) to stay within the kernel's 107 bytes."`
	Listen       string              `toml:"listen" json:"listen" comment:"The CRI socket (mode 0660) a kubelet, crictl or critest connects to."`
	LogLevel     string              `toml:"log_level" json:"log_level" comment:"debug, info, warn or error. SIGHUP re-reads it from this file (nothing else is reloaded)."`
	CgroupDriver string              `toml:"cgroup_driver" json:"cgroup_driver" comment:"cgroupfs or systemd; must match the kubelet's (the RuntimeConfig RPC reports it)."`
	PinnedImages []string            `toml:"pinned_images" json:"pinned_images" comment:"Images reported as pinned: the kubelet's image GC never removes them."`
	Network      Network             `toml:"network" json:"network" comment:"Pod networking (CNI)."`
	Streaming    Streaming           `toml:"streaming" json:"streaming" comment:"The exec, attach and port-forward server behind the streaming RPCs' one-time URLs."`
	Metrics      Metrics             `toml:"metrics" json:"metrics" comment:"Prometheus metrics."`
	Debug        Debug               `toml:"debug" json:"debug" comment:"Debugging endpoints (Go's pprof)."`
	Registries   map[string]Registry `toml:"registries" json:"registries" comment:"Per registry host, as written in image references (docker.io, registry.k8s.io, 127.0.0.1:5000):\n[registries.\"registry.k8s.io\"]\nmirrors = [\"http://127.0.0.1:5000\"]\n[registries.\"127.0.0.1:5000\"]\ninsecure = true"`
	Runtime      Runtime             `toml:"runtime" json:"runtime" comment:"Container runtime knobs."`
	Images       Images              `toml:"images" json:"images" comment:"Bounds on what a pull may unpack."`
	CDI          CDI                 `toml:"cdi" json:"cdi" comment:"Container Device Interface: where the devices a container asks for by name (CDI_devices) are described."`
}

// CDI configures Container Device Interface devices (a container's CDI_devices).
type CDI struct {
	// SpecDirs are read for CDI spec files, in rising priority (a later dir's device wins).
	SpecDirs []string `toml:"spec_dirs" json:"spec_dirs" comment:"Directories of CDI spec files, read at each create that names a device; a later directory's device wins. Absolute paths."`
}

// The CDI specification's static and generated spec dirs, the default cdi.spec_dirs.
const (
	DefaultCDIStaticDir  = "/etc/cdi"
	DefaultCDIDynamicDir = "/var/run/cdi"
)

// Images bounds what a pull may unpack.
type Images struct {
	// MaxLayerSize and MaxImageSize bound the uncompressed size, in bytes, of one layer and
	// of one image (file sizes, holes of sparse files included, plus 512 bytes per entry);
	// 0 means 50 GiB. Whatever they say, a pull never writes more than the image
	// filesystem has free, less a margin. A pull past a bound fails with ResourceExhausted.
	MaxLayerSize int64 `toml:"max_layer_size" json:"max_layer_size" comment:"Largest uncompressed layer, in bytes (file sizes, holes of sparse files included, plus 512 bytes per entry); 0 means 50 GiB. Whatever it says, a pull never writes more than the image filesystem has free, less min(1/20 of it, 1 GiB). Past it a pull fails with ResourceExhausted and stores nothing."`
	MaxImageSize int64 `toml:"max_image_size" json:"max_image_size" comment:"Largest uncompressed image (all its layers), in bytes; 0 means 50 GiB."`
}

// Network configures CNI.
type Network struct {
	ConfDir string   `toml:"conf_dir" json:"conf_dir" comment:"CNI network configs. With none there, the built-in network: bridge peapod0, 10.89.0.0/16, host-local IPAM, portmap for hostPort."`
	BinDirs []string `toml:"bin_dirs" json:"bin_dirs" comment:"Where CNI plugins are looked up, in order; then the plugins built with peapod (cni/ beside the peapod binary, or ../lib/peapod/cni for one make install put in place). Absolute paths."`
}

// Streaming configures the exec/attach/port-forward server.
type Streaming struct {
	Address string `toml:"address" json:"address" comment:"host:port of the streaming server (SPDY and WebSocket: remotecommand v1-v5, port-forward over SPDY or tunnelled in a WebSocket); port 0 picks a free port."`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Address string `toml:"address" json:"address" comment:"host:port serving Prometheus text at /metrics (peapod_* families, gRPC, Go and process collectors), e.g. \"127.0.0.1:9105\"; empty turns metrics off."`
}

// Debug configures the daemon's debug endpoints.
type Debug struct {
	// Address is a unix socket path on which the daemon serves Go's pprof handlers
	// (/debug/pprof/: goroutines, heap, CPU); empty turns the endpoint off.
	Address string `toml:"address" json:"address" comment:"A unix socket path (mode 0600) serving Go's pprof at /debug/pprof/ and each pod shim's pid and goroutines at /debug/shims/<pod-id>; empty turns it off."`
	// PprofOnMetrics serves the same handlers on the metrics address.
	PprofOnMetrics bool `toml:"pprof_on_metrics" json:"pprof_on_metrics" comment:"Also serve /debug/pprof/ on [metrics] address (which must then be set)."`
}

// Registry configures one registry host.
type Registry struct {
	Mirrors  []string `toml:"mirrors" json:"mirrors" comment:"Mirrors tried in order before the host itself, as http:// or https:// URLs serving the same repository paths."`
	Insecure bool     `toml:"insecure" json:"insecure" comment:"Reach the host itself over plain HTTP, or HTTPS without verifying its certificate."`
}

// Runtime holds container runtime knobs.
type Runtime struct {
	// ClampOOMScoreAdj raises a requested oom_score_adj to peapod's own when the daemon
	// cannot lower it (no CAP_SYS_RESOURCE). Unset means: on exactly when the capability is
	// missing.
	ClampOOMScoreAdj *bool `toml:"clamp_oom_score_adj" json:"clamp_oom_score_adj,omitempty" comment:"Raise a requested oom_score_adj to peapod's own, which a daemon without CAP_SYS_RESOURCE cannot go below. Unset (the default): on exactly when the capability is missing."`
	// PidsLimit is the pids.max given to every container; 0 means no limit.
	PidsLimit int64 `toml:"pids_limit" json:"pids_limit" comment:"pids.max of every container; 0 means no limit."`
	// ShimBinary is the peapod-shim to start; empty means next to the daemon's binary.
	ShimBinary string `toml:"shim_binary" json:"shim_binary" comment:"The peapod-shim binary; empty means the one beside the peapod binary."`
	// TolerateMissingHugetlbController drops the hugepage limits of pods and containers on a
	// host without a hugetlb cgroup controller (a kubelet sends one for every page size the
	// node has); false refuses them with FailedPrecondition.
	TolerateMissingHugetlbController bool `toml:"tolerate_missing_hugetlb_controller" json:"tolerate_missing_hugetlb_controller" comment:"Drop hugepage limits (a kubelet sends one per page size the node has) on hosts without a hugetlb cgroup controller; false refuses them with FailedPrecondition."`
	// ShimTimeoutSeconds bounds how long the daemon waits for a pod's shim when it
	// (re)connects to it, at start and after a lost connection. A shim that does not answer
	// (a stopped or hung process) then holds back only its own pod.
	ShimTimeoutSeconds int `toml:"shim_timeout_seconds" json:"shim_timeout_seconds" comment:"Seconds the daemon waits for a pod's shim to answer when it (re)connects to it: at start-up and after a lost connection. A shim that does not answer in time (a stopped or hung process) holds back only its own pod: the daemon serves, that pod's unfinished containers are reported UNKNOWN, calls that need the shim fail at once with Unavailable naming the pod, and the daemon retries in the background (1 s, doubling to 30 s). 1 to 600."`
	// Handlers are further runtime handler names (what a RuntimeClass's handler names)
	// peapod answers to, each the same runtime as "", "peapod" and "runc", which it always
	// answers to: like a containerd runtimes.<name> table that is runc again.
	Handlers []string `toml:"handlers" json:"handlers,omitempty" comment:"Further runtime handler names (a RuntimeClass's handler) peapod answers to, each the same runtime as \"\", \"peapod\" and \"runc\", which it always answers to. DNS labels."`
}

// Default returns the configuration used when no file is given.
func Default() Config {
	return Config{
		Root:         DefaultRoot,
		State:        DefaultState,
		Listen:       DefaultListen,
		LogLevel:     DefaultLogLevel,
		CgroupDriver: DriverCgroupfs,
		PinnedImages: []string{DefaultPauseImage},
		Network:      Network{ConfDir: DefaultCNIConfDir, BinDirs: []string{DefaultCNIBinDir}},
		Streaming:    Streaming{Address: DefaultStreamAddr},
		Registries:   map[string]Registry{},
		Runtime:      Runtime{TolerateMissingHugetlbController: true, ShimTimeoutSeconds: DefaultShimTimeoutSeconds, Handlers: []string{}},
		CDI:          CDI{SpecDirs: []string{DefaultCDIStaticDir, DefaultCDIDynamicDir}},
	}
}

// Load reads the TOML file at path over the defaults. Every problem (unknown key, wrong
// type, impossible value) is reported with its key and line.
func Load(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, raw)
}

// Parse decodes raw (named path in errors) over the defaults and validates the result: the
// error lists every Problem of Check, one per line, and matches errdefs.ErrInvalidArgument.
func Parse(path string, raw []byte) (Config, error) {
	cfg, problems := Check(raw)
	if len(problems) > 0 {
		return Config{}, problemsError(path, problems)
	}
	return cfg, nil
}

func problemsError(path string, problems []Problem) error {
	lines := make([]string, len(problems))
	for i, p := range problems {
		lines[i] = p.In(path)
	}
	return fmt.Errorf("%s: %w", strings.Join(lines, "\n"), errdefs.ErrInvalidArgument)
}

// Validate checks values the types alone do not; its error lists every problem.
func (c Config) Validate() error {
	if problems := c.problems(); len(problems) > 0 {
		return problemsError("", problems)
	}
	return nil
}

// longestPodSocket is the longest socket path the daemon makes below its state directory:
// state/pods/<64-hex pod id>/stream.sock (critest's TestLongStateDirRefused keeps this in
// step with the shim's real socket paths).
func longestPodSocket(state string) string {
	return filepath.Join(state, "pods", strings.Repeat("f", 64), "stream.sock")
}

// problems lists every value the types allow but peapod cannot use, with its key.
func (c Config) problems() []Problem {
	var out []Problem
	add := func(key, format string, args ...any) {
		out = append(out, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	for _, p := range []struct{ key, path string }{{"root", c.Root}, {"state", c.State}, {"listen", c.Listen}, {"network.conf_dir", c.Network.ConfDir}} {
		if !filepath.IsAbs(p.path) {
			add(p.key, "%q must be an absolute path", p.path)
		}
	}
	for _, dir := range c.CDI.SpecDirs {
		if !filepath.IsAbs(dir) {
			add("cdi.spec_dirs", "%q must be an absolute path", dir)
		}
	}
	for _, dir := range c.Network.BinDirs {
		if !filepath.IsAbs(dir) {
			add("network.bin_dirs", "%q must be an absolute path", dir)
		}
	}
	for _, p := range []struct{ key, path string }{{"listen", c.Listen}, {"debug.address", c.Debug.Address}} {
		if len(p.path) > MaxSocketPath {
			add(p.key, "socket path %q is %d bytes, over the kernel's %d-byte limit", p.path, len(p.path), MaxSocketPath)
		}
	}
	if filepath.IsAbs(c.State) {
		if p := longestPodSocket(c.State); len(p) > MaxSocketPath {
			add("state", "%q is too long: a pod's sockets below it, such as %s, would be %d bytes, over the kernel's %d-byte limit of unix socket paths; choose a state directory of at most %d bytes",
				c.State, p, len(p), MaxSocketPath, len(filepath.Clean(c.State))-(len(p)-MaxSocketPath))
		}
	}
	if _, err := zapcore.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
		add("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.CgroupDriver != DriverCgroupfs && c.CgroupDriver != DriverSystemd {
		add("cgroup_driver", "%q must be %q or %q", c.CgroupDriver, DriverCgroupfs, DriverSystemd)
	}
	if err := checkHostPort(c.Streaming.Address); err != nil {
		add("streaming.address", "%q: %v", c.Streaming.Address, err)
	}
	if c.Metrics.Address != "" {
		if err := checkHostPort(c.Metrics.Address); err != nil {
			add("metrics.address", "%q: %v", c.Metrics.Address, err)
		}
	}
	if c.Debug.Address != "" && !filepath.IsAbs(c.Debug.Address) {
		add("debug.address", "%q must be an absolute socket path", c.Debug.Address)
	}
	if c.Debug.PprofOnMetrics && c.Metrics.Address == "" {
		add("debug.pprof_on_metrics", "needs metrics.address: pprof is served on the metrics address")
	}
	for host, r := range c.Registries {
		if host == "" || strings.ContainsAny(host, "/ ") {
			add("registries."+host, "%q is not a registry host", host)
		}
		for _, m := range r.Mirrors {
			u, err := url.Parse(m)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				add("registries."+host+".mirrors", "%q must be an http:// or https:// URL", m)
			}
		}
	}
	if c.Images.MaxLayerSize < 0 {
		add("images.max_layer_size", "%d must not be negative", c.Images.MaxLayerSize)
	}
	if c.Images.MaxImageSize < 0 {
		add("images.max_image_size", "%d must not be negative", c.Images.MaxImageSize)
	}
	if c.Runtime.PidsLimit < 0 {
		add("runtime.pids_limit", "%d must not be negative", c.Runtime.PidsLimit)
	}
	if c.Runtime.ShimTimeoutSeconds < 1 || c.Runtime.ShimTimeoutSeconds > 600 {
		add("runtime.shim_timeout_seconds", "%d must be from 1 to 600", c.Runtime.ShimTimeoutSeconds)
	}
	if c.Runtime.ShimBinary != "" && !filepath.IsAbs(c.Runtime.ShimBinary) {
		add("runtime.shim_binary", "%q must be an absolute path", c.Runtime.ShimBinary)
	}
	for _, h := range c.Runtime.Handlers {
		if !dnsLabel.MatchString(h) {
			add("runtime.handlers", "%q must be a DNS label (lowercase letters, digits and '-', at most 63)", h)
		}
	}
	return out
}

// dnsLabel is what Kubernetes accepts as a RuntimeClass handler.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// checkHostPort accepts host:port with a numeric port (0 for a free one).
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}
