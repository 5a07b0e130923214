package main

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// Names of the images upstream critest v1.36.0 pulls (pkg/validate/consts.go and the specs),
// and what each must be, as upstream's own images/ and build script make them.
const (
	staging = "gcr.io/k8s-staging-cri-tools/"

	// imgBusybox is upstream's default test image; its specs also run ipcs in it.
	imgBusybox = framework.ImageBusybox
	// imgNginx serves on port 80 as a process named nginx, with /var/run/nginx.pid.
	imgNginx = "registry.k8s.io/e2e-test-images/nginx:1.14-2"
	// imgHostNetNginx is imgNginx listening on 12003 (upstream's images/hostnet-nginx).
	imgHostNetNginx = staging + "hostnet-nginx-" + runtime.GOARCH + ":latest"
	// imgHttpd serves on port 80 and logs "httpd" (the Multiple Containers specs).
	imgHttpd = "registry.k8s.io/e2e-test-images/httpd:2.4.39-4"
	// imgNoNewPrivs runs a setuid-root program that prints its effective uid.
	imgNoNewPrivs = "registry.k8s.io/e2e-test-images/nonewprivs:1.3"
	// imgPause and imgPauseOld are one image under two registries' names.
	imgPause    = "registry.k8s.io/pause:3.9"
	imgPauseOld = "k8s.gcr.io/pause:3.9"

	// imgPredefinedGroup is user default-user (1000) in group-defined-in-image (50000).
	imgPredefinedGroup = staging + "test-image-predefined-group:latest"
)

// userImages are upstream's images/image-user builds: busybox with USER set.
func userImages() map[string]string {
	return map[string]string{
		staging + "test-image-user-uid:latest":            "1002",
		staging + "test-image-user-username:latest":       "www-data",
		staging + "test-image-user-uid-group:latest":      "1003:1004",
		staging + "test-image-user-username-group:latest": "www-data:1004",
	}
}

// markerImages are upstream's images/image-test builds: busybox plus an empty file whose name
// makes each image distinct. Names sharing a marker are tags of one image.
func markerImages() map[string]string {
	return map[string]string{
		staging + "test-image-1:latest":      "test-image-1",
		staging + "test-image-2:latest":      "test-image-2",
		staging + "test-image-3:latest":      "test-image-3",
		staging + "test-image-latest:latest": "test-image-latest",
		staging + "test-image-tags:1":        "same-image",
		staging + "test-image-tags:2":        "same-image",
		staging + "test-image-tags:3":        "same-image",
		staging + "test-image-tag:test":      "test",
		staging + "test-image-tag:all":       "all",
	}
}

// extraMirrors are the registries upstream's specs pull from beyond
// framework.MirroredRegistries.
func extraMirrors() []string { return []string{"k8s.gcr.io"} }

// buildStandin compiles ./critest/upstream/standin statically into dir and returns its bytes.
func buildStandin(ctx context.Context, goTool, dir string) ([]byte, error) {
	out := filepath.Join(dir, "standin")
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-o", out, "github.com/peapod-runtime/peapod/critest/upstream/standin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build standin: %w: %s", err, b)
	}
	body, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("read standin: %w", err)
	}
	return body, nil
}

// upstreamImages builds every image of the names above, each as a v1.Image or (for the
// gcr.io/k8s-staging-cri-tools names, which upstream publishes as manifest lists) a
// single-platform v1.ImageIndex. standin is the static program of ./standin.
func upstreamImages(standin []byte) (map[string]remote.Taggable, error) {
	b := &imageSet{out: map[string]remote.Taggable{}, standin: standin}
	for _, build := range []func() error{b.programImages, b.userImages, b.markerImages} {
		if err := build(); err != nil {
			return nil, err
		}
	}
	return b.out, nil
}

// imageSet collects upstreamImages' images by name.
type imageSet struct {
	out     map[string]remote.Taggable
	standin []byte
}

// prog is the stand-in program at path.
func (b *imageSet) prog(path string, mode int64) framework.TarEntry {
	return framework.TarEntry{Name: path, Type: tar.TypeReg, Mode: mode, Body: b.standin}
}

// add builds spec under name, as a single-platform index when list is set.
func (b *imageSet) add(name string, spec framework.ImageSpec, list bool) error {
	img, err := framework.BuildImage(spec)
	if err != nil {
		return fmt.Errorf("image %s: %w", name, err)
	}
	if !list {
		b.out[name] = img
		return nil
	}
	idx, err := framework.BuildIndex(framework.FormatDocker, img)
	if err != nil {
		return fmt.Errorf("index %s: %w", name, err)
	}
	b.out[name] = idx
	return nil
}

func layer(entries ...framework.TarEntry) (v1.Layer, error) { return framework.NewLayer(entries) }

// programImages are the images whose entrypoint is a program: busybox with ipcs, the web
// servers, nonewprivs and pause.
func (b *imageSet) programImages() error {
	prog, add, out := b.prog, b.add, b.out
	ipcs, err := layer(prog("bin/ipcs", 0o755))
	if err != nil {
		return err
	}
	if err := add(imgBusybox, framework.ImageSpec{Busybox: true, Layers: []v1.Layer{ipcs},
		Config: v1.Config{Cmd: []string{"sh"}}}, false); err != nil {
		return err
	}

	for name, port := range map[string]int{imgNginx: 80, imgHostNetNginx: 12003} {
		l, err := layer(
			prog("usr/sbin/nginx", 0o755),
			framework.File("etc/nginx/conf.d/default.conf", 0o644, fmt.Sprintf("server {\n    listen       %d;\n    server_name  localhost;\n    location / {\n        root   /usr/share/nginx/html;\n    }\n}\n", port)),
			framework.File("usr/share/nginx/html/index.html", 0o644, "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n<body><h1>Welcome to nginx!</h1></body></html>\n"),
			framework.Dir("var/run", 0o755),
		)
		if err != nil {
			return err
		}
		if err := add(name, framework.ImageSpec{Busybox: true, Layers: []v1.Layer{l}, Config: v1.Config{
			Cmd: []string{"nginx", "-g", "daemon off;"}, StopSignal: "SIGTERM",
			ExposedPorts: map[string]struct{}{fmt.Sprintf("%d/tcp", port): {}},
		}}, name == imgHostNetNginx); err != nil {
			return err
		}
	}

	httpd, err := layer(
		prog("usr/local/apache2/bin/httpd", 0o755),
		framework.File("usr/local/apache2/htdocs/index.html", 0o644, "<html><body><h1>It works!</h1></body></html>\n"),
	)
	if err != nil {
		return err
	}
	if err := add(imgHttpd, framework.ImageSpec{Busybox: true, Layers: []v1.Layer{httpd}, Config: v1.Config{
		Env: []string{"PATH=/usr/local/apache2/bin:" + strings.TrimPrefix(framework.DefaultPath, "PATH=")}, Cmd: []string{"httpd"}, WorkingDir: "/usr/local/apache2",
		ExposedPorts: map[string]struct{}{"80/tcp": {}},
	}}, false); err != nil {
		return err
	}

	nnp, err := layer(framework.TarEntry{Name: "usr/local/bin/nnp", Type: tar.TypeReg, Mode: 0o4755, Body: b.standin})
	if err != nil {
		return err
	}
	if err := add(imgNoNewPrivs, framework.ImageSpec{Busybox: true, Layers: []v1.Layer{nnp},
		Config: v1.Config{Entrypoint: []string{"/usr/local/bin/nnp"}}}, false); err != nil {
		return err
	}

	pause, err := layer(prog("pause", 0o755))
	if err != nil {
		return err
	}
	if err := add(imgPause, framework.ImageSpec{Layers: []v1.Layer{pause},
		Config: v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}}, true); err != nil {
		return err
	}
	out[imgPauseOld] = out[imgPause]
	return nil
}

// userImages are the images of a USER, and predefined-group's /etc/group.
func (b *imageSet) userImages() error {
	add := b.add
	for name, user := range userImages() {
		if err := add(name, framework.ImageSpec{Busybox: true, Config: v1.Config{User: user, Cmd: []string{"sh"}}}, true); err != nil {
			return err
		}
	}

	etc, err := layer(
		framework.File("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/sh\ndefault-user:x:1000:1000::/home/default-user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
		framework.File("etc/group", 0o644, "root:x:0:\nwww-data:x:33:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\nnogroup:x:65534:\n"),
		framework.TarEntry{Name: "home/default-user", Type: tar.TypeDir, Mode: 0o755, UID: 1000, GID: 1000},
	)
	if err != nil {
		return err
	}
	if err := add(imgPredefinedGroup, framework.ImageSpec{Busybox: true, Layers: []v1.Layer{etc},
		Config: v1.Config{User: "1000", Cmd: []string{"sh"}}}, true); err != nil {
		return err
	}

	return nil
}

// markerImages are the tag images, each told apart by an empty marker file.
func (b *imageSet) markerImages() error {
	add, out := b.add, b.out
	markers := map[string]remote.Taggable{}
	byMarker := markerImages()
	names := make([]string, 0, len(byMarker))
	for name := range byMarker {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		marker := byMarker[name]
		if img, ok := markers[marker]; ok {
			out[name] = img
			continue
		}
		l, err := layer(framework.File(marker, 0o644, ""))
		if err != nil {
			return err
		}
		if err := add(name, framework.ImageSpec{Busybox: true, Layers: []v1.Layer{l}, Config: v1.Config{Cmd: []string{"sh"}}}, true); err != nil {
			return err
		}
		markers[marker] = out[name]
	}
	return nil
}

// pushUpstreamImages pushes imgs to reg under their names (replacing any test image of the
// same name).
func pushUpstreamImages(ctx context.Context, reg *framework.Registry, imgs map[string]remote.Taggable) error {
	for name, t := range imgs {
		var err error
		switch x := t.(type) {
		case v1.ImageIndex:
			err = reg.PushIndex(ctx, name, x)
		case v1.Image:
			err = reg.Push(ctx, name, x)
		default:
			err = fmt.Errorf("%T is neither an image nor an index", t)
		}
		if err != nil {
			return fmt.Errorf("push %s: %w", name, err)
		}
	}
	return nil
}
