package images

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHub is how Docker Hub is written in normalised names and in Config.Registries.
const dockerHub = "docker.io"

var (
	hex64     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	idPrefix  = regexp.MustCompile(`^(sha256:)?[0-9a-f]{1,64}$`)
	digestRef = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	// repoPath is Docker's grammar for a repository path, stricter than go-containerregistry's.
	repoPath = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
)

// reference is a parsed, normalised image reference: Docker's rules (docker.io/library/
// for short names, :latest when neither tag nor digest is given); a digest wins over a tag
// given beside it ("repo:tag@sha256:..." is repo@sha256:...), as in containerd.
type reference struct {
	repo   name.Repository // as go-containerregistry addresses it (index.docker.io for Hub)
	tag    string
	digest string
}

// parseReference parses what a kubelet sends to PullImage. An unparsable reference is
// errdefs.ErrInvalidArgument naming it.
func parseReference(s string) (reference, error) {
	bad := func(why string) (reference, error) {
		return reference{}, fmt.Errorf("invalid image reference %q: %s: %w", s, why, errdefs.ErrInvalidArgument)
	}
	if s == "" {
		return bad("empty")
	}
	if hex64.MatchString(s) || digestRef.MatchString(s) {
		return bad("an image id is not a pullable reference")
	}
	ref, err := name.ParseReference(s)
	if err != nil {
		return bad(err.Error())
	}
	if reg := ref.Context().RegistryStr(); reg != strings.ToLower(reg) {
		// Host names are case-insensitive: "doCker.io/x" is docker.io/library/x, not a
		// repository "x" that docker.io's normalised name would misname.
		i := strings.Index(s, "/")
		if i < 0 {
			return bad("no registry host")
		}
		if ref, err = name.ParseReference(strings.ToLower(s[:i]) + s[i:]); err != nil {
			return bad(err.Error())
		}
	}
	r := reference{repo: ref.Context()}
	switch v := ref.(type) {
	case name.Digest:
		r.digest = v.DigestStr()
		if !digestRef.MatchString(r.digest) {
			return bad("only sha256 digests are supported")
		}
	case name.Tag:
		r.tag = v.TagStr()
	}
	if !repoPath.MatchString(r.repo.RepositoryStr()) {
		return bad("repository path components are lowercase letters and digits joined by '.', '_', '__' or '-'")
	}
	if hex64.MatchString(r.repo.RepositoryStr()) {
		return bad("a 64-character hexadecimal repository name is an image id")
	}
	return r, nil
}

// canonicalHost maps Docker Hub's aliases to docker.io and lowercases the rest.
func canonicalHost(h string) string {
	h = strings.ToLower(h)
	switch h {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return dockerHub
	}
	return h
}

// host is the registry host as written in normalised names ("docker.io" for Docker Hub).
func (r reference) host() string { return canonicalHost(r.repo.RegistryStr()) }

// repoName is "host/path", e.g. "docker.io/library/busybox".
func (r reference) repoName() string { return r.host() + "/" + r.repo.RepositoryStr() }

// String is the normalised reference: "host/path:tag" or "host/path@sha256:...".
func (r reference) String() string {
	if r.digest != "" {
		return r.repoName() + "@" + r.digest
	}
	return r.repoName() + ":" + r.tag
}

// withDigest is the "host/path@digest" name of the same repository.
func (r reference) withDigest(d string) string { return r.repoName() + "@" + d }

// parseID recognises a full image id, with or without "sha256:".
func parseID(s string) (string, bool) {
	if digestRef.MatchString(s) {
		return s, true
	}
	if hex64.MatchString(s) {
		return "sha256:" + s, true
	}
	return "", false
}

// authFor returns the credentials for one endpoint host: a's when it names no server or
// names this host. Like containerd, credentials naming the upstream host are not sent to its
// mirrors.
func authFor(a Auth, endpointHost string) (Auth, bool) {
	if a.empty() {
		return Auth{}, false
	}
	if a.ServerAddress == "" {
		return a, true
	}
	server := a.ServerAddress
	if i := strings.Index(server, "://"); i >= 0 {
		server = server[i+3:]
	}
	server, _, _ = strings.Cut(server, "/")
	server = canonicalHost(server)
	if server == canonicalHost(endpointHost) {
		return a, true
	}
	return Auth{}, false
}
