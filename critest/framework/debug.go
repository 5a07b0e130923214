package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// Goroutines asks the daemon's debug endpoint how many goroutines it runs.
func (d *Daemon) Goroutines(ctx context.Context) (int, error) {
	b, err := d.debugGet(ctx, "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	// The first line is "goroutine profile: total N".
	first, _, _ := strings.Cut(string(b), "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(first, "goroutine profile: total "))
	if err != nil {
		return 0, fmt.Errorf("debug endpoint: unexpected answer %q", first)
	}
	return n, nil
}

// ShimStats is what a pod's peapod-shim says of itself.
type ShimStats struct {
	PID        int `json:"pid"`
	Goroutines int `json:"goroutines"`
}

// ShimStats asks the daemon's debug endpoint for the figures of the pod's shim.
func (d *Daemon) ShimStats(ctx context.Context, podID string) (ShimStats, error) {
	b, err := d.debugGet(ctx, "/debug/shims/"+podID)
	if err != nil {
		return ShimStats{}, err
	}
	var st ShimStats
	if err := json.Unmarshal(b, &st); err != nil {
		return ShimStats{}, fmt.Errorf("debug endpoint: shim stats %q: %w", b, err)
	}
	return st, nil
}

// GC makes the daemon run a garbage collection (through the heap profile's gc=1), so that
// what only finalizers release (the pidfds of processes it started) is released.
func (d *Daemon) GC(ctx context.Context) error {
	_, err := d.debugGet(ctx, "/debug/pprof/heap?gc=1")
	return err
}

func (d *Daemon) debugGet(ctx context.Context, path string) ([]byte, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", d.DebugSocket())
		},
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://peapod"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("debug endpoint: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("debug endpoint: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("debug endpoint %s: %s", path, resp.Status)
	}
	return b, nil
}
