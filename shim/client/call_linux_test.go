package client_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/peapod-runtime/peapod/shim"
	"github.com/peapod-runtime/peapod/shim/wire"
)

// TestWaitsHoldNoGoroutine: a Wait on a running container is a note with the container, not
// a goroutine of the shim; the container's exit answers every one of them.
func TestWaitsHoldNoGoroutine(t *testing.T) {
	p := startPod(t, false)
	p.run(t, "c", "sleep", "1000")
	ctx := ctxT(t, 30*time.Second)
	info, err := p.c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const waits = 40
	var wg sync.WaitGroup
	states := make([]shim.ContainerState, waits)
	errs := make([]error, waits)
	for i := range waits {
		wg.Go(func() { states[i], errs[i] = p.c.Wait(ctx, "c") })
	}
	time.Sleep(300 * time.Millisecond)
	during, err := p.c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("shim goroutines: %d before, %d with %d Waits pending", info.Goroutines, during.Goroutines, waits)
	if during.Goroutines > info.Goroutines+2 {
		t.Errorf("%d pending Waits: the shim went from %d to %d goroutines", waits, info.Goroutines, during.Goroutines)
	}
	if err := p.c.Signal(ctx, "c", syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i := range waits {
		if errs[i] != nil || states[i].Status != shim.StatusStopped || states[i].ExitCode != 137 {
			t.Errorf("wait %d: %+v, %v", i, states[i], errs[i])
		}
	}
}

// TestCallCancelStopsWork: a call whose context ends is cancelled in the shim too: an
// ExecSync without a timeout of its own is killed, and the connection serves on.
func TestCallCancelStopsWork(t *testing.T) {
	p := startPod(t, false)
	p.run(t, "c", "sleep", "1000")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err := p.c.ExecSync(ctx, "c", shim.ExecSyncOptions{Args: []string{"sleep", "7171"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ExecSync: %v, want Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled ExecSync returned after %v", d)
	}
	for deadline := time.Now().Add(5 * time.Second); sleeperAlive(t, "7171"); {
		if time.Now().After(deadline) {
			t.Fatal("the exec of a cancelled ExecSync still runs 5s after the cancel")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, err := p.c.State(ctxT(t, 5*time.Second), "c"); err != nil || st.Status != shim.StatusRunning {
		t.Errorf("after the cancel: %+v, %v", st, err)
	}
}

// sleeperAlive says a process "sleep <arg>" runs on the node.
func sleeperAlive(t *testing.T, arg string) bool {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && strings.HasSuffix(string(b), "\x00"+arg+"\x00") && strings.Contains(string(b), "sleep") {
			return true
		}
	}
	return false
}

// TestCallProtocolErrors: a bad call gets its error class; a frame that breaks the protocol
// ends that connection only.
func TestCallProtocolErrors(t *testing.T) {
	p := startPod(t, false)
	conn, err := net.Dial("unix", shim.SocketPath(p.stateDir))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	w, r := wire.NewCallWriter(conn), wire.NewCallReader(conn)
	if err := wire.ReadHello(r); err != nil {
		t.Fatalf("the shim's first frame: %v", err)
	}
	raw := func(ft wire.FrameType, payload []byte) {
		t.Helper()
		b := append([]byte{byte(ft), 0, 0, 0, 0}, payload...)
		binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	answer := func(want uint32) (wire.FrameType, []byte) {
		t.Helper()
		ft, payload, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		id, rest, err := wire.CallID(payload)
		if err != nil || id != want {
			t.Fatalf("answer to call %d instead of %d: %v", id, want, err)
		}
		return ft, rest
	}
	for _, tc := range []struct {
		name  string
		id    uint32
		send  func()
		class error
	}{
		{"unknown method", 1, func() { raw(wire.FrameCall, []byte{0, 0, 0, 1, 99}) }, errdefs.ErrNotImplemented},
		{"broken JSON", 2, func() { raw(wire.FrameCall, append([]byte{0, 0, 0, 2, byte(wire.MethodState)}, "{"...)) }, errdefs.ErrInvalidArgument},
		{"unknown container", 3, func() { _ = w.WriteCall(3, wire.MethodState, wire.IDRequest{ID: "none"}) }, errdefs.ErrNotFound},
		{"wait for an unknown container", 4, func() { _ = w.WriteCall(4, wire.MethodWait, wire.IDRequest{ID: "none"}) }, errdefs.ErrNotFound},
		{"bad id", 5, func() { _ = w.WriteCall(5, wire.MethodDelete, wire.IDRequest{ID: "../x"}) }, errdefs.ErrInvalidArgument},
	} {
		tc.send()
		ft, rest := answer(tc.id)
		if ft != wire.FrameFail {
			t.Errorf("%s: frame %q, want a failure", tc.name, ft)
			continue
		}
		if err := wire.DecodeFail(rest); !errors.Is(err, tc.class) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.class)
		}
	}
	// An answer frame from a client breaks the protocol: the shim hangs up.
	raw(wire.FrameAnswer, []byte{0, 0, 0, 9})
	if _, _, err := r.Next(); err == nil {
		t.Error("the shim answered on after a frame that breaks the protocol")
	}
	if _, err := p.c.Info(ctxT(t, 5*time.Second)); err != nil {
		t.Errorf("the shim's other connection: %v", err)
	}
}
