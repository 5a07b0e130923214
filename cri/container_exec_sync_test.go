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
		{"stderr fills", 6, 16 << 20, 6, maxExecResponse - 6},
		{"both full", 16 << 20, 16 << 20, maxExecResponse / 2, maxExecResponse - maxExecResponse/2},
		{"stdout over half, stderr under", 14 << 20, 3 << 20, maxExecResponse - 3<<20, 3 << 20},
		{"stderr over half, stdout under", 3 << 20, 14 << 20, 3 << 20, maxExecResponse - 3<<20},
		{"exactly fits", maxExecResponse - 1, 1, maxExecResponse - 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, e := fitExecOutput(mk(tc.stdout), mk(tc.stderr))
			if len(o) != tc.wantStdout || len(e) != tc.wantStderr {
				t.Errorf("got %d/%d, want %d/%d", len(o), len(e), tc.wantStdout, tc.wantStderr)
			}
			if len(o)+len(e) > maxExecResponse {
				t.Errorf("%d bytes together, over %d", len(o)+len(e), maxExecResponse)
			}
		})
	}
}
