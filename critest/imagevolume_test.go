package critest

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// imageVolumeFlags are the per-mount flags every image volume must carry, inside the
// container and on the node.
var imageVolumeFlags = []string{"ro", "nosuid", "nodev", "noexec"}

// TestImageVolumes: Mount.image shows a pulled image's merged layers read-only, nosuid,
// nodev and noexec at the container path (the kernel's mountinfo says so, inside and on the
// node), honours image_sub_path (a directory, a file, symlinks resolved inside the image),
// survives a daemon killed right after CreateContainer, keeps the image from RemoveImage
// (FailedPrecondition) while the container exists, refuses hostile or missing sub paths and
// unpulled images leaving nothing behind, and is unmounted and released on RemoveContainer.
func TestImageVolumes(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t)
	c := framework.MustConnect(t, d.Endpoint())
	ctx := framework.Context(t)
	pod := newTestPodOn(t, &testPod{rt: c.Runtime, img: c.Image, daemon: d}, "imagevol", nil)
	pull := func(image string) string {
		ref, err := c.Image.PullImage(ctx, &runtimeapi.ImageSpec{Image: image}, nil, nil)
		if err != nil {
			t.Fatalf("PullImage %s: %v", image, err)
		}
		return ref
	}
	content, single := pull(framework.ImageVolumeContent), pull(framework.ImageVolumeSingle)
	imageMount := func(path, image, sub string) *runtimeapi.Mount {
		return &runtimeapi.Mount{ContainerPath: path, Image: &runtimeapi.ImageSpec{Image: image}, ImageSubPath: sub}
	}
	withMounts := func(name string, mounts ...*runtimeapi.Mount) *runtimeapi.ContainerConfig {
		cfg := sleeper(name, framework.ImageBusybox, nil)
		cfg.Mounts = mounts
		return cfg
	}

	// Refused requests first: each leaves no container, dir or mount (pod.refused checks),
	// and no hold on the image (RemoveImage works at the end).
	for _, tc := range []struct {
		name  string
		mount *runtimeapi.Mount
		code  codes.Code
		msg   string
	}{
		{"climbing", imageMount("/v", content, "../../../etc"), codes.InvalidArgument, ".."},
		{"climbing-inside", imageMount("/v", content, "data/../../etc"), codes.InvalidArgument, ".."},
		{"absolute", imageMount("/v", content, "/data"), codes.InvalidArgument, "relative"},
		{"missing", imageMount("/v", content, "data/nope"), codes.NotFound, "does not exist"},
		{"whited-out", imageMount("/v", content, "data/gone.txt"), codes.NotFound, "does not exist"},
		// /data/out -> /etc: the image has no /etc, and the node's is never followed to.
		{"symlink-out", imageMount("/v", content, "data/out"), codes.NotFound, "does not exist"},
		{"not-pulled", imageMount("/v", "sha256:"+strings.Repeat("0", 64), ""), codes.NotFound, "pull it first"},
		{"with-host-path", &runtimeapi.Mount{ContainerPath: "/v", HostPath: t.TempDir(), Image: &runtimeapi.ImageSpec{Image: content}}, codes.InvalidArgument, "mutually exclusive"},
	} {
		t.Run("refused-"+tc.name, func(t *testing.T) {
			pod.refused(t, withMounts("refused-"+tc.name, tc.mount), tc.code, tc.msg)
		})
	}

	cfg := withMounts("vol",
		imageMount("/vol", content, ""),
		imageMount("/sub", content, "data/sub"),
		imageMount("/abs", content, "data/abs"),
		imageMount("/escape", content, "data/escape"),
		imageMount("/file", content, "data/hello.txt"),
		imageMount("/single", single, ""),
	)
	// Readonly false is overridden: an image volume is read-only by definition.
	cfg.Mounts[0].Readonly = false
	id, err := pod.create(t, cfg)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	// The daemon dies right after the create answered; the next one finishes it.
	killAndRestart(t, d, pod, id)
	if err := pod.rt.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer after the restart: %v", err)
	}

	got := pod.sh(t, id, `cat /vol/data/hello.txt /vol/data/top.txt /sub/inner.txt /abs/inner.txt /escape/inner.txt /file /single/single.txt
test -e /vol/data/gone.txt && echo gone-is-there
touch /vol/new 2>/dev/null && echo wrote-vol
touch /sub/new 2>/dev/null && echo wrote-sub
/vol/data/run.sh 2>/dev/null; echo exec=$?
sh /vol/data/run.sh`)
	want := strings.Join([]string{framework.ImageVolumeHello, framework.ImageVolumeTop, framework.ImageVolumeInner,
		framework.ImageVolumeInner, framework.ImageVolumeInner, framework.ImageVolumeHello, framework.ImageVolumeSingleText,
		"exec=126", "ran"}, "\n")
	if got != want {
		t.Errorf("inside the container:\n%s\nwant (files of both layers, sub paths resolved in the image, whiteout applied, not writable, not executable but readable):\n%s", got, want)
	}

	// The kernel's view inside: each image volume's own mount flags.
	mounts := map[string][]string{}
	for line := range strings.Lines(pod.sh(t, id, "cat /proc/self/mountinfo")) {
		f := strings.Fields(line)
		if len(f) > 5 {
			mounts[f[4]] = strings.Split(f[5], ",")
		}
	}
	for _, p := range []string{"/vol", "/sub", "/abs", "/escape", "/file", "/single"} {
		opts, ok := mounts[p]
		if !ok {
			t.Errorf("no mount at %s inside the container", p)
			continue
		}
		for _, flag := range imageVolumeFlags {
			if !slices.Contains(opts, flag) {
				t.Errorf("mount %s inside the container has options %v, want %s", p, opts, flag)
			}
		}
	}

	// And on the node: one read-only overlay per image volume, with the same flags.
	ctrDir := filepath.Join(d.Root(), "containers", id)
	host := imageVolumeMounts(t, ctrDir)
	if len(host) != 6 {
		t.Errorf("%d image volume mounts under %s on the node, want 6: %v", len(host), ctrDir, host)
	}
	for _, m := range host {
		opts := strings.Split(m.Options, ",")
		if m.FSType != "overlay" || slices.ContainsFunc(imageVolumeFlags, func(f string) bool { return !slices.Contains(opts, f) }) {
			t.Errorf("node mount %s: %s %s, want an overlay with %v", m.Mountpoint, m.FSType, m.Options, imageVolumeFlags)
		}
		if strings.Contains(m.VFSOptions, "upperdir") {
			t.Errorf("node mount %s has an upper dir: %s", m.Mountpoint, m.VFSOptions)
		}
	}

	st := pod.status(t, id)
	var reported []string
	for _, m := range st.GetMounts() {
		if m.GetImage().GetImage() != "" {
			reported = append(reported, m.GetContainerPath()+"="+m.GetImage().GetImage()+":"+m.GetImageSubPath())
		}
	}
	if len(reported) != 6 || reported[1] != "/sub="+content+":data/sub" {
		t.Errorf("ContainerStatus reports image mounts %v, want the six with their image and sub path", reported)
	}

	// While the container exists, its images cannot be removed, by id or by tag.
	for _, ref := range []string{content, framework.ImageVolumeContent, single} {
		err := c.Image.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: ref})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), id) {
			t.Errorf("RemoveImage(%s) while mounted: %v (code %v), want FailedPrecondition naming the container", ref, err, status.Code(err))
		}
	}
	if st, err := c.Image.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: framework.ImageVolumeContent}, false); err != nil || st.GetImage() == nil {
		t.Errorf("ImageStatus after a refused RemoveImage = %v, %v; want the image", st, err)
	}

	if err := pod.rt.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := pod.rt.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { return len(imageVolumeMounts(t, d.Root())) == 0 }) {
		t.Errorf("image volume mounts left after RemoveContainer: %v", imageVolumeMounts(t, d.Root()))
	}
	for _, ref := range []string{content, single} {
		if err := c.Image.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: ref}); err != nil {
			t.Errorf("RemoveImage(%s) after the container was removed: %v", ref, err)
		}
		if st, err := c.Image.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false); err != nil || st.GetImage() != nil {
			t.Errorf("ImageStatus(%s) after RemoveImage = %v, %v; want none", ref, st.GetImage(), err)
		}
	}
}

// imageVolumeMounts lists the node's image volume overlays below dir.
func imageVolumeMounts(t *testing.T, dir string) []*mountinfo.Info {
	t.Helper()
	all, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []*mountinfo.Info
	for _, m := range all {
		if strings.Contains(m.Mountpoint, "/imagevols/") {
			out = append(out, m)
		}
	}
	return out
}
