package shim

import (
	"errors"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestWriteRecordDoesNotSync writes a record from a thread on which fsync and fdatasync fail
// with EPERM (a seccomp filter of that thread alone): the write succeeds only if it syncs
// nothing. Records are in the volatile state directory; see WriteRecord.
func TestWriteRecordDoesNotSync(t *testing.T) {
	dir := t.TempDir()
	done := make(chan error, 1)
	go func() {
		// The filtered thread is never unlocked: it exits with this goroutine.
		runtime.LockOSThread()
		if err := denySyncOnThisThread(); err != nil {
			done <- err
			return
		}
		// The filter works: a sync on this thread fails.
		if err := unix.Fsync(unix.Stdout); !errors.Is(err, unix.EPERM) {
			done <- errors.New("fsync under the filter did not fail with EPERM")
			return
		}
		done <- WriteRecord(dir, ContainerState{ID: "a", Status: StatusRunning})
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err := ReadRecords(dir)
	if err != nil || len(got) != 1 || got[0].ID != "a" {
		t.Fatalf("records %v, %v", got, err)
	}
}

// denySyncOnThisThread installs a seccomp filter on the calling thread that fails fsync and
// fdatasync with EPERM and allows everything else.
func denySyncOnThisThread() error {
	const (
		ldAbsW = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeqK   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		retK   = unix.BPF_RET | unix.BPF_K
		deny   = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	)
	prog := []unix.SockFilter{
		{Code: ldAbsW, K: 0}, // seccomp_data.nr
		{Code: jeqK, Jt: 2, K: unix.SYS_FSYNC},
		{Code: jeqK, Jt: 1, K: unix.SYS_FDATASYNC},
		{Code: retK, K: unix.SECCOMP_RET_ALLOW},
		{Code: retK, K: deny},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	return unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0)
}
