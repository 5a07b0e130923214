package metrics

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/peapod-runtime/peapod/internal/testutil/promtext"
)

// scrape reads the handler's text the way Prometheus does.
func scrape(t *testing.T, m *Metrics) promtext.Families {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	families, err := promtext.Parse(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return families
}

func value(t *testing.T, fams promtext.Families, name string, labels ...string) float64 {
	t.Helper()
	v, ok := fams.Sample(name, labels...)
	if !ok {
		t.Fatalf("no %s%v", name, labels)
	}
	return v
}

func TestHooksAndSources(t *testing.T) {
	m, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Watch(Sources{
		Pods:         func() map[string]int { return map[string]int{"ready": 2, "notready": 1} },
		Containers:   func() map[string]int { return map[string]int{"running": 3} },
		ShimsRunning: func() int { return 2 },
	}); err != nil {
		t.Fatal(err)
	}
	m.ContainerExited("Completed")
	m.ContainerExited("OOMKilled")
	m.ContainerExited("OOMKilled")
	m.ImagePulled(1000, time.Second, nil)
	m.ImagePulled(0, time.Millisecond, errors.New("no such image"))
	m.ShimLost()
	done := m.StreamSession("exec")
	m.StreamSession("attach")()

	f := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"peapod_container_exits_total", []string{"reason", "Completed"}, 1},
		{"peapod_container_exits_total", []string{"reason", "Error"}, 0},
		{"peapod_container_exits_total", []string{"reason", "OOMKilled"}, 2},
		{"peapod_image_pulls_total", []string{"result", "success"}, 1},
		{"peapod_image_pulls_total", []string{"result", "failure"}, 1},
		{"peapod_image_pull_bytes_total", nil, 1000},
		{"peapod_image_pull_duration_seconds", nil, 2},
		{"peapod_shims_lost_total", nil, 1},
		{"peapod_shims_running", nil, 2},
		{"peapod_stream_sessions_open", []string{"kind", "exec"}, 1},
		{"peapod_stream_sessions_open", []string{"kind", "attach"}, 0},
		{"peapod_pods", []string{"state", "ready"}, 2},
		{"peapod_pods", []string{"state", "notready"}, 1},
		{"peapod_containers", []string{"state", "running"}, 3},
		{"peapod_containers", []string{"state", "exited"}, 0},
	} {
		if got := value(t, f, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	done()
	if got := value(t, scrape(t, m), "peapod_stream_sessions_open", "kind", "exec"); got != 0 {
		t.Errorf("exec sessions after the session ended = %v", got)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := f[name]; !ok {
			t.Errorf("no %s (Go and process collectors)", name)
		}
	}
	for name := range f {
		if !strings.HasPrefix(name, "peapod_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("family %s is neither peapod's nor the Go or process collectors'", name)
		}
	}
}

// TestNilMetricsRecordNothing: hooks are wired whether metrics are on or not.
func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.ContainerExited("Error")
	m.ImagePulled(1, time.Second, nil)
	m.ShimLost()
	m.StreamSession("exec")()
	m.InitializeGRPC(nil)
	if m.ServerOptions() != nil || m.Watch(Sources{}) != nil {
		t.Error("nil metrics answered")
	}
}
