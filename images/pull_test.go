package images

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

func TestPullEveryReferenceForm(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	latest := simpleImage(t, "latest")
	v136 := simpleImage(t, "1.36")
	pause := simpleImage(t, "pause")
	e2e := simpleImage(t, "e2e")
	tr.push(t, "library/busybox:latest", latest)
	v136Digest := tr.push(t, "library/busybox:1.36", v136)
	tr.push(t, "pause:3.10", pause)
	tr.push(t, "e2e-test-images/busybox:1.36.1-1", e2e)
	direct := simpleImage(t, "direct")
	directDigest := tr.push(t, "own/app:v1", direct)

	// A multi-platform index: this machine's image beside another architecture's.
	other := "s390x"
	if runtime.GOARCH == other {
		other = "ppc64le"
	}
	mine, theirs := simpleImage(t, "mine"), imageFor(t, other, v1.Config{}, layerOf(t, entry{name: "other", body: "x"}))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: theirs, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: mine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
	)
	idxDigest := tr.pushIndex(t, "library/multi:1", idx)

	s := newService(t, Config{Registries: mirrorAll(tr)})
	tests := []struct {
		ref      string
		id       string
		tags     []string
		digestOf string // the RepoDigests entry expected (repo@digest)
	}{
		{"busybox", imageID(t, latest), []string{"docker.io/library/busybox:latest"}, ""},
		{"busybox:1.36", imageID(t, v136), []string{"docker.io/library/busybox:1.36"}, "docker.io/library/busybox@" + v136Digest},
		{"docker.io/library/busybox", imageID(t, latest), []string{"docker.io/library/busybox:latest"}, ""},
		{"registry.k8s.io/pause:3.10", imageID(t, pause), []string{"registry.k8s.io/pause:3.10"}, ""},
		{"registry.k8s.io/e2e-test-images/busybox:1.36.1-1", imageID(t, e2e), []string{"registry.k8s.io/e2e-test-images/busybox:1.36.1-1"}, ""},
		{"docker.io/library/busybox@" + v136Digest, imageID(t, v136), []string{"docker.io/library/busybox:1.36"}, "docker.io/library/busybox@" + v136Digest},
		{"busybox:1.36@" + v136Digest, imageID(t, v136), []string{"docker.io/library/busybox:1.36"}, "docker.io/library/busybox@" + v136Digest},
		{tr.host + "/own/app:v1", imageID(t, direct), []string{tr.host + "/own/app:v1"}, tr.host + "/own/app@" + directDigest},
		{"multi:1", imageID(t, mine), []string{"docker.io/library/multi:1"}, "docker.io/library/multi@" + idxDigest},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			img, err := s.Pull(t.Context(), tc.ref, Auth{})
			if err != nil {
				t.Fatal(err)
			}
			if img.ID != tc.id {
				t.Fatalf("id %s, want %s", img.ID, tc.id)
			}
			if !slices.Equal(img.RepoTags, tc.tags) {
				t.Errorf("RepoTags %v, want %v", img.RepoTags, tc.tags)
			}
			if tc.digestOf != "" && !slices.Contains(img.RepoDigests, tc.digestOf) {
				t.Errorf("RepoDigests %v lack %s", img.RepoDigests, tc.digestOf)
			}
			// The reference pulled finds the image, as do its id, a prefix of it and its
			// digest names.
			for _, ref := range append([]string{tc.ref, img.ID, img.ID[7:19], img.ID[:19]}, img.RepoDigests...) {
				got, err := s.Status(t.Context(), ref)
				if err != nil || got.ID != img.ID {
					t.Errorf("Status(%q) = %v, %v; want %s", ref, got, err, img.ID)
				}
			}
			paths, err := s.LayerPaths(t.Context(), img.ID)
			if err != nil || len(paths) == 0 {
				t.Fatalf("LayerPaths = %v, %v", paths, err)
			}
		})
	}
	if _, err := s.Status(t.Context(), "busybox:9.99"); !errdefs.IsNotFound(err) {
		t.Errorf("Status of an image never pulled = %v, want not found", err)
	}
	list, err := s.List(t.Context(), "")
	if err != nil || len(list) != 6 {
		t.Fatalf("List = %d images, %v; want 6", len(list), err)
	}
	if got, _ := s.List(t.Context(), "registry.k8s.io/pause:3.10"); len(got) != 1 || got[0].ID != imageID(t, pause) {
		t.Errorf("List with filter = %v", got)
	}
	if got, _ := s.List(t.Context(), "nothing:here"); len(got) != 0 {
		t.Errorf("List with a filter naming nothing = %v", got)
	}
}

func TestPullImageMetadata(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	cfg := v1.Config{
		User: "1234:5678", Env: []string{"PATH=/bin", "A=b"}, Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "true"},
		WorkingDir: "/work", StopSignal: "SIGQUIT", Labels: map[string]string{"l": "v"},
		Volumes: map[string]struct{}{"/data": {}}, ExposedPorts: map[string]struct{}{"80/tcp": {}},
	}
	l1, l2 := layerOf(t, entry{name: "a", body: "aa"}), layerOf(t, entry{name: "b", body: "bbbb"})
	img := imageOf(t, cfg, l1, l2)
	img = mutate.Annotations(img, map[string]string{"org.example/a": "1"}).(v1.Image)
	tr.push(t, "meta:1", img)
	tr.push(t, "named:1", imageOf(t, v1.Config{User: "daemon"}, l1))

	s := newService(t, Config{Pinned: []string{tr.host + "/meta:1"}})
	got, err := s.Pull(t.Context(), tr.host+"/meta:1", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if got.UID == nil || *got.UID != 1234 || got.Username != "" {
		t.Errorf("UID %v Username %q, want 1234 and none", got.UID, got.Username)
	}
	c := got.Config
	if c.User != "1234:5678" || !slices.Equal(c.Env, cfg.Env) || !slices.Equal(c.Entrypoint, cfg.Entrypoint) ||
		!slices.Equal(c.Cmd, cfg.Cmd) || c.WorkingDir != "/work" || c.StopSignal != "SIGQUIT" || c.Labels["l"] != "v" ||
		len(c.Volumes) != 1 || len(c.ExposedPorts) != 1 {
		t.Errorf("Config = %+v", c)
	}
	if got.Platform.OS != "linux" || got.Platform.Architecture != runtime.GOARCH {
		t.Errorf("Platform = %+v", got.Platform)
	}
	if got.Annotations["org.example/a"] != "1" || !got.Pinned {
		t.Errorf("Annotations %v Pinned %v", got.Annotations, got.Pinned)
	}
	var want uint64
	m, _ := img.Manifest()
	want = uint64(m.Config.Size)
	for _, l := range m.Layers {
		want += uint64(l.Size)
	}
	if got.Size != want {
		t.Errorf("Size %d, want %d (config + compressed layers)", got.Size, want)
	}
	named, err := s.Pull(t.Context(), tr.host+"/named:1", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if named.UID != nil || named.Username != "daemon" || named.Pinned {
		t.Errorf("UID %v Username %q Pinned %v, want nil, daemon, false", named.UID, named.Username, named.Pinned)
	}
	fs, err := s.FsInfo(t.Context())
	if err != nil || fs.UsedBytes == 0 || fs.InodesUsed == 0 || fs.Mountpoint != filepath.Join(s.cfg.Root, "images") {
		t.Errorf("FsInfo = %+v, %v", fs, err)
	}
}

func TestPullErrors(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	tr.push(t, "exists:1", simpleImage(t, "1"))
	only := imageFor(t, "s390x", v1.Config{}, layerOf(t, entry{name: "x"}))
	if runtime.GOARCH == "s390x" {
		only = imageFor(t, "ppc64le", v1.Config{}, layerOf(t, entry{name: "x"}))
	}
	tr.pushIndex(t, "foreign:1", mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add: only, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}},
	}))
	tr.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/v2/forbidden/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`)
			return true
		}
		return false
	})
	s := newService(t, Config{})
	tests := []struct {
		ref   string
		check func(error) bool
		text  string
	}{
		{tr.host + "/exists:2", errdefs.IsNotFound, "MANIFEST_UNKNOWN"},
		{tr.host + "/missing:1", errdefs.IsNotFound, ""},
		{tr.host + "/exists@" + someDigest, errdefs.IsNotFound, ""},
		{tr.host + "/foreign:1", errdefs.IsNotFound, "linux/" + runtime.GOARCH},
		{tr.host + "/forbidden:1", errdefs.IsPermissionDenied, "requested access to the resource is denied"},
		{"UPPER/case", errdefs.IsInvalidArgument, "UPPER/case"},
		{someDigest, errdefs.IsInvalidArgument, someDigest},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			_, err := s.Pull(t.Context(), tc.ref, Auth{})
			if err == nil || !tc.check(err) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Pull(%q) = %v; want the right class and %q in the message", tc.ref, err, tc.text)
			}
		})
	}
	if list, _ := s.List(t.Context(), ""); len(list) != 0 {
		t.Errorf("failed pulls stored %d images", len(list))
	}
}

// authRegistry wraps tr: requests need basic auth user:pass or the registry token (or, with
// bearer, a token from its token endpoint, obtained with user:pass or the refresh token
// "identity").
func authRegistry(t *testing.T, tr *testRegistry, bearer bool) {
	const token = "good-token"
	tr.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/token" {
			u, p, ok := r.BasicAuth()
			_ = r.ParseForm()
			if (ok && u == "user" && p == "pass") || (r.Method == http.MethodPost && r.Form.Get("refresh_token") == "identity") {
				fmt.Fprintf(w, `{"token":%q,"access_token":%q}`, token, token)
				return true
			}
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`, http.StatusUnauthorized)
			return true
		}
		if bearer {
			if r.Header.Get("Authorization") == "Bearer "+token {
				return false
			}
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, tr.srv.URL))
		} else {
			if u, p, ok := r.BasicAuth(); (ok && u == "user" && p == "pass") || r.Header.Get("Authorization") == "Bearer "+token {
				return false
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		return true
	})
}

func TestPullAuth(t *testing.T) {
	testutil.RequireRoot(t)
	b64 := base64.StdEncoding.EncodeToString([]byte("user:pass"))
	for _, bearer := range []bool{false, true} {
		t.Run(fmt.Sprintf("bearer=%v", bearer), func(t *testing.T) {
			tr := newTestRegistry(t)
			img := simpleImage(t, "private")
			tr.push(t, "private:1", img)
			authRegistry(t, tr, bearer)
			ref := tr.host + "/private:1"
			tests := []struct {
				name string
				auth Auth
				ok   bool
			}{
				{"none", Auth{}, false},
				{"wrong password", Auth{Username: "user", Password: "nope"}, false},
				{"for another server", Auth{Username: "user", Password: "pass", ServerAddress: "elsewhere.example"}, false},
				{"username and password", Auth{Username: "user", Password: "pass"}, true},
				{"base64 auth", Auth{Auth: b64, ServerAddress: tr.host}, true},
				{"identity token", Auth{IdentityToken: "identity"}, bearer},
				{"registry token", Auth{RegistryToken: "good-token"}, true},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					s := newService(t, Config{})
					got, err := s.Pull(t.Context(), ref, tc.auth)
					if tc.ok {
						if err != nil || got.ID != imageID(t, img) {
							t.Fatalf("Pull = %v, %v", got.ID, err)
						}
						return
					}
					if !errdefs.IsUnauthorized(err) || !strings.Contains(err.Error(), "UNAUTHORIZED") {
						t.Fatalf("Pull = %v; want an unauthenticated error carrying the registry's message", err)
					}
					for _, secret := range []string{"nope", "pass", b64, "identity"} {
						if strings.Contains(err.Error(), secret) {
							t.Fatalf("error %q shows a credential", err)
						}
					}
				})
			}
		})
	}
}

func TestPullThroughMirror(t *testing.T) {
	testutil.RequireRoot(t)
	good := newTestRegistry(t)
	img := simpleImage(t, "mirrored")
	good.push(t, "e2e-test-images/busybox:1.36", img)
	empty := newTestRegistry(t) // has nothing: the first mirror fails with not found
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	dead.Close() // nothing listens: connection refused

	s := newService(t, Config{Registries: map[string]RegistryConfig{
		"registry.k8s.io": {Mirrors: []string{deadURL, empty.srv.URL, good.srv.URL + "/v2/"}},
	}})
	got, err := s.Pull(t.Context(), "registry.k8s.io/e2e-test-images/busybox:1.36", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != imageID(t, img) || !slices.Equal(got.RepoTags, []string{"registry.k8s.io/e2e-test-images/busybox:1.36"}) {
		t.Fatalf("got %s %v", got.ID, got.RepoTags)
	}
	if n := len(good.gets()); n != 3 {
		t.Errorf("the good mirror served %d blobs, want 3 (config and two layers)", n)
	}

	// Mirrors must be URLs.
	for _, bad := range []string{"127.0.0.1:5000", "ftp://x", "http://x/prefix"} {
		db := s.db
		if _, err := New(t.Context(), Config{Root: t.TempDir(), Registries: map[string]RegistryConfig{"docker.io": {Mirrors: []string{bad}}}}, db, nil); !errdefs.IsInvalidArgument(err) {
			t.Errorf("mirror %q: New = %v, want invalid argument", bad, err)
		}
	}
}

func TestTwoTagsShareOneImage(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	img := simpleImage(t, "shared")
	tr.push(t, "app:1", img)
	tr.push(t, "app:stable", img)
	tr.push(t, "other/app:x", img)
	s := newService(t, Config{})
	var ids []string
	for _, ref := range []string{"app:1", "app:stable", "other/app:x"} {
		got, err := s.Pull(t.Context(), tr.host+"/"+ref, Auth{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got.ID)
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("ids differ: %v", ids)
	}
	st, err := s.Status(t.Context(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	wantTags := []string{tr.host + "/app:1", tr.host + "/app:stable", tr.host + "/other/app:x"}
	if !slices.Equal(st.RepoTags, wantTags) || len(st.RepoDigests) != 2 {
		t.Errorf("RepoTags %v RepoDigests %v; want %v and two digests", st.RepoTags, st.RepoDigests, wantTags)
	}
	if layers := dirNames(t, s.content.layersDir()); len(layers) != 2 {
		t.Errorf("%d layer dirs, want 2", len(layers))
	}
	for blob, n := range tr.gets() {
		if n != 1 {
			t.Errorf("blob %s fetched %d times", blob, n)
		}
	}
	if list, _ := s.List(t.Context(), ""); len(list) != 1 {
		t.Errorf("List = %d images, want 1", len(list))
	}
}

func TestTagMovesToTheNewImage(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	old, cur := simpleImage(t, "old"), simpleImage(t, "new")
	tr.push(t, "app:latest", old)
	s := newService(t, Config{})
	if _, err := s.Pull(t.Context(), tr.host+"/app", Auth{}); err != nil {
		t.Fatal(err)
	}
	tr.push(t, "app:latest", cur)
	if _, err := s.Pull(t.Context(), tr.host+"/app", Auth{}); err != nil {
		t.Fatal(err)
	}
	o, err := s.Status(t.Context(), imageID(t, old))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.RepoTags) != 0 || len(o.RepoDigests) != 1 {
		t.Errorf("old image keeps tags %v digests %v; want no tags, its digest", o.RepoTags, o.RepoDigests)
	}
	if st, _ := s.Status(t.Context(), tr.host+"/app:latest"); st == nil || st.ID != imageID(t, cur) {
		t.Errorf("app:latest names %v, want the new image", st)
	}
}

func TestConcurrentPullsFetchEachBlobOnce(t *testing.T) {
	testutil.RequireRoot(t)
	tr := newTestRegistry(t)
	var layers []v1.Layer
	for i := range 4 {
		layers = append(layers, layerOf(t, entry{name: fmt.Sprintf("f%d", i), body: strings.Repeat(fmt.Sprint(i), 100000)}))
	}
	img := imageOf(t, v1.Config{}, layers...)
	tr.push(t, "busy:1", img)
	other := simpleImage(t, "other")
	tr.push(t, "other:1", other)
	// Slow blobs make the pulls overlap.
	tr.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/blobs/") {
			time.Sleep(50 * time.Millisecond)
		}
		return false
	})
	s := newService(t, Config{})
	var wg sync.WaitGroup
	errs := make([]error, 11)
	for i := range 10 {
		wg.Go(func() { _, errs[i] = s.Pull(t.Context(), tr.host+"/busy:1", Auth{}) })
	}
	wg.Go(func() { _, errs[10] = s.Pull(t.Context(), tr.host+"/other:1", Auth{}) })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	gets := tr.gets()
	if len(gets) != 5+3 {
		t.Errorf("%d distinct blobs fetched, want 8", len(gets))
	}
	for blob, n := range gets {
		if n != 1 {
			t.Errorf("blob %s fetched %d times, want once", blob, n)
		}
	}
	if list, _ := s.List(t.Context(), ""); len(list) != 2 {
		t.Errorf("List = %d images, want 2", len(list))
	}
}

func TestDigestMismatchStoresNothing(t *testing.T) {
	testutil.RequireRoot(t)
	for _, what := range []string{"layer", "config", "short"} {
		t.Run(what, func(t *testing.T) {
			tr := newTestRegistry(t)
			good := layerOf(t, entry{name: "good", body: strings.Repeat("g", 5000)})
			bad := layerOf(t, entry{name: "bad", body: strings.Repeat("b", 5000)})
			img := imageOf(t, v1.Config{}, good, bad)
			tr.push(t, "corrupt:1", img)
			target, _ := bad.Digest()
			if what == "config" {
				target, _ = img.ConfigName()
			}
			tr.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, target.String()) {
					return false
				}
				rec := httptest.NewRecorder()
				tr.inner.ServeHTTP(rec, r)
				body := rec.Body.Bytes()
				if what == "short" {
					body = body[:len(body)-10]
				} else {
					body[len(body)/2] ^= 0xff
				}
				w.Write(body)
				return true
			})
			s := newService(t, Config{})
			_, err := s.Pull(t.Context(), tr.host+"/corrupt:1", Auth{})
			if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), target.String()) {
				t.Fatalf("Pull = %v; want a digest mismatch naming %s", err, target)
			}
			if list, _ := s.List(t.Context(), ""); len(list) != 0 {
				t.Errorf("List = %v", list)
			}
			for _, dir := range []string{s.content.layersDir(), s.content.blobsDir(), s.content.ingestDir(), s.content.tmpDir()} {
				if names := dirNames(t, dir); len(names) != 0 {
					t.Errorf("%s holds %v", dir, names)
				}
			}
		})
	}
}
