package critest

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestShimStoppedAtRestart: a pod's shim that does not answer when the daemon starts (here
// SIGSTOPped, as a hung process would be: it still accepts connections) holds back only its
// own pod. The daemon serves within the shim timeout; the other pods work as usual; the
// stopped shim's container is reported UNKNOWN, and calls that need that shim fail at once
// with Unavailable naming the pod. Once the shim goes on (SIGCONT), a background retry
// finds the container running again, and it can be exec'd into and stopped.
func TestShimStoppedAtRestart(t *testing.T) {
	framework.RequirePeapod(t)
	const timeout = 2 * time.Second
	d := framework.StartDaemon(t, framework.WithConfig("[runtime]\nshim_timeout_seconds = 2\n"))
	hung := ownPod(t, d, "shim-stopped")
	other := ownPod(t, d, "shim-fine")
	hungCtr := hung.run(t, sleeper("sleeper", framework.ImageBusybox, nil))
	otherCtr := other.run(t, sleeper("sleeper", framework.ImageBusybox, nil))
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}

	resume := stopShim(t, hung.id)

	start := time.Now()
	if err := d.Start(framework.Context(t)); err != nil {
		t.Fatalf("restart: %v", err)
	}
	// Serving (past recovery) within the timeout, give or take a loaded machine.
	for {
		_, err := hung.rt.ListPodSandbox(framework.Quiet(shortCtx(t)), nil)
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable || time.Since(start) > timeout+8*time.Second {
			t.Fatalf("ListPodSandbox %v after the start with a stopped shim: %v", time.Since(start), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("serving %v after the start, with a shim stopped (shim timeout %v)", time.Since(start).Round(time.Millisecond), timeout)
	ctx := framework.Context(t)
	if _, err := hung.rt.Status(ctx, false); err != nil {
		t.Errorf("Status: %v", err)
	}
	if st, err := hung.rt.PodSandboxStatus(ctx, hung.id, false); err != nil || st.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("PodSandboxStatus of the pod with the stopped shim: %v, %v; want READY", st.GetStatus().GetState(), err)
	}

	// The stopped shim's container: UNKNOWN, and what needs its shim fails at once.
	st := hung.status(t, hungCtr)
	if st.GetState() != runtimeapi.ContainerState_CONTAINER_UNKNOWN || !strings.Contains(st.GetMessage(), "does not answer") {
		t.Errorf("container of the stopped shim: %v %q, want UNKNOWN saying its monitor does not answer", st.GetState(), st.GetMessage())
	}
	for what, call := range map[string]func() error{
		"StopContainer": func() error { return hung.rt.StopContainer(ctx, hungCtr, 10) },
		"ExecSync": func() error {
			_, _, err := hung.rt.ExecSync(ctx, hungCtr, []string{"true"}, 5*time.Second)
			return err
		},
		"CreateContainer": func() error {
			_, err := hung.create(t, sleeper("next", framework.ImageBusybox, nil))
			return err
		},
	} {
		began := time.Now()
		err := call()
		wantCode(t, what+" with the pod's shim stopped", err, codes.Unavailable, hung.id, "does not answer")
		if took := time.Since(began); took > time.Second {
			t.Errorf("%s with the pod's shim stopped took %v, want an answer at once", what, took)
		}
	}

	// The other pod works as usual.
	if st := other.status(t, otherCtr); st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container of the other pod: %v, want RUNNING", st.GetState())
	}
	if got := other.sh(t, otherCtr, "echo up"); got != "up" {
		t.Errorf("exec in the other pod: %q", got)
	}
	next := other.run(t, sleeper("next", framework.ImageBusybox, nil))
	if got := other.sh(t, next, "echo up"); got != "up" {
		t.Errorf("exec in a new container of the other pod: %q", got)
	}

	// The shim goes on: its container is found running again.
	resume()
	resumedAt := time.Now()
	for {
		st := hung.status(t, hungCtr)
		if st.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
			break
		}
		if time.Since(resumedAt) > 45*time.Second {
			t.Fatalf("container still %v %q 45s after its shim went on", st.GetState(), st.GetMessage())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("container RUNNING again %v after SIGCONT", time.Since(resumedAt).Round(time.Millisecond))
	if got := hung.sh(t, hungCtr, "echo back"); got != "back" {
		t.Errorf("exec after the shim went on: %q", got)
	}
	if err := hung.rt.StopContainer(ctx, hungCtr, 0); err != nil {
		t.Errorf("StopContainer after the shim went on: %v", err)
	}
	if st := hung.status(t, hungCtr); st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || st.GetExitCode() != 137 {
		t.Errorf("after StopContainer: %v exit %d, want EXITED 137", st.GetState(), st.GetExitCode())
	}
}

// TestShimStoppedWhileServing: a pod's shim that stops answering while the daemon is
// connected to it (SIGSTOP) costs each call that needs it no more than the call's own
// deadline; reads answer from memory at once, and the other pods work as usual. Once the
// shim goes on, its container answers again.
func TestShimStoppedWhileServing(t *testing.T) {
	framework.RequirePeapod(t)
	hung := newTestPod(t, "shim-stopped-live", nil)
	other := newTestPod(t, "shim-fine-live", nil)
	hungCtr := hung.run(t, sleeper("sleeper", framework.ImageBusybox, nil))
	otherCtr := other.run(t, sleeper("sleeper", framework.ImageBusybox, nil))
	resume := stopShim(t, hung.id)

	const deadline = 2 * time.Second
	for what, call := range map[string]func(ctx context.Context) error{
		"ExecSync": func(ctx context.Context) error {
			_, _, err := hung.rt.ExecSync(ctx, hungCtr, []string{"true"}, 0)
			return err
		},
		"ReopenContainerLog": func(ctx context.Context) error { return hung.rt.ReopenContainerLog(ctx, hungCtr) },
	} {
		ctx, cancel := context.WithTimeout(framework.Quiet(context.Background()), deadline)
		began := time.Now()
		err := call(ctx)
		cancel()
		if took := time.Since(began); err == nil || took > deadline+time.Second {
			t.Errorf("%s with the pod's shim stopped: %v after %v, want an error within its %v deadline", what, err, took, deadline)
		}
	}
	ctx := framework.Context(t)
	began := time.Now()
	if st := hung.status(t, hungCtr); st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("ContainerStatus with the shim stopped: %v, want RUNNING (its last known state)", st.GetState())
	}
	if _, err := hung.rt.ListPodSandbox(ctx, nil); err != nil {
		t.Errorf("ListPodSandbox: %v", err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("reads with a shim stopped took %v", took)
	}
	if got := other.sh(t, otherCtr, "echo up"); got != "up" {
		t.Errorf("exec in the other pod: %q", got)
	}
	resume()
	if got := hung.sh(t, hungCtr, "echo back"); got != "back" {
		t.Errorf("exec after the shim went on: %q", got)
	}
}
