package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestStreamsBulk: 16 MiB each way through kubectl exec, 16 MiB through kubectl port-forward,
// and many concurrent execs, arrive whole: the runtime's stream server neither truncates nor
// stalls under back-pressure.
func TestStreamsBulk(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	runningPod(t, ns, bbPod("bulk", "mkdir -p /www; dd if=/dev/urandom of=/www/big bs=1048576 count=16 2>/dev/null; touch /tmp/ready; exec httpd -f -p 8080 -h /www"))
	waitFor(t, 30*time.Second, func() bool {
		_, _, err := execInPod(t, ns, "bulk", "c", "test", "-f", "/tmp/ready")
		return err == nil
	}, func() string { return "the pod never made its 16 MiB file" })
	sum := strings.Fields(mustExec(t, ns, "bulk", "c", "md5sum", "/www/big"))[0]

	t.Run("exec-stdin", func(t *testing.T) {
		data := make([]byte, 16<<20)
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := kubectlCommand(ctx, "exec", "-i", "-n", ns, "bulk", "--", "md5sum")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		want := md5.Sum(data)
		if err != nil || !strings.HasPrefix(string(out), hex.EncodeToString(want[:])) {
			t.Fatalf("md5sum in the container of 16 MiB sent through kubectl exec -i: %v, %q, want %x", err, out, want)
		}
	})

	t.Run("exec-stdout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := kubectlCommand(ctx, "exec", "-n", ns, "bulk", "--", "cat", "/www/big").Output()
		got := md5.Sum(out)
		if err != nil || len(out) != 16<<20 || hex.EncodeToString(got[:]) != sum {
			t.Fatalf("16 MiB read through kubectl exec: %v, %d bytes, md5 %x, want %s", err, len(out), got, sum)
		}
	})

	t.Run("port-forward", func(t *testing.T) {
		port := portForward(t, ns, "bulk", 8080)
		resp, err := http.Get("http://127.0.0.1:" + port + "/big")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		h := md5.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil || n != 16<<20 || hex.EncodeToString(h.Sum(nil)) != sum {
			t.Fatalf("16 MiB through kubectl port-forward: %v, %d bytes, md5 %x, want %s", err, n, h.Sum(nil), sum)
		}
	})

	t.Run("concurrent-execs", func(t *testing.T) {
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, _, err := execInPod(t, ns, "bulk", "c", "sh", "-c", fmt.Sprintf("sleep 1; echo exec-%d", i))
				if err != nil || out != fmt.Sprintf("exec-%d\n", i) {
					errs <- fmt.Errorf("exec %d: %v, %q", i, err, out)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// portForward runs kubectl port-forward to the pod's port until the test ends and returns the
// local port.
func portForward(t *testing.T, ns, pod string, port int) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := kubectlCommand(ctx, "port-forward", "-n", ns, "pod/"+pod, "--address", "127.0.0.1", fmt.Sprintf(":%d", port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr framework.LockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	re := regexp.MustCompile(fmt.Sprintf(`Forwarding from 127\.0\.0\.1:(\d+) -> %d`, port))
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return m[1]
		}
	}
	t.Fatalf("kubectl port-forward printed no local port; stderr %q", stderr.String())
	return ""
}
