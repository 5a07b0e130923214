package volumes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The container paths of the pod files.
const (
	EtcHostname   = "/etc/hostname"
	EtcResolvConf = "/etc/resolv.conf"
	EtcHosts      = "/etc/hosts"
	DevShm        = "/dev/shm"
)

// DNSConfig is the pod's resolver configuration as the kubelet computed it.
type DNSConfig struct {
	Servers  []string
	Searches []string
	Options  []string
}

// PodFiles is what WritePodFiles needs.
type PodFiles struct {
	// Dir is the pod's own directory; the files are written into it.
	Dir      string
	Hostname string
	// DNS is the kubelet's DNS config. Nil or empty means "use the node's": the host's
	// resolv.conf is copied, which is what a kubelet's dnsPolicy Default expects and what
	// containerd does.
	DNS *DNSConfig
	// IPs are the pod's addresses (IPv4 first); each gets a hosts entry for Hostname.
	IPs []string
	// HostNetwork pods get a copy of the node's hosts file instead of a generated one, as the
	// kubelet does for them.
	HostNetwork bool
	// HostResolvConf and HostHosts are the node's files; empty means /etc/resolv.conf and
	// /etc/hosts.
	HostResolvConf string
	HostHosts      string
}

// PodFilePaths are the files WritePodFiles wrote, plus the pod's shm mount, ready for
// PodMounts.
type PodFilePaths struct {
	Hostname   string
	ResolvConf string
	Hosts      string
	// Shm is the pod's /dev/shm source (MountPodShm's path, or the host's /dev/shm for a
	// hostIPC pod); empty means the container keeps the spec's default /dev/shm.
	Shm string
}

// WritePodFiles writes hostname, resolv.conf and hosts into f.Dir (created if missing) and
// returns their paths. Rewriting is allowed (a retried pod creation); files are replaced in
// place so that existing bind mounts keep seeing them.
func WritePodFiles(f PodFiles) (PodFilePaths, error) {
	if f.Dir == "" {
		return PodFilePaths{}, fmt.Errorf("pod files need a directory: %w", errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return PodFilePaths{}, fmt.Errorf("create pod dir %s: %w", f.Dir, err)
	}
	p := PodFilePaths{
		Hostname:   filepath.Join(f.Dir, "hostname"),
		ResolvConf: filepath.Join(f.Dir, "resolv.conf"),
		Hosts:      filepath.Join(f.Dir, "hosts"),
	}
	if err := writeFile(p.Hostname, []byte(f.Hostname+"\n")); err != nil {
		return PodFilePaths{}, err
	}

	resolv := ResolvConf(f.DNS)
	if resolv == nil {
		src := f.HostResolvConf
		if src == "" {
			src = "/etc/resolv.conf"
		}
		var err error
		if resolv, err = readHostFile(src); err != nil {
			return PodFilePaths{}, err
		}
	}
	if err := writeFile(p.ResolvConf, resolv); err != nil {
		return PodFilePaths{}, err
	}

	var hosts []byte
	if f.HostNetwork {
		src := f.HostHosts
		if src == "" {
			src = "/etc/hosts"
		}
		var err error
		if hosts, err = readHostFile(src); err != nil {
			return PodFilePaths{}, err
		}
	} else {
		hosts = HostsFile(f.Hostname, f.IPs)
	}
	if err := writeFile(p.Hosts, hosts); err != nil {
		return PodFilePaths{}, err
	}
	return p, nil
}

// ResolvConf renders a DNS config as resolv.conf, or returns nil when dns is nil or empty
// (the caller then uses the node's file).
func ResolvConf(dns *DNSConfig) []byte {
	if dns == nil || len(dns.Servers)+len(dns.Searches)+len(dns.Options) == 0 {
		return nil
	}
	var b bytes.Buffer
	if len(dns.Searches) > 0 {
		b.WriteString("search " + strings.Join(dns.Searches, " ") + "\n")
	}
	for _, s := range dns.Servers {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(dns.Options) > 0 {
		b.WriteString("options " + strings.Join(dns.Options, " ") + "\n")
	}
	return b.Bytes()
}

// HostsFile renders a pod's hosts file: the localhost entries a kubelet writes, then one line
// per pod IP naming the hostname.
func HostsFile(hostname string, ips []string) []byte {
	var b bytes.Buffer
	b.WriteString("# peapod-managed hosts file.\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	if hostname != "" {
		for _, ip := range ips {
			b.WriteString(ip + "\t" + hostname + "\n")
		}
	}
	return b.Bytes()
}

// PodMounts returns the bind mounts of the pod files and /dev/shm for one container, skipping
// each path the container mounts itself (the kubelet usually passes its own /etc/hosts) and
// each file that is empty in p. The files are read-only when the container's rootfs is.
func PodMounts(p PodFilePaths, readonly bool, containerMounts []Mount) []specs.Mount {
	var out []specs.Mount
	add := func(dst, src string, ro bool, extra ...string) {
		if src == "" || Covers(containerMounts, dst) {
			return
		}
		opts := []string{"rbind", "rprivate", "rw"}
		if ro {
			opts[2] = "ro"
		}
		out = append(out, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: append(opts, extra...)})
	}
	add(EtcHostname, p.Hostname, readonly)
	add(EtcResolvConf, p.ResolvConf, readonly)
	add(EtcHosts, p.Hosts, readonly)
	// runc remounts a bind to apply its options, which would drop the tmpfs's own flags:
	// restate them.
	add(DevShm, p.Shm, false, "nosuid", "nodev", "noexec")
	return out
}

// readHostFile reads one of the node's small config files.
func readHostFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil // a node without the file gives pods an empty one, as runc would
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// writeFile replaces path's content in place. It refuses to follow a symlink at path: the pod
// directory is ours, and a symlink there would be an attack.
func writeFile(path string, data []byte) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	// Containers running as any user read these files, whatever our umask is.
	if err := f.Chmod(0o644); err != nil {
		_ = f.Close()
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if _, err := io.Copy(f, bytes.NewReader(data)); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}
