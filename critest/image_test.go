package critest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// neverPulled names an image no test pulls (and the registry does not hold).
const neverPulled = "registry.k8s.io/e2e-test-images/never-pulled:0.0"

// repoOf is the repository part of a well-known tagged name ("registry.k8s.io/x/y:1" →
// "registry.k8s.io/x/y").
func repoOf(t testing.TB, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r.Context().Name()
}

// servedDigest is the digest the test registry answers for a well-known name: the manifest's,
// or the index's for a multi-platform name.
func servedDigest(t testing.TB, reg *framework.Registry, wellKnown string) string {
	t.Helper()
	ref, err := name.ParseReference(reg.Ref(wellKnown), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref, reg.RemoteOptions(t.Context())...)
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return desc.Digest.String()
}

// platformConfigs returns, for a multi-platform well-known name, the config digest (the CRI
// image id) of the host platform's image and of the other platform's.
func platformConfigs(t testing.TB, reg *framework.Registry, wellKnown string) (host, other string) {
	t.Helper()
	ref, err := name.ParseReference(reg.Ref(wellKnown), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref, reg.RemoteOptions(t.Context())...)
	if err != nil {
		t.Fatalf("index %s: %v", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		if m.Platform != nil && m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH {
			host = cfg.String()
		} else {
			other = cfg.String()
		}
	}
	if host == "" || other == "" {
		t.Fatalf("index %s: host platform image %q, other %q", wellKnown, host, other)
	}
	return host, other
}

// imageStatus returns the image ref names, or nil.
func imageStatus(t testing.TB, is internalapi.ImageManagerService, ref string) *runtimeapi.Image {
	t.Helper()
	resp, err := is.ImageStatus(framework.Context(t), &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil {
		t.Fatalf("ImageStatus %s: %v", ref, err)
	}
	return resp.GetImage()
}

// pullImage pulls ref, failing t on error, and returns the image ref.
func pullImage(t testing.TB, is internalapi.ImageManagerService, ref string, auth *runtimeapi.AuthConfig) string {
	t.Helper()
	id, err := is.PullImage(framework.Context(t), &runtimeapi.ImageSpec{Image: ref}, auth, nil)
	if err != nil {
		t.Fatalf("PullImage %s: %v", ref, err)
	}
	if id == "" {
		t.Fatalf("PullImage %s returned an empty image ref", ref)
	}
	return id
}

// removeImageAtEnd removes the image ref names (with all its names) in cleanup.
func removeImageAtEnd(t testing.TB, is internalapi.ImageManagerService, ref string) {
	t.Cleanup(func() {
		if err := is.RemoveImage(framework.Quiet(context.Background()), &runtimeapi.ImageSpec{Image: ref}); err != nil {
			t.Errorf("cleanup: RemoveImage %s: %v", ref, err)
		}
	})
}

// listedImage returns the ListImages entry with id, or nil.
func listedImage(t testing.TB, is internalapi.ImageManagerService, id string) *runtimeapi.Image {
	t.Helper()
	imgs, err := is.ListImages(framework.Context(t), nil)
	if err != nil {
		t.Fatalf("ListImages: %v", err)
	}
	var found *runtimeapi.Image
	for _, img := range imgs {
		if img.Id == id {
			if found != nil {
				t.Errorf("ListImages lists id %s twice", id)
			}
			found = img
		}
	}
	return found
}

// TestImagePullReferenceForms: every form a kubelet sends (short Docker Hub names with and
// without tag, a full name, a registry.k8s.io name, repo@digest and repo:tag@digest) pulls
// through the mirror; the image ref PullImage returns is the id ImageStatus and ListImages
// report, and the normalised tag and the digest the registry served are among its names.
func TestImagePullReferenceForms(t *testing.T) {
	env := framework.Shared(t)
	is := env.Image(t)
	bbDigest := servedDigest(t, env.Registry, framework.ImageBusybox)
	bbRepo := repoOf(t, framework.ImageBusybox)
	for _, tc := range []struct {
		ref       string
		tag       string // normalised RepoTags entry, "" for digest references
		repoDigst string // RepoDigests entry
	}{
		{"busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox@" + servedDigest(t, env.Registry, framework.ImageBusyboxLatest)},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "docker.io/library/busybox@" + servedDigest(t, env.Registry, framework.ImageBusybox136)},
		{"docker.io/library/busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox@" + servedDigest(t, env.Registry, framework.ImageBusyboxLatest)},
		{framework.ImageBusybox, framework.ImageBusybox, bbRepo + "@" + bbDigest},
		{bbRepo + "@" + bbDigest, "", bbRepo + "@" + bbDigest},
		{framework.ImageBusybox + "@" + bbDigest, "", bbRepo + "@" + bbDigest},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			id := pullImage(t, is, tc.ref, nil)
			removeImageAtEnd(t, is, id)
			if !strings.HasPrefix(id, "sha256:") {
				t.Errorf("image ref %q is not a sha256 id", id)
			}
			st := imageStatus(t, is, tc.ref)
			if st == nil {
				t.Fatalf("ImageStatus %s: no image after the pull", tc.ref)
			}
			if st.Id != id {
				t.Errorf("ImageStatus id %s, PullImage returned %s", st.Id, id)
			}
			if tc.tag != "" && !slices.Contains(st.RepoTags, tc.tag) {
				t.Errorf("RepoTags %v lack %s", st.RepoTags, tc.tag)
			}
			if !slices.Contains(st.RepoDigests, tc.repoDigst) {
				t.Errorf("RepoDigests %v lack %s", st.RepoDigests, tc.repoDigst)
			}
			if st.Size == 0 {
				t.Errorf("size 0")
			}
			listed := listedImage(t, is, id)
			if listed == nil {
				t.Fatalf("ListImages does not list %s", id)
			}
			if tc.tag != "" && !slices.Contains(listed.RepoTags, tc.tag) {
				t.Errorf("listed RepoTags %v lack %s", listed.RepoTags, tc.tag)
			}
		})
	}
}

// TestImageMultiPlatform: a Docker manifest list and an OCI index (each holding the host's
// platform and another one) resolve to the host platform's image.
func TestImageMultiPlatform(t *testing.T) {
	env := framework.Shared(t)
	is := env.Image(t)
	for _, ref := range []string{framework.ImageBusyboxLatest, framework.ImageBusybox136} {
		t.Run(ref, func(t *testing.T) {
			host, other := platformConfigs(t, env.Registry, ref)
			id := pullImage(t, is, ref, nil)
			removeImageAtEnd(t, is, id)
			if id != host {
				t.Errorf("image %s, want the %s/%s image %s (the other platform's is %s)", id, runtime.GOOS, runtime.GOARCH, host, other)
			}
		})
	}
}

// TestImageStatusLookups: ImageStatus finds an image by id, tag, repo@digest and id prefix
// (with and without "sha256:"); an unknown image is no image and no error; verbose info is
// there only when asked for.
func TestImageStatusLookups(t *testing.T) {
	env := framework.Shared(t)
	is := env.Image(t)
	id := pullImage(t, is, framework.ImageBusybox, nil)
	removeImageAtEnd(t, is, id)
	hex := strings.TrimPrefix(id, "sha256:")
	for _, ref := range []string{
		id,
		hex,
		framework.ImageBusybox,
		repoOf(t, framework.ImageBusybox) + "@" + servedDigest(t, env.Registry, framework.ImageBusybox),
		hex[:12],
		"sha256:" + hex[:12],
	} {
		t.Run(ref, func(t *testing.T) {
			st := imageStatus(t, is, ref)
			if st == nil || st.Id != id {
				t.Errorf("ImageStatus %s: %v, want image %s", ref, st, id)
			}
		})
	}
	for _, ref := range []string{neverPulled, "sha256:" + strings.Repeat("0", 64), "busybox:never-pulled"} {
		t.Run("unknown "+ref, func(t *testing.T) {
			resp, err := is.ImageStatus(framework.Context(t), &runtimeapi.ImageSpec{Image: ref}, true)
			if err != nil || resp.GetImage() != nil {
				t.Errorf("ImageStatus of an unknown image: %v, %v; want no image and no error", resp.GetImage(), err)
			}
		})
	}
	t.Run("verbose", func(t *testing.T) {
		resp, err := is.ImageStatus(framework.Context(t), &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetInfo()) == 0 {
			t.Fatalf("verbose ImageStatus has no info")
		}
		for k, v := range resp.GetInfo() {
			if v == "" || !json.Valid([]byte(v)) {
				t.Errorf("info[%q] = %q, want JSON", k, v)
			}
		}
		quiet, err := is.ImageStatus(framework.Context(t), &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, false)
		if err != nil || len(quiet.GetInfo()) != 0 {
			t.Errorf("non-verbose ImageStatus: info %v, %v; want none", quiet.GetInfo(), err)
		}
	})
}

// TestImageStatusUser: a numeric image user is reported as Uid, a named one as Username.
func TestImageStatusUser(t *testing.T) {
	env := framework.Shared(t)
	is := env.Image(t)
	for _, tc := range []struct {
		ref      string
		uid      int64 // -1: none
		username string
	}{
		{framework.ImageUserUID, framework.UserUID, ""},
		{framework.ImageUserUsername, -1, "www-data"},
		{framework.ImageBusybox, -1, ""},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			id := pullImage(t, is, tc.ref, nil)
			removeImageAtEnd(t, is, id)
			st := imageStatus(t, is, tc.ref)
			if st == nil {
				t.Fatal("no image after the pull")
			}
			switch {
			case tc.uid < 0 && st.Uid != nil:
				t.Errorf("Uid %d, want none", st.Uid.Value)
			case tc.uid >= 0 && (st.Uid == nil || st.Uid.Value != tc.uid):
				t.Errorf("Uid %v, want %d", st.Uid, tc.uid)
			}
			if st.Username != tc.username {
				t.Errorf("Username %q, want %q", st.Username, tc.username)
			}
		})
	}
}

// TestImagePullAuth: from a registry demanding basic auth, a pull with the right credentials
// (as username/password or as the base64 auth field) works; none or wrong ones fail with an
// error that says authentication failed and store nothing; the credentials never reach the
// daemon's log.
func TestImagePullAuth(t *testing.T) {
	framework.RequirePeapod(t)
	const user = "critest-user"
	pass := "pw-" + randomSuffix() + randomSuffix()
	reg := framework.StartRegistry(t, framework.WithBasicAuth(user, pass))
	d := framework.StartDaemon(t, framework.WithConfig(fmt.Sprintf("[registries.%q]\ninsecure = true\n", reg.Host())))
	c := framework.MustConnect(t, d.Endpoint())
	ctx := framework.Context(t)
	image := reg.Host() + "/e2e-test-images/busybox:1.29-2"
	b64 := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))

	for _, tc := range []struct {
		name string
		auth *runtimeapi.AuthConfig
	}{
		{"no credentials", nil},
		{"wrong password", &runtimeapi.AuthConfig{Username: user, Password: "wrong-" + pass}},
		{"wrong user", &runtimeapi.AuthConfig{Username: "someone-else", Password: pass}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Image.PullImage(ctx, &runtimeapi.ImageSpec{Image: image}, tc.auth, nil)
			if err == nil {
				t.Fatal("pull succeeded")
			}
			t.Logf("refused: %v", err)
			switch code := status.Code(err); code {
			case codes.Unauthenticated, codes.PermissionDenied, codes.Unknown:
			default:
				t.Errorf("pull: %v (code %v), want Unauthenticated, PermissionDenied or Unknown", err, code)
			}
			if msg := strings.ToLower(status.Convert(err).Message()); !strings.Contains(msg, "auth") {
				t.Errorf("error %q does not say authentication failed", err)
			}
			if imageStatus(t, c.Image, image) != nil {
				t.Errorf("a refused pull stored the image")
			}
		})
	}
	for _, tc := range []struct {
		name string
		auth *runtimeapi.AuthConfig
	}{
		{"username and password", &runtimeapi.AuthConfig{Username: user, Password: pass}},
		{"auth field", &runtimeapi.AuthConfig{Auth: b64}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := pullImage(t, c.Image, image, tc.auth)
			if st := imageStatus(t, c.Image, image); st == nil || st.Id != id {
				t.Errorf("after the pull: %v, want image %s", st, id)
			}
			if err := c.Image.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: id}); err != nil {
				t.Fatal(err)
			}
		})
	}
	if n := reg.CountRequests(func(q framework.Request) bool { return q.User == user && q.Status == 200 }); n == 0 {
		t.Errorf("the registry saw no authenticated request")
	}
	log := d.Stderr()
	for _, secret := range []string{pass, b64, base64.StdEncoding.EncodeToString([]byte(user + ":wrong-" + pass))} {
		if strings.Contains(log, secret) {
			t.Errorf("the daemon's log contains a credential (%q)", secret)
		}
	}
}

// TestImageTagsShareID: three tags of one image are one image: one id, every tag among its
// RepoTags, one ListImages entry.
func TestImageTagsShareID(t *testing.T) {
	env := framework.Shared(t)
	is := env.Image(t)
	var ids []string
	for _, ref := range []string{framework.ImageTags1, framework.ImageTags2, framework.ImageTags3} {
		ids = append(ids, pullImage(t, is, ref, nil))
	}
	removeImageAtEnd(t, is, ids[0])
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("tags of one image got ids %v", ids)
	}
	st := imageStatus(t, is, framework.ImageTags2)
	if st == nil {
		t.Fatal("no image")
	}
	for _, tag := range []string{framework.ImageTags1, framework.ImageTags2, framework.ImageTags3} {
		if !slices.Contains(st.RepoTags, tag) {
			t.Errorf("RepoTags %v lack %s", st.RepoTags, tag)
		}
	}
	if listed := listedImage(t, is, ids[0]); listed == nil || len(listed.RepoTags) != len(st.RepoTags) {
		t.Errorf("ListImages entry %v, want RepoTags %v", listed, st.RepoTags)
	}
}

// TestImageConcurrentPulls: ten concurrent pulls of an image not yet stored all succeed with
// the same id and fetch each blob from the registry once.
func TestImageConcurrentPulls(t *testing.T) {
	env := framework.Shared(t)
	is := env.Image(t)
	ctx := framework.Context(t)
	if err := is.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: framework.ImageTags1}); err != nil {
		t.Fatal(err)
	}
	env.Registry.ResetRequests()
	const n = 10
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ids[i], errs[i] = is.PullImage(ctx, &runtimeapi.ImageSpec{Image: framework.ImageTags1}, nil, nil)
		})
	}
	wg.Wait()
	removeImageAtEnd(t, is, framework.ImageTags1)
	for i := range n {
		if errs[i] != nil {
			t.Errorf("pull %d: %v", i, errs[i])
		} else if ids[i] != ids[0] {
			t.Errorf("pull %d: id %s, pull 0: %s", i, ids[i], ids[0])
		}
	}
	gets := env.Registry.BlobGetsByDigest()
	t.Logf("blob GETs: %v", gets)
	if len(gets) == 0 {
		t.Errorf("no blob was fetched for an image that was not stored")
	}
	for d, k := range gets {
		if k > 1 {
			t.Errorf("blob %s fetched %d times by %d concurrent pulls", d, k, n)
		}
	}
}

// TestImageRemove: RemoveImage by a tag removes the image with all its tags; by id and by
// repo@digest remove it too; an unknown image, and removing twice, are fine.
func TestImageRemove(t *testing.T) {
	env := framework.Shared(t)
	is := env.Image(t)
	ctx := framework.Context(t)
	remove := func(t *testing.T, ref string) {
		t.Helper()
		if err := is.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: ref}); err != nil {
			t.Fatalf("RemoveImage %s: %v", ref, err)
		}
	}
	gone := func(t *testing.T, id string, names ...string) {
		t.Helper()
		for _, n := range append([]string{id}, names...) {
			if st := imageStatus(t, is, n); st != nil {
				t.Errorf("ImageStatus %s after remove: %v", n, st)
			}
		}
		if listedImage(t, is, id) != nil {
			t.Errorf("ListImages still lists %s", id)
		}
	}
	t.Run("by tag", func(t *testing.T) {
		tags := []string{framework.ImageTags1, framework.ImageTags2, framework.ImageTags3}
		var id string
		for _, tag := range tags {
			id = pullImage(t, is, tag, nil)
		}
		remove(t, framework.ImageTags2)
		gone(t, id, tags...)
	})
	t.Run("by id", func(t *testing.T) {
		id := pullImage(t, is, framework.ImageUserUsername, nil)
		remove(t, id)
		gone(t, id, framework.ImageUserUsername)
	})
	t.Run("by digest", func(t *testing.T) {
		id := pullImage(t, is, framework.ImageUserUIDGroup, nil)
		byDigest := repoOf(t, framework.ImageUserUIDGroup) + "@" + servedDigest(t, env.Registry, framework.ImageUserUIDGroup)
		remove(t, byDigest)
		gone(t, id, framework.ImageUserUIDGroup, byDigest)
	})
	t.Run("unknown", func(t *testing.T) {
		remove(t, neverPulled)
		remove(t, "sha256:"+strings.Repeat("0", 64))
	})
	t.Run("twice", func(t *testing.T) {
		id := pullImage(t, is, framework.ImageWhiteout, nil)
		remove(t, framework.ImageWhiteout)
		remove(t, framework.ImageWhiteout)
		remove(t, id)
		gone(t, id, framework.ImageWhiteout)
	})
}

// TestImageFsInfo: after a pull, ImageFsInfo reports the image filesystem with its
// mountpoint and non-zero used bytes and inodes.
func TestImageFsInfo(t *testing.T) {
	env := framework.Shared(t)
	is := env.Image(t)
	id := pullImage(t, is, framework.ImageBusybox, nil)
	removeImageAtEnd(t, is, id)
	resp, err := is.ImageFsInfo(framework.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	fss := resp.GetImageFilesystems()
	if len(fss) == 0 {
		t.Fatalf("no image filesystems: %v", resp)
	}
	fs := fss[0]
	if fs.GetFsId().GetMountpoint() == "" {
		t.Errorf("image filesystem without a mountpoint: %v", fs)
	}
	if fs.GetUsedBytes().GetValue() == 0 {
		t.Errorf("image filesystem used bytes 0 after a pull: %v", fs)
	}
	if fs.GetInodesUsed().GetValue() == 0 {
		t.Errorf("image filesystem inodes used 0 after a pull: %v", fs)
	}
	if fs.GetTimestamp() == 0 {
		t.Errorf("no timestamp: %v", fs)
	}
	if d := env.Daemon; d != nil && !strings.HasPrefix(fs.GetFsId().GetMountpoint(), d.Root()) {
		t.Errorf("mountpoint %s is not under the daemon's root %s", fs.GetFsId().GetMountpoint(), d.Root())
	}
}

// TestImagePullErrors: an unparsable reference is InvalidArgument; a tag or repository the
// registry does not have is NotFound; neither stores anything.
func TestImagePullErrors(t *testing.T) {
	env := framework.Shared(t)
	is := env.Image(t)
	for _, tc := range []struct {
		ref  string
		code codes.Code
	}{
		{"Invalid//Reference::", codes.InvalidArgument},
		{"UPPERCASE/busybox:1", codes.InvalidArgument},
		{"busybox@sha256:not-a-digest", codes.InvalidArgument},
		{"registry.k8s.io/e2e-test-images/busybox:no-such-tag-" + randomSuffix(), codes.NotFound},
		{"registry.k8s.io/e2e-test-images/no-such-repo-" + randomSuffix() + ":1.0", codes.NotFound},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(framework.Context(t), time.Minute)
			defer cancel()
			start := time.Now()
			_, err := is.PullImage(ctx, &runtimeapi.ImageSpec{Image: tc.ref}, nil, nil)
			wantCode(t, "PullImage", err, tc.code)
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("the refusal took %v", d)
			}
			if tc.code == codes.NotFound {
				if st := imageStatus(t, is, tc.ref); st != nil {
					t.Errorf("a failed pull stored %v", st)
				}
			}
		})
	}
}

// TestImagePullInterrupted: an image is not listed while its pull is in flight; a daemon
// killed mid-pull comes back without the image, and the next pull of it works.
func TestImagePullInterrupted(t *testing.T) {
	framework.RequirePeapod(t)
	reg := framework.StartRegistry(t)
	d := framework.StartDaemon(t, framework.WithRegistry(reg))
	c := framework.MustConnect(t, d.Endpoint())
	ctx := framework.Context(t)

	release := reg.HoldBlobs()
	t.Cleanup(release)
	pulled := make(chan error, 1)
	go func() {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		_, err := c.Image.PullImage(pctx, &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, nil, nil)
		pulled <- err
	}()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := reg.WaitHeld(wctx, 1); err != nil {
		t.Fatal(err)
	}
	if st := imageStatus(t, c.Image, framework.ImageBusybox); st != nil {
		t.Errorf("ImageStatus while the pull is in flight: %v, want no image", st)
	}
	if imgs, err := c.Image.ListImages(ctx, nil); err != nil || len(imgs) != 0 {
		t.Errorf("ListImages while the pull is in flight: %v, %v; want nothing", imgs, err)
	}

	if err := d.Kill(); err != nil {
		t.Fatal(err)
	}
	release()
	if err := <-pulled; err == nil {
		t.Errorf("the pull succeeded although the daemon was killed during it")
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c2 := framework.MustConnect(t, d.Endpoint())
	if imgs, err := c2.Image.ListImages(ctx, nil); err != nil || len(imgs) != 0 {
		t.Errorf("ListImages after the restart: %v, %v; want nothing", imgs, err)
	}
	if st := imageStatus(t, c2.Image, framework.ImageBusybox); st != nil {
		t.Errorf("ImageStatus after the restart: %v, want no image", st)
	}
	id := pullImage(t, c2.Image, framework.ImageBusybox, nil)
	if st := imageStatus(t, c2.Image, framework.ImageBusybox); st == nil || st.Id != id {
		t.Errorf("after a good pull: %v, want image %s", st, id)
	}
	if err := c2.Image.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: id}); err != nil {
		t.Error(err)
	}
}

// TestImagePinned: an image named in pinned_images is reported pinned by ImageStatus and
// ListImages; others are not.
func TestImagePinned(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t, framework.WithConfig(fmt.Sprintf("pinned_images = [%q]\n", framework.ImageBusybox)))
	c := framework.MustConnect(t, d.Endpoint())
	pinned := pullImage(t, c.Image, framework.ImageBusybox, nil)
	other := pullImage(t, c.Image, framework.ImageTags1, nil)
	if pinned == other {
		t.Fatalf("the two images share id %s", pinned)
	}
	for _, tc := range []struct {
		ref, id string
		want    bool
	}{{framework.ImageBusybox, pinned, true}, {framework.ImageTags1, other, false}} {
		if st := imageStatus(t, c.Image, tc.ref); st == nil || st.Pinned != tc.want {
			t.Errorf("ImageStatus %s: %v, want pinned %v", tc.ref, st, tc.want)
		}
		if l := listedImage(t, c.Image, tc.id); l == nil || l.Pinned != tc.want {
			t.Errorf("ListImages %s: %v, want pinned %v", tc.ref, l, tc.want)
		}
	}
}
