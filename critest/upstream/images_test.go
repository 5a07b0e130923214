package main

import (
	"archive/tar"
	"errors"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// fakeStandin stands for the compiled program: the images only carry its bytes.
var fakeStandin = []byte("\x7fELF standin")

func buildForTest(t *testing.T) map[string]remote.Taggable {
	t.Helper()
	imgs, err := upstreamImages(fakeStandin)
	if err != nil {
		t.Fatalf("upstreamImages: %v", err)
	}
	return imgs
}

// image returns the host-platform image behind name (the only entry of an index).
func image(t *testing.T, imgs map[string]remote.Taggable, name string) v1.Image {
	t.Helper()
	switch x := imgs[name].(type) {
	case v1.Image:
		return x
	case v1.ImageIndex:
		m, err := x.IndexManifest()
		if err != nil {
			t.Fatalf("%s: index manifest: %v", name, err)
		}
		if len(m.Manifests) != 1 {
			t.Fatalf("%s: %d index entries, want 1", name, len(m.Manifests))
		}
		img, err := x.Image(m.Manifests[0].Digest)
		if err != nil {
			t.Fatalf("%s: index entry: %v", name, err)
		}
		return img
	case nil:
		t.Fatalf("no image %s", name)
	}
	t.Fatalf("%s: %T", name, imgs[name])
	return nil
}

func digest(t *testing.T, imgs map[string]remote.Taggable, name string) string {
	t.Helper()
	d, err := imgs[name].(interface{ Digest() (v1.Hash, error) }).Digest()
	if err != nil {
		t.Fatalf("%s: digest: %v", name, err)
	}
	return d.String()
}

// file returns the header and body of path in img's flattened filesystem.
func file(t *testing.T, img v1.Image, path string) (*tar.Header, string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("no %s in the image", path)
		}
		if err != nil {
			t.Fatalf("read image: %v", err)
		}
		if strings.TrimPrefix(h.Name, "/") == path {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("read %s: %v", path, err)
			}
			return h, string(b)
		}
	}
}

// TestUpstreamImageUsers checks each user image carries the USER upstream's build script gives
// it (the "should not have Uid|Username empty" spec reads them back through ImageStatus).
func TestUpstreamImageUsers(t *testing.T) {
	imgs := buildForTest(t)
	for name, want := range map[string]string{
		staging + "test-image-user-uid:latest":            "1002",
		staging + "test-image-user-username:latest":       "www-data",
		staging + "test-image-user-uid-group:latest":      "1003:1004",
		staging + "test-image-user-username-group:latest": "www-data:1004",
		imgPredefinedGroup:                                "1000",
	} {
		cf, err := image(t, imgs, name).ConfigFile()
		if err != nil {
			t.Fatalf("%s: config: %v", name, err)
		}
		if cf.Config.User != want {
			t.Errorf("%s: USER %q, want %q", name, cf.Config.User, want)
		}
	}
	_, group := file(t, image(t, imgs, imgPredefinedGroup), "etc/group")
	if !strings.Contains(group, "group-defined-in-image:x:50000:default-user\n") {
		t.Errorf("predefined-group /etc/group lacks default-user in group 50000:\n%s", group)
	}
}

// TestUpstreamImageTags checks which names are one image and which are distinct, as the
// listImage and removal specs count them.
func TestUpstreamImageTags(t *testing.T) {
	imgs := buildForTest(t)
	same := [][]string{
		{staging + "test-image-tags:1", staging + "test-image-tags:2", staging + "test-image-tags:3"},
		{imgPause, imgPauseOld},
	}
	for _, group := range same {
		for _, n := range group[1:] {
			if a, b := digest(t, imgs, group[0]), digest(t, imgs, n); a != b {
				t.Errorf("%s is %s, %s is %s: want one image", group[0], a, n, b)
			}
		}
	}
	distinct := []string{
		staging + "test-image-1:latest", staging + "test-image-2:latest", staging + "test-image-3:latest",
		staging + "test-image-latest:latest", staging + "test-image-tags:1",
		staging + "test-image-tag:test", staging + "test-image-tag:all",
	}
	seen := map[string]string{}
	for _, n := range distinct {
		d := digest(t, imgs, n)
		if other, ok := seen[d]; ok {
			t.Errorf("%s and %s are the same image %s", n, other, d)
		}
		seen[d] = n
	}
}

// TestUpstreamImagePrograms checks the stand-in is installed under the names that select
// what it does, setuid root in the nonewprivs image, and that hostnet-nginx listens on 12003.
func TestUpstreamImagePrograms(t *testing.T) {
	imgs := buildForTest(t)
	for _, x := range []struct {
		image, path string
		mode        int64
	}{
		{imgBusybox, "bin/ipcs", 0o755},
		{imgNginx, "usr/sbin/nginx", 0o755},
		{imgHostNetNginx, "usr/sbin/nginx", 0o755},
		{imgHttpd, "usr/local/apache2/bin/httpd", 0o755},
		{imgNoNewPrivs, "usr/local/bin/nnp", 0o4755},
		{imgPause, "pause", 0o755},
	} {
		h, body := file(t, image(t, imgs, x.image), x.path)
		if body != string(fakeStandin) {
			t.Errorf("%s: /%s is not the stand-in", x.image, x.path)
		}
		if h.Mode&0o7777 != x.mode || h.Uid != 0 {
			t.Errorf("%s: /%s mode %o uid %d, want %o uid 0", x.image, x.path, h.Mode&0o7777, h.Uid, x.mode)
		}
	}
	for name, want := range map[string]string{imgNginx: "listen       80;", imgHostNetNginx: "listen       12003;"} {
		if _, conf := file(t, image(t, imgs, name), "etc/nginx/conf.d/default.conf"); !strings.Contains(conf, want) {
			t.Errorf("%s: default.conf lacks %q:\n%s", name, want, conf)
		}
	}
}
