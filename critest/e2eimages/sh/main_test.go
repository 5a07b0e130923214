package main

import "testing"

func TestHasNonIdentifier(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want bool
	}{
		{[]string{"PATH=/bin", "HOME=/root", "_x1=2", "KUBERNETES_PORT=tcp://10.0.0.1:443"}, false},
		{[]string{"PATH=/bin", "data-1=value-1"}, true},
		{[]string{"p-data-1=value-1"}, true},
		{[]string{"1abc=x"}, true},
		{[]string{"a.b=x"}, true},
		{[]string{"=x"}, true},
		{nil, false},
	} {
		if got := hasNonIdentifier(tc.env); got != tc.want {
			t.Errorf("hasNonIdentifier(%q) = %v, want %v", tc.env, got, tc.want)
		}
	}
}
