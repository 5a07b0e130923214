package container

import (
	"syscall"
	"testing"
)

func TestSignalNumber(t *testing.T) {
	for _, tc := range []struct {
		name string
		want syscall.Signal
	}{
		{"SIGTERM", syscall.SIGTERM},
		{"term", syscall.SIGTERM},
		{"9", syscall.SIGKILL},
		{"SIGUSR1", syscall.SIGUSR1},
		{"SIGRTMINPLUS3", 37},
		{"SIGRTMIN+3", 37},
		{"SIGRTMAXMINUS2", 62},
		{"SIGRTMAX-2", 62},
		{"SIGRTMIN", 34},
		{"SIGCLD", syscall.SIGCHLD},
		{"SIGPOLL", syscall.SIGIO},
		{"SIGIOT", syscall.SIGABRT},
		{"SIGNOPE", 0},
		{"0", 0},
		{"99", 0},
		{"SIGRTMINPLUS40", 0},
	} {
		if got := signalNumber(tc.name); got != tc.want {
			t.Errorf("signalNumber(%q) = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestStopSignal(t *testing.T) {
	for _, tc := range []struct{ requested, image, want string }{
		{"", "", "SIGTERM"},
		{"", "SIGUSR2", "SIGUSR2"},
		{"SIGQUIT", "SIGUSR2", "SIGQUIT"},
		{"", "bogus", "SIGTERM"},
	} {
		if got := stopSignal(tc.requested, tc.image); got != tc.want {
			t.Errorf("stopSignal(%q, %q) = %q, want %q", tc.requested, tc.image, got, tc.want)
		}
	}
}
