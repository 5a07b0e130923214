// Package version is peapod's version: a semantic version (a kubelet parses the runtime's
// version as one) whose build metadata names the commit it was built from.
package version

import (
	"runtime/debug"
	"strings"
)

// Base is the release this tree leads to; change it here and nowhere else.
const Base = "0.2.0-dev"

// commit is the build's commit, set by the Makefile with
// -ldflags "-X github.com/peapod-runtime/peapod/internal/version.commit=ffd3b42[.dirty]"
// (GOFLAGS=-buildvcs=false, common on build machines, leaves no stamp to read).
var commit string

// String returns Base with the commit as build metadata, for example "0.2.0-dev+ffd3b42" or
// "0.2.0-dev+ffd3b42.dirty": the commit the Makefile set, else what the Go toolchain stamped
// into the binary; a binary with neither (go test) is Base alone.
func String() string {
	if commit != "" {
		return withMetadata(commit)
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Base
	}
	return fromSettings(info.Settings)
}

func fromSettings(settings []debug.BuildSetting) string {
	var rev string
	var dirty bool
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 7 {
		rev = rev[:7]
	}
	if dirty {
		rev += ".dirty"
	}
	return withMetadata(rev)
}

// withMetadata appends meta as semver build metadata: dot-separated identifiers of
// [0-9A-Za-z-], each non-empty; anything else is dropped.
func withMetadata(meta string) string {
	var ids []string
	for id := range strings.SplitSeq(meta, ".") {
		ok := id != ""
		for _, r := range id {
			ok = ok && (r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-')
		}
		if ok {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 || ids[0] == "dirty" {
		return Base
	}
	return Base + "+" + strings.Join(ids, ".")
}
