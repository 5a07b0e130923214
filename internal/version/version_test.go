package version

import (
	"runtime/debug"
	"testing"

	utilversion "k8s.io/apimachinery/pkg/util/version"
)

// TestSemantic: every form the version takes parses as a semantic version the way a kubelet
// parses a runtime's version (a non-semantic one shows as "peapod://Unknown" on the node).
func TestSemantic(t *testing.T) {
	rev := func(r, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: r}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		name string
		got  string
		want string
	}{
		{"no stamp", fromSettings(nil), Base},
		{"clean stamp", fromSettings(rev("ffd3b42c0ffee", "false")), Base + "+ffd3b42"},
		{"dirty stamp", fromSettings(rev("ffd3b42c0ffee", "true")), Base + "+ffd3b42.dirty"},
		{"dirty without revision", fromSettings(rev("", "true")), Base},
		{"makefile commit", withMetadata("ffd3b42"), Base + "+ffd3b42"},
		{"makefile dirty commit", withMetadata("ffd3b42.dirty"), Base + "+ffd3b42.dirty"},
		{"hostile commit", withMetadata("a_b/c"), Base},
		{"this binary", String(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want != "" && tc.got != tc.want {
				t.Errorf("version %q, want %q", tc.got, tc.want)
			}
			if _, err := utilversion.ParseSemantic(tc.got); err != nil {
				t.Errorf("%q is not a semantic version: %v", tc.got, err)
			}
		})
	}
}
