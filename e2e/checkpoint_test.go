package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestKubeletCheckpoint: the kubelet's checkpoint API (POST /checkpoint/<ns>/<pod>/<container>,
// through the apiserver's node proxy; feature gate ContainerCheckpoint, on by default) reaches
// peapod's CheckpointContainer. Where CRIU works it answers the archive's path and the file
// is there; where `criu check` fails here (as with Debian 12's CRIU on kernel 6.18) the
// kubelet's error carries CRIU's own reason. Either way the container keeps running.
func TestKubeletCheckpoint(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	createPod(t, ns, bbPod("checkpoint", "sleep 3600"))
	waitPodReady(t, ns, "checkpoint")

	var criuReason string
	if criu, err := exec.LookPath("criu"); err != nil {
		criuReason = "CRIU is not installed"
	} else if out, err := exec.Command(criu, "check").CombinedOutput(); err != nil {
		for line := range strings.Lines(string(out)) {
			if strings.Contains(line, "Error") {
				criuReason = strings.TrimSpace(line)
				break
			}
		}
	}

	raw, err := clusterClient.CoreV1().RESTClient().Post().
		AbsPath("/api/v1/nodes", nodeName, "proxy", "checkpoint", ns, "checkpoint", "c").DoRaw(context.Background())
	t.Logf("kubelet checkpoint: %s (%v)", raw, err)
	if criuReason != "" {
		if err == nil || !strings.Contains(err.Error()+string(raw), criuReason) {
			t.Errorf("kubelet checkpoint where CRIU cannot work: %v, %s; want an error with CRIU's reason %q", err, raw, criuReason)
		}
	} else {
		if err != nil {
			t.Fatalf("kubelet checkpoint: %v", err)
		}
		var resp struct{ Items []string }
		if err := json.Unmarshal(raw, &resp); err != nil || len(resp.Items) != 1 {
			t.Fatalf("kubelet checkpoint answer %s: %v", raw, err)
		}
		if st, err := os.Stat(resp.Items[0]); err != nil || st.Size() == 0 {
			t.Errorf("checkpoint archive %s: %v", resp.Items[0], err)
		}
		t.Cleanup(func() { _ = os.Remove(resp.Items[0]) })
	}
	if got := mustExec(t, ns, "checkpoint", "c", "echo", "alive"); got != "alive\n" {
		t.Errorf("container after the checkpoint: %q", got)
	}
}
