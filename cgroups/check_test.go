package cgroups

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
)

func TestCheckHost(t *testing.T) {
	huge := []HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}}
	for _, tc := range []struct {
		name    string
		r       Resources
		v2      bool
		hugetlb bool
		want    error
	}{
		{"nothing special", Resources{CPUShares: 100}, false, false, nil},
		{"unified on v2", Resources{Unified: map[string]string{"memory.high": "1"}}, true, false, nil},
		{"unified on v1", Resources{Unified: map[string]string{"memory.high": "1"}}, false, true, errdefs.ErrInvalidArgument},
		{"hugepages with hugetlb", Resources{HugepageLimits: huge}, false, true, nil},
		{"hugepages without hugetlb", Resources{HugepageLimits: huge}, false, false, errdefs.ErrFailedPrecondition},
		{"hugepages without hugetlb on v2", Resources{HugepageLimits: huge}, true, false, errdefs.ErrFailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkHost(tc.r, tc.v2, func(bool) bool { return tc.hugetlb })
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("checkHost: %v, want %v", err, tc.want)
			}
		})
	}
}
