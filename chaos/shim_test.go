package chaos

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// shimOf finds the pod's peapod-shim and its PID namespace holder (0 if none).
func shimOf(t *testing.T, podID string) (shim, holder int) {
	t.Helper()
	shim, holder, err := framework.PeapodShim(podID)
	if err != nil {
		t.Fatal(err)
	}
	return shim, holder
}

// gone waits until pid has ended (gone or a zombie).
func gone(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := framework.ProcessStatus(pid)
		if err != nil || strings.HasPrefix(st["State"], "Z") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d still %s after %v", pid, st["State"], timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShimAndHolderKills kills pods' shims and PID namespace holders (max(2, kills/10)
// rounds). A killed shim: its containers are reported EXITED 255 (reason Error, the monitor
// lost), their processes and the holder go, the pod gets a new container (in a new shim).
// A killed holder: the containers of the namespace are reported EXITED 137, a new container
// is refused with FailedPrecondition. Either way the pod is then stopped and removed with
// nothing left on the node.
func TestShimAndHolderKills(t *testing.T) {
	framework.RequirePeapod(t)
	start := time.Now()
	n := startNode(t)
	before := snapshot(t, n.d)
	ctx := framework.Context(t)
	rt := n.c.Runtime
	rounds := max(2, *flagKills/10)
	var shimKills, holderKills, checked, lines int
	for r := range rounds {
		for _, shared := range []bool{true, false} {
			cfg := n.podConfig(fmt.Sprintf("shimkill%d", r), shared)
			podID, err := rt.RunPodSandbox(ctx, cfg, "")
			if err != nil {
				t.Fatalf("RunPodSandbox: %v", err)
			}
			counter, err := n.runContainer(ctx, podID, cfg, shellContainer("log-0", counterScript))
			if err != nil {
				t.Fatal(err)
			}
			sleeper, err := n.runContainer(ctx, podID, cfg, shellContainer("s", "exec sleep 3600"))
			if err != nil {
				t.Fatal(err)
			}
			var pids []int
			for _, id := range []string{counter, sleeper} {
				_, info, err := n.status(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				pids = append(pids, info.Pid)
			}
			// A few counter lines first.
			counterLog := filepath.Join(cfg.LogDirectory, "log-0.log")
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if n, _ := checkCounterLog(counterLog); n >= 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("round %d: the counter logged fewer than 3 lines in 10s", r)
				}
			}
			shim, holder := shimOf(t, podID)
			if shared != (holder != 0) {
				t.Fatalf("pod with shared PID namespace %v: holder pid %d", shared, holder)
			}

			// Kill the shim.
			if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			shimKills++
			for _, id := range []string{counter, sleeper} {
				st, err := n.waitExited(ctx, id, 10*time.Second)
				checked++
				if err != nil {
					t.Errorf("round %d shared %v: after the shim kill: %v", r, shared, err)
					continue
				}
				if st.GetExitCode() != 255 || st.GetReason() != "Error" || !strings.Contains(st.GetMessage(), "monitor") {
					t.Errorf("round %d shared %v: container after its shim was killed: exit %d reason %q message %q, want 255 Error, monitor lost", r, shared, st.GetExitCode(), st.GetReason(), st.GetMessage())
				}
			}
			for _, pid := range append(pids, shim, holder) {
				if pid == 0 {
					continue
				}
				if err := gone(pid, 5*time.Second); err != nil {
					t.Errorf("round %d shared %v: after the shim kill: %v", r, shared, err)
				}
			}
			// What the counter logged before its shim died is intact.
			got, err := checkCounterLog(filepath.Join(cfg.LogDirectory, "log-0.log"))
			lines += got
			if err != nil || got == 0 {
				t.Errorf("round %d shared %v: counter log (%d lines): %v", r, shared, got, err)
			}

			// The pod gets a new container, in a new shim.
			next, err := n.runContainer(ctx, podID, cfg, shellContainer("next", "exec sleep 3600"))
			if err != nil {
				t.Fatalf("round %d shared %v: new container after the shim kill: %v", r, shared, err)
			}
			if st, info, err := n.status(ctx, next); err != nil || st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
				t.Errorf("round %d shared %v: new container after the shim kill: %v, %v", r, shared, st.GetState(), err)
			} else if err := checkRunning(info); err != nil {
				t.Errorf("round %d shared %v: new container: %v", r, shared, err)
			}
			checked++

			if shared {
				// Kill the new shim's holder.
				_, holder := shimOf(t, podID)
				if holder == 0 {
					t.Fatalf("round %d: the new shim has no holder", r)
				}
				if err := syscall.Kill(holder, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				holderKills++
				st, err := n.waitExited(ctx, next, 10*time.Second)
				checked++
				if err != nil {
					t.Errorf("round %d: after the holder kill: %v", r, err)
				} else if st.GetExitCode() != 137 || st.GetReason() != "Error" {
					t.Errorf("round %d: container after the holder kill: exit %d reason %q message %q, want 137 Error", r, st.GetExitCode(), st.GetReason(), st.GetMessage())
				}
				_, err = rt.CreateContainer(ctx, podID, shellContainer("refused", "true"), cfg)
				if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "PID namespace") {
					t.Errorf("round %d: CreateContainer after the holder kill: %v, want FailedPrecondition naming the PID namespace", r, err)
				}
			}
			if err := rt.StopPodSandbox(ctx, podID); err != nil {
				t.Errorf("round %d: StopPodSandbox: %v", r, err)
			}
			if err := rt.RemovePodSandbox(ctx, podID); err != nil {
				t.Errorf("round %d: RemovePodSandbox: %v", r, err)
			}
			checkNoLeak(t, n.d, before)
			if t.Failed() {
				return
			}
		}
	}
	t.Logf("CHAOS-FIGURES shim-and-holder-kills: shim kills %d, holder kills %d, containers checked %d, counter log lines checked %d, leak checks %d, took %v",
		shimKills, holderKills, checked, lines, 2*rounds, time.Since(start).Round(time.Second))
}
