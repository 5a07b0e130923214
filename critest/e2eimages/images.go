// Package e2eimages builds, from this machine's own files, the container images Kubernetes'
// node e2e suite (k8s.io/kubernetes/test/e2e_node, make node-conformance) pulls, under the
// names and tags of test/utils/image/manifest.go at the pinned Kubernetes version. No
// registry is reachable here, so each image is reproduced from what its specs expect of it:
//
//   - busybox: critest/framework's busybox base (Debian's busybox, applets hard-linked), plus
//     stand-ins for the applets upstream's busybox has and Debian's lacks that specs run
//     (nmeter, ./nmeter), and bash, which /bin/sh (./sh) runs instead of ash when the
//     environment holds variables whose names are not identifiers: Debian's busybox 1.35 ash
//     drops them, upstream's 1.37 passes them on, and specs read them back. Every image
//     below but pause is built on it.
//   - agnhost: the agnhost multi-tool of k8s.io/kubernetes (test/images/agnhost), built
//     statically from the module cache (hack/k8s-build.sh agnhost), over the busybox base,
//     with /agnhost-2, /uploads, porter's localhost.crt and .key and the image's
//     user-defined-in-image (1000) in group-defined-in-image (50000), as upstream's Dockerfile
//     has them, and the host's curl and OpenBSD nc (with their libraries), which specs run;
//     ENTRYPOINT ["/agnhost"], CMD ["pause"].
//   - pause: a static Go pause (./pause) that waits for SIGTERM and reaps children.
//   - nginx: busybox's httpd serving /usr/share/nginx/html on port 80 in the foreground, and
//     writing its PID to /var/run/nginx.pid.
//   - nonroot: busybox with USER 1234.
//   - nonewprivs: busybox with a setuid-root /usr/local/bin/nnp (./nnp) that prints its
//     effective uid; CMD ["nnp"].
//   - glibc-dns-testing: busybox; its hostname and hostname -f resolve through glibc's
//     /etc/hosts lookup, which is what the specs using it read.
//
// Every image is deterministic: fixed timestamps, Go binaries built with -trimpath and no
// build id.
package e2eimages

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// The image names, as the node e2e suite of the pinned Kubernetes version writes them.
const (
	Agnhost         = "registry.k8s.io/e2e-test-images/agnhost:2.63.0"
	AgnhostPrev     = "registry.k8s.io/e2e-test-images/agnhost:2.55"
	Busybox         = "registry.k8s.io/e2e-test-images/busybox:1.37.0-1"
	Pause           = "registry.k8s.io/pause:3.10.2"
	Nginx           = "registry.k8s.io/e2e-test-images/nginx:1.15-4"
	NginxNew        = "registry.k8s.io/e2e-test-images/nginx:1.27-0"
	NonRoot         = "registry.k8s.io/e2e-test-images/nonroot:1.5"
	Nonewprivs      = "registry.k8s.io/e2e-test-images/nonewprivs:1.4"
	GlibcDNSTesting = "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.0.0"
)

// PauseAliases are further tags of the pause image: the pause images containerd and the
// kubelet default to in recent releases.
var PauseAliases = []string{"registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10.1", "registry.k8s.io/pause:3.9"}

// Facts about the images that specs (and our tests) rely on.
const (
	NonRootUID          = 1234
	AgnhostImageUser    = "user-defined-in-image"
	AgnhostImageUID     = 1000
	AgnhostImageGroup   = "group-defined-in-image"
	AgnhostImageGroupID = 50000
	NginxRoot           = "/usr/share/nginx/html"
	NginxPIDFile        = "/var/run/nginx.pid"
	NnpPath             = "/usr/local/bin/nnp"
)

// Options says where the inputs come from.
type Options struct {
	// Agnhost is the path of a static agnhost binary (hack/k8s-build.sh agnhost builds one
	// into the Kubernetes binary cache).
	Agnhost string
	// AgnhostSource is the directory of k8s.io/kubernetes' test/images/agnhost in the module
	// cache (for porter's localhost.crt and localhost.key); empty: the certificate files are
	// left out.
	AgnhostSource string
	// ModuleDir is the directory of peapod's go.mod (the pause and nnp programs are built from
	// it); empty: found with go env GOMOD from the working directory.
	ModuleDir string
	// Go is the go command (default "go").
	Go string
}

// Build builds every image, keyed by name (a v1.Image each; some share one image).
func Build(ctx context.Context, o Options) (map[string]remote.Taggable, error) {
	if o.Go == "" {
		o.Go = "go"
	}
	if o.ModuleDir == "" {
		out, err := exec.CommandContext(ctx, o.Go, "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
			return nil, fmt.Errorf("find peapod's go.mod (go env GOMOD): %v", err)
		}
		o.ModuleDir = filepath.Dir(strings.TrimSpace(string(out)))
	}
	tmp, err := os.MkdirTemp("", "e2eimages-")
	if err != nil {
		return nil, fmt.Errorf("temp dir for the image binaries: %w", err)
	}
	defer os.RemoveAll(tmp)

	out := map[string]remote.Taggable{}
	// Applets upstream's busybox has and Debian's lacks, as stand-ins: in every busybox image.
	nmeterBin, err := goBuild(ctx, o, tmp, "github.com/peapod-runtime/peapod/critest/e2eimages/nmeter")
	if err != nil {
		return nil, err
	}
	// sh: busybox's ash, or bash when the environment holds variables named like Secret keys
	// (./sh says why).
	shBin, err := goBuild(ctx, o, tmp, "github.com/peapod-runtime/peapod/critest/e2eimages/sh")
	if err != nil {
		return nil, err
	}
	extraEntries, err := framework.HostFiles("/bin/bash")
	if err != nil {
		return nil, fmt.Errorf("bash for the busybox images (apt-get install bash): %w", err)
	}
	extraEntries = append(extraEntries,
		framework.TarEntry{Name: "bin/nmeter", Type: tar.TypeReg, Mode: 0o755, Body: nmeterBin},
		framework.TarEntry{Name: "bin/sh", Type: tar.TypeReg, Mode: 0o755, Body: shBin})
	extras, err := framework.NewLayer(extraEntries)
	if err != nil {
		return nil, err
	}
	busybox := func(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
		if cfg.Cmd == nil && cfg.Entrypoint == nil {
			cfg.Cmd = []string{"sh"}
		}
		return framework.BuildImage(framework.ImageSpec{Busybox: true, Config: cfg, Layers: append([]v1.Layer{extras}, layers...)})
	}

	bb, err := busybox(v1.Config{})
	if err != nil {
		return nil, fmt.Errorf("busybox: %w", err)
	}
	out[Busybox] = bb
	out[GlibcDNSTesting] = bb

	nonroot, err := busybox(v1.Config{User: fmt.Sprint(NonRootUID)})
	if err != nil {
		return nil, fmt.Errorf("nonroot: %w", err)
	}
	out[NonRoot] = nonroot

	pauseBin, err := goBuild(ctx, o, tmp, "github.com/peapod-runtime/peapod/critest/e2eimages/pause")
	if err != nil {
		return nil, err
	}
	pauseLayer, err := framework.NewLayer([]framework.TarEntry{{Name: "pause", Type: tar.TypeReg, Mode: 0o755, Body: pauseBin}})
	if err != nil {
		return nil, err
	}
	pause, err := framework.BuildImage(framework.ImageSpec{Layers: []v1.Layer{pauseLayer},
		Config: v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}})
	if err != nil {
		return nil, fmt.Errorf("pause: %w", err)
	}
	out[Pause] = pause
	for _, a := range PauseAliases {
		out[a] = pause
	}

	nnpBin, err := goBuild(ctx, o, tmp, "github.com/peapod-runtime/peapod/critest/e2eimages/nnp")
	if err != nil {
		return nil, err
	}
	nnpLayer, err := framework.NewLayer([]framework.TarEntry{
		framework.Dir("usr/local/bin", 0o755),
		{Name: strings.TrimPrefix(NnpPath, "/"), Type: tar.TypeReg, Mode: 0o4755, Body: nnpBin},
	})
	if err != nil {
		return nil, err
	}
	nnp, err := busybox(v1.Config{Cmd: []string{"nnp"}}, nnpLayer)
	if err != nil {
		return nil, fmt.Errorf("nonewprivs: %w", err)
	}
	out[Nonewprivs] = nnp

	nginxLayer, err := framework.NewLayer([]framework.TarEntry{
		framework.Dir("usr/share/nginx/html", 0o755),
		framework.File("usr/share/nginx/html/index.html", 0o644, "<!DOCTYPE html>\n<html><body><h1>Welcome to nginx!</h1></body></html>\n"),
		framework.Dir("var/run", 0o755),
		framework.File("usr/sbin/nginx", 0o755, nginxScript),
	})
	if err != nil {
		return nil, err
	}
	nginx, err := busybox(v1.Config{Cmd: []string{"nginx", "-g", "daemon off;"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}}, StopSignal: "SIGQUIT"}, nginxLayer)
	if err != nil {
		return nil, fmt.Errorf("nginx: %w", err)
	}
	out[Nginx] = nginx
	out[NginxNew] = nginx

	if o.Agnhost == "" {
		return nil, errors.New("no agnhost binary given (hack/k8s-build.sh agnhost builds one)")
	}
	agnhostBin, err := os.ReadFile(o.Agnhost)
	if err != nil {
		return nil, fmt.Errorf("agnhost binary (hack/k8s-build.sh agnhost builds it): %w", err)
	}
	entries := []framework.TarEntry{
		{Name: "agnhost", Type: tar.TypeReg, Mode: 0o755, Body: agnhostBin},
		framework.Symlink("agnhost-2", "agnhost"),
		framework.Dir("uploads", 0o755),
		framework.File("etc/passwd", 0o644, strings.Join([]string{
			"root:x:0:0:root:/root:/bin/sh",
			"www-data:x:33:33:www-data:/var/www:/bin/sh",
			fmt.Sprintf("%s:x:%d:%d::/home/%s:/bin/sh", AgnhostImageUser, AgnhostImageUID, AgnhostImageUID, AgnhostImageUser),
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false",
		}, "\n")+"\n"),
		framework.File("etc/group", 0o644, strings.Join([]string{
			"root:x:0:",
			"www-data:x:33:",
			"users:x:100:",
			fmt.Sprintf("%s:x:%d:", AgnhostImageUser, AgnhostImageUID),
			fmt.Sprintf("%s:x:%d:%s", AgnhostImageGroup, AgnhostImageGroupID, AgnhostImageUser),
			"nogroup:x:65534:",
		}, "\n")+"\n"),
		{Name: "home/" + AgnhostImageUser, Type: tar.TypeDir, Mode: 0o755, UID: AgnhostImageUID, GID: AgnhostImageUID},
	}
	// Upstream's agnhost image (Alpine) has curl and OpenBSD's netcat (nc -u, which busybox's
	// nc lacks), and bash, which every image here has: specs run them in it.
	tools, err := framework.HostFiles("/usr/bin/curl", "/bin/nc.openbsd")
	if err != nil {
		return nil, fmt.Errorf("agnhost's curl and nc (apt-get install curl netcat-openbsd): %w", err)
	}
	// Before busybox's /bin/nc in PATH.
	tools = append(tools, framework.Symlink("usr/bin/nc", "/bin/nc.openbsd"))
	toolsLayer, err := framework.NewLayer(tools)
	if err != nil {
		return nil, err
	}
	if o.AgnhostSource != "" {
		for _, f := range []string{"localhost.crt", "localhost.key"} {
			b, err := os.ReadFile(filepath.Join(o.AgnhostSource, "porter", f))
			if err != nil {
				return nil, fmt.Errorf("agnhost's porter certificate: %w", err)
			}
			entries = append(entries, framework.TarEntry{Name: f, Type: tar.TypeReg, Mode: 0o644, Body: b})
		}
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	agnLayer, err := framework.NewLayer(entries)
	if err != nil {
		return nil, err
	}
	agnhost, err := busybox(v1.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "8080/tcp": {}, "8081/tcp": {}, "9376/tcp": {}, "5000/tcp": {}}}, toolsLayer, agnLayer)
	if err != nil {
		return nil, fmt.Errorf("agnhost: %w", err)
	}
	out[Agnhost] = agnhost
	out[AgnhostPrev] = agnhost
	return out, nil
}

// nginxScript stands in for nginx: busybox's httpd in the foreground on port 80, serving
// NginxRoot, its PID in NginxPIDFile (specs read it), whatever arguments it is given.
const nginxScript = `#!/bin/sh
echo $$ > /var/run/nginx.pid
exec httpd -f -v -p 80 -h /usr/share/nginx/html
`

// goBuild builds pkg statically and reproducibly and returns the binary.
func goBuild(ctx context.Context, o Options, tmp, pkg string) ([]byte, error) {
	bin := filepath.Join(tmp, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, o.Go, "build", "-trimpath", "-ldflags", "-s -w -buildid=", "-o", bin, pkg)
	cmd.Dir = o.ModuleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w: %s", pkg, err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", bin, err)
	}
	return b, nil
}
