package cri

import "testing"

func TestFitExecOutput(t *testing.T) {
	mk := func(n int) []byte { return make([]byte, n) }
	for _, tc := range []struct {
		name                   string
		stdout, stderr         int
		wantStdout, wantStderr int
	}{
		{"small", 10, 20, 10, 20},
		{"stdout fills", 16 << 20, 6, maxExecResponse - 6, 6},
		{"both full", 16 << 20, 16 << 20, 0, maxExecResponse},
		{"exactly fits", maxExecResponse - 1, 1, maxExecResponse - 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, e := fitExecOutput(mk(tc.stdout), mk(tc.stderr))
			if len(o) != tc.wantStdout || len(e) != tc.wantStderr {
				t.Errorf("got %d/%d, want %d/%d", len(o), len(e), tc.wantStdout, tc.wantStderr)
			}
		})
	}
}
