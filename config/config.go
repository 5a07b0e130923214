// Package config is peapod's configuration: the TOML file's schema with its fixed key names,
// the defaults that work with no file at all, and validation that names the offending key
// and line.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	toml "github.com/pelletier/go-toml/v2"
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
)

// Config is the whole daemon configuration. Key names are fixed: operators and scripts rely
// on them.
type Config struct {
	Root         string              `toml:"root" json:"root"`
	State        string              `toml:"state" json:"state"`
	Listen       string              `toml:"listen" json:"listen"`
	LogLevel     string              `toml:"log_level" json:"log_level"`
	CgroupDriver string              `toml:"cgroup_driver" json:"cgroup_driver"`
	PinnedImages []string            `toml:"pinned_images" json:"pinned_images"`
	Network      Network             `toml:"network" json:"network"`
	Streaming    Streaming           `toml:"streaming" json:"streaming"`
	Debug        Debug               `toml:"debug" json:"debug"`
	Registries   map[string]Registry `toml:"registries" json:"registries"`
	Runtime      Runtime             `toml:"runtime" json:"runtime"`
}

// Network configures CNI.
type Network struct {
	ConfDir string   `toml:"conf_dir" json:"conf_dir"`
	BinDirs []string `toml:"bin_dirs" json:"bin_dirs"`
}

// Streaming configures the exec/attach/port-forward server.
type Streaming struct {
	Address string `toml:"address" json:"address"`
}

// Debug configures the daemon's debug endpoint.
type Debug struct {
	// Address is a unix socket path on which the daemon serves Go's pprof handlers
	// (/debug/pprof/: goroutines, heap, CPU); empty turns the endpoint off.
	Address string `toml:"address" json:"address"`
}

// Registry configures one registry host.
type Registry struct {
	Mirrors  []string `toml:"mirrors" json:"mirrors"`
	Insecure bool     `toml:"insecure" json:"insecure"`
}

// Runtime holds container runtime knobs.
type Runtime struct {
	// ClampOOMScoreAdj raises a requested oom_score_adj to peapod's own when the daemon
	// cannot lower it (no CAP_SYS_RESOURCE). Unset means: on exactly when the capability is
	// missing.
	ClampOOMScoreAdj *bool `toml:"clamp_oom_score_adj" json:"clamp_oom_score_adj,omitempty"`
	// PidsLimit is the pids.max given to every container; 0 means no limit.
	PidsLimit int64 `toml:"pids_limit" json:"pids_limit"`
	// ShimBinary is the peapod-shim to start; empty means next to the daemon's binary.
	ShimBinary string `toml:"shim_binary" json:"shim_binary"`
	// TolerateMissingHugetlbController drops the hugepage limits of pods and containers on a
	// host without a hugetlb cgroup controller (a kubelet sends one for every page size the
	// node has); false refuses them with FailedPrecondition.
	TolerateMissingHugetlbController bool `toml:"tolerate_missing_hugetlb_controller" json:"tolerate_missing_hugetlb_controller"`
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
		Runtime:      Runtime{TolerateMissingHugetlbController: true},
	}
}

// Load reads the TOML file at path over the defaults. Unknown keys and wrong types are
// errors naming the key and the line.
func Load(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, raw)
}

// Parse decodes raw (named path in errors) over the defaults and validates the result.
func Parse(path string, raw []byte) (Config, error) {
	cfg := Default()
	dec := toml.NewDecoder(bytes.NewReader(raw)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, describe(path, err)
	}
	if cfg.Registries == nil {
		cfg.Registries = map[string]Registry{}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func describe(path string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var lines []string
		for _, e := range strict.Errors {
			row, col := e.Position()
			lines = append(lines, fmt.Sprintf("%s:%d:%d: unknown key %q", path, row, col, strings.Join(e.Key(), ".")))
		}
		return fmt.Errorf("%s: %w", strings.Join(lines, "; "), errdefs.ErrInvalidArgument)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		key := strings.Join(de.Key(), ".")
		if key == "" {
			return fmt.Errorf("%s:%d:%d: %s: %w", path, row, col, de.Error(), errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("%s:%d:%d: key %q: %s: %w", path, row, col, key, de.Error(), errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("%s: %v: %w", path, err, errdefs.ErrInvalidArgument)
}

// MaxSocketPath is the longest path a unix socket can be bound or reached at: sun_path is
// 108 bytes, one of them the terminating NUL. A longer path fails only when a socket is
// used (EINVAL), so peapod checks its socket paths before it starts.
const MaxSocketPath = 107

// CheckSocketPath fails when path is too long for a unix socket, naming key (the setting
// it comes from), the path, its length and the limit.
func CheckSocketPath(key, path string) error {
	if len(path) > MaxSocketPath {
		return fmt.Errorf("key %q: socket path %s is %d bytes, over the %d-byte limit of unix socket paths: choose a shorter path: %w",
			key, path, len(path), MaxSocketPath, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Validate checks values the types alone do not.
func (c Config) Validate() error {
	for key, dir := range map[string]string{"root": c.Root, "state": c.State, "listen": c.Listen, "network.conf_dir": c.Network.ConfDir} {
		if dir == "" || !filepath.IsAbs(dir) {
			return fmt.Errorf("key %q: %q must be an absolute path: %w", key, dir, errdefs.ErrInvalidArgument)
		}
	}
	for _, dir := range c.Network.BinDirs {
		if !filepath.IsAbs(dir) {
			return fmt.Errorf("key \"network.bin_dirs\": %q must be an absolute path: %w", dir, errdefs.ErrInvalidArgument)
		}
	}
	if _, err := zapcore.ParseLevel(c.LogLevel); err != nil {
		return fmt.Errorf("key \"log_level\": %q is not one of debug, info, warn, error: %w", c.LogLevel, errdefs.ErrInvalidArgument)
	}
	if c.CgroupDriver != DriverCgroupfs && c.CgroupDriver != DriverSystemd {
		return fmt.Errorf("key \"cgroup_driver\": %q must be %q or %q: %w", c.CgroupDriver, DriverCgroupfs, DriverSystemd, errdefs.ErrInvalidArgument)
	}
	if _, _, err := net.SplitHostPort(c.Streaming.Address); err != nil {
		return fmt.Errorf("key \"streaming.address\": %q: %v: %w", c.Streaming.Address, err, errdefs.ErrInvalidArgument)
	}
	if c.Debug.Address != "" && !filepath.IsAbs(c.Debug.Address) {
		return fmt.Errorf("key \"debug.address\": %q must be an absolute socket path: %w", c.Debug.Address, errdefs.ErrInvalidArgument)
	}
	if err := CheckSocketPath("listen", c.Listen); err != nil {
		return err
	}
	if c.Debug.Address != "" {
		if err := CheckSocketPath("debug.address", c.Debug.Address); err != nil {
			return err
		}
	}
	for host, r := range c.Registries {
		if host == "" || strings.ContainsAny(host, "/ ") {
			return fmt.Errorf("registries.%q: not a registry host: %w", host, errdefs.ErrInvalidArgument)
		}
		for _, m := range r.Mirrors {
			u, err := url.Parse(m)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("key \"registries.%s.mirrors\": %q must be an http:// or https:// URL: %w", host, m, errdefs.ErrInvalidArgument)
			}
		}
	}
	if c.Runtime.PidsLimit < 0 {
		return fmt.Errorf("key \"runtime.pids_limit\": %d must not be negative: %w", c.Runtime.PidsLimit, errdefs.ErrInvalidArgument)
	}
	return nil
}
