package cgroups

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"
)

func TestCheckHost(t *testing.T) {
	huge := []HugepageLimit{{PageSize: "2MB", Limit: 0}, {PageSize: "1GB", Limit: 0}}
	for _, tc := range []struct {
		name      string
		r         Resources
		v2        bool
		hugetlb   bool
		tolerate  bool
		want      error
		wantHuge  int
		wantShare int64
	}{
		{name: "nothing special", r: Resources{CPUShares: 100}, wantShare: 100},
		{name: "unified on v2", r: Resources{Unified: map[string]string{"memory.high": "1"}}, v2: true},
		{name: "unified on v1", r: Resources{Unified: map[string]string{"memory.high": "1"}}, hugetlb: true, want: errdefs.ErrInvalidArgument},
		{name: "hugepages with hugetlb", r: Resources{HugepageLimits: huge}, hugetlb: true, wantHuge: 2},
		{name: "hugepages with hugetlb, tolerant", r: Resources{HugepageLimits: huge}, hugetlb: true, tolerate: true, wantHuge: 2},
		{name: "hugepages without hugetlb", r: Resources{HugepageLimits: huge}, want: errdefs.ErrFailedPrecondition},
		{name: "hugepages without hugetlb on v2", r: Resources{HugepageLimits: huge}, v2: true, want: errdefs.ErrFailedPrecondition},
		// What a kubelet sends on a node without the controller: dropped, the rest kept.
		{name: "hugepages without hugetlb, tolerant", r: Resources{HugepageLimits: huge, CPUShares: 2}, tolerate: true, wantShare: 2},
		{name: "hugepages without hugetlb on v2, tolerant", r: Resources{HugepageLimits: huge}, v2: true, tolerate: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkHost(context.Background(), tc.r, tc.v2, tc.tolerate, func(bool) bool { return tc.hugetlb })
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("checkHost: %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			if len(got.HugepageLimits) != tc.wantHuge {
				t.Errorf("hugepage limits after check: %v, want %d of them", got.HugepageLimits, tc.wantHuge)
			}
			if got.CPUShares != tc.wantShare {
				t.Errorf("cpu shares after check: %d, want %d", got.CPUShares, tc.wantShare)
			}
		})
	}
}
