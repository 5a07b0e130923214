package idprefix

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
)

func TestLookup(t *testing.T) {
	m := map[string]int{"abc123": 1, "abd456": 2, "abc999": 3}
	tests := []struct {
		id   string
		want int
		err  error
	}{
		{"abc123", 1, nil},
		{"abd", 2, nil},
		{"abc", 0, errdefs.ErrInvalidArgument},
		{"zz", 0, errdefs.ErrNotFound},
		{"", 0, errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		got, err := Lookup(m, tc.id, "thing")
		if got != tc.want || (tc.err == nil) != (err == nil) || tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("Lookup(%q) = %d, %v; want %d, %v", tc.id, got, err, tc.want, tc.err)
		}
	}
}
