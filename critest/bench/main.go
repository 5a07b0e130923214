// Command bench measures a CRI runtime's latency per RPC scenario and its memory, through the
// kubelet's own CRI client.
//
//	go run ./critest/bench [-endpoint unix:///...] [-pid N] [-n 100] [-json out.json] [-scenarios a,b]
//
// Without -endpoint it starts the test registry and its own peapod from bin/peapod (as the
// critest suite does) and removes them afterwards. It prints p50/p95/p99 latency per scenario
// and the daemon's RSS as a table, and the same as JSON with -json.
//
// A scenario is one entry of scenarios(): a name, an optional untimed setup, prepare (before
// each run) and teardown, and the timed run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// env is what scenarios drive.
type env struct {
	endpoint string
	runtime  internalapi.RuntimeService
	// image is nil when the runtime's image service did not connect (imageErr says why).
	image    internalapi.ImageManagerService
	imageErr error
	// registry serves the test images; the runtime mirrors registry.k8s.io, docker.io and
	// gcr.io to it (only for the daemon bench starts itself).
	registry *framework.Registry
	daemon   *framework.Daemon
	// pidFlag is -pid, for an -endpoint runtime (or the process listening on its socket).
	pidFlag int
	// densityPods and densityIdle shape the Density scenario; bridge is the pod network's
	// bridge, whose ports must be gone once the pods are.
	densityPods int
	densityIdle time.Duration
	bridge      string
	// daemonProfile, if set, is where a cpu profile of the started peapod over the density
	// idle window goes.
	daemonProfile string
}

// scenario is one measured operation. Only run is timed.
type scenario struct {
	name     string
	setup    func(ctx context.Context, e *env) error
	prepare  func(ctx context.Context, e *env, i int) error
	run      func(ctx context.Context, e *env, i int) error
	teardown func(ctx context.Context, e *env) error
	// metrics, if set, reports figures of the scenario's own after the runs (before teardown).
	metrics func(ctx context.Context, e *env) (map[string]float64, error)
	// runs, if set, replaces -n for this scenario; noWarmup skips the warmup runs.
	runs     int
	noWarmup bool
}

// scenarios lists every scenario in the order they run; add one here.
func scenarios() []scenario {
	return append([]scenario{
		{
			name: "Version",
			run: func(ctx context.Context, e *env, _ int) error {
				_, err := e.runtime.Version(ctx, "v1")
				return err
			},
		},
		{
			name: "Status",
			run: func(ctx context.Context, e *env, _ int) error {
				_, err := e.runtime.Status(ctx, false)
				return err
			},
		},
	}, slices.Concat(containerScenarios(), streamScenarios(), sandboxScenarios(), statsScenarios(), densityScenarios())...)
}

// result is one scenario's measurements; durations in milliseconds in JSON.
type result struct {
	Name          string  `json:"name"`
	Runs          int     `json:"runs"`
	P50ms         float64 `json:"p50_ms"`
	P95ms         float64 `json:"p95_ms"`
	P99ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`
	MeanMs        float64 `json:"mean_ms"`
	RSSAfterBytes int64   `json:"rss_after_bytes,omitempty"`
	Error         string  `json:"error,omitempty"`
	// Metrics are a scenario's own figures (scenario.metrics).
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

type report struct {
	Endpoint       string    `json:"endpoint"`
	Runtime        string    `json:"runtime"`
	StartedDaemon  bool      `json:"started_daemon"`
	PID            int       `json:"pid,omitempty"`
	N              int       `json:"n"`
	When           time.Time `json:"when"`
	Scenarios      []result  `json:"scenarios"`
	RSSBytes       int64     `json:"rss_bytes,omitempty"`
	RSSUnavailable string    `json:"rss_unavailable,omitempty"`
}

type options struct {
	endpoint  string
	pid       int
	n         int
	warmup    int
	jsonPath  string
	scenarios string
	peapodBin string
	logLevel  string
	// registryAddr starts the test registry on this address for an -endpoint runtime that
	// mirrors registry.k8s.io to it (hack/containerd.sh does).
	registryAddr string
	densityPods  int
	densityIdle  time.Duration
	bridge       string
	daemonProf   string
}

func main() {
	var o options
	flag.StringVar(&o.endpoint, "endpoint", "", "CRI endpoint to measure (unix:///...); empty starts peapod from bin/peapod")
	flag.IntVar(&o.pid, "pid", 0, "PID of the -endpoint runtime, for its RSS")
	flag.IntVar(&o.n, "n", 100, "timed runs per scenario")
	flag.IntVar(&o.warmup, "warmup", 3, "untimed runs per scenario before the timed ones")
	flag.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.scenarios, "scenarios", "", "comma-separated scenarios to run (default all): "+strings.Join(names(scenarios()), ","))
	flag.StringVar(&o.peapodBin, "peapod-bin", "", "peapod binary when starting our own (default <repo>/bin/peapod)")
	flag.StringVar(&o.logLevel, "log-level", "info", "log level of the started peapod")
	flag.StringVar(&o.registryAddr, "registry-addr", "", "with -endpoint: serve the test images on this address (e.g. 127.0.0.1:5000) for a runtime that mirrors registry.k8s.io to it")
	flag.IntVar(&o.densityPods, "density-pods", defaultDensityPods, "pods of the Density scenario")
	flag.DurationVar(&o.densityIdle, "density-idle", defaultDensityIdle, "idle window of the Density scenario")
	flag.StringVar(&o.daemonProf, "density-cpuprofile", "", "write a cpu profile of the started peapod over the Density idle window to this file")
	flag.StringVar(&o.bridge, "bridge", "", "the pod network's bridge, checked for leftover ports (default peapod0 for the peapod bench starts)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(framework.Quiet(ctx), o, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func names(ss []scenario) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		out = append(out, s.name)
	}
	return out
}

func selectScenarios(all []scenario, list string) ([]scenario, error) {
	if list == "" {
		return all, nil
	}
	var out []scenario
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		i := slices.IndexFunc(all, func(s scenario) bool { return strings.EqualFold(s.name, n) })
		if i < 0 {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", n, strings.Join(names(all), ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

func run(ctx context.Context, o options, stdout io.Writer) (err error) {
	if o.n < 1 {
		return errors.New("-n must be at least 1")
	}
	selected, err := selectScenarios(scenarios(), o.scenarios)
	if err != nil {
		return err
	}
	cleanNode := framework.NodeCleanup()
	e, cleanup, err := setupEnv(ctx, o)
	if err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, cleanup())
		if e.daemon != nil {
			cleanNode()
		}
	}()

	rep := report{Endpoint: e.endpoint, StartedDaemon: e.daemon != nil, N: o.n, When: time.Now().UTC()}
	if v, err := e.runtime.Version(ctx, "v1"); err == nil {
		rep.Runtime = v.RuntimeName + " " + v.RuntimeVersion
	}
	pid := e.pidFlag
	if e.daemon != nil {
		pid = e.daemon.PID()
	}
	rep.PID = pid

	var failed []string
	for _, s := range selected {
		r := measure(ctx, e, s, o.n, o.warmup)
		if pid > 0 {
			r.RSSAfterBytes, _ = framework.ProcessRSS(pid)
		}
		if r.Error != "" {
			failed = append(failed, s.name)
		}
		rep.Scenarios = append(rep.Scenarios, r)
		if ctx.Err() != nil {
			break
		}
	}
	if pid > 0 {
		rss, err := framework.ProcessRSS(pid)
		if err != nil {
			rep.RSSUnavailable = err.Error()
		}
		rep.RSSBytes = rss
	} else {
		rep.RSSUnavailable = "pass -pid with -endpoint"
	}

	printTable(stdout, rep)
	if o.jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		if err := os.WriteFile(o.jsonPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", o.jsonPath, err)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
	}
	return ctx.Err()
}

// setupEnv connects to -endpoint, or starts the registry and a peapod.
func setupEnv(ctx context.Context, o options) (*env, func() error, error) {
	e := &env{endpoint: framework.NormalizeEndpoint(o.endpoint), pidFlag: o.pid,
		densityPods: o.densityPods, densityIdle: o.densityIdle, bridge: o.bridge, daemonProfile: o.daemonProf}
	if e.densityPods <= 0 {
		e.densityPods = defaultDensityPods
	}
	var closers []func() error
	cleanup := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	fail := func(err error) (*env, func() error, error) { return nil, nil, errors.Join(err, cleanup()) }

	if e.endpoint != "" && o.registryAddr != "" {
		reg, err := framework.NewRegistry(ctx, framework.WithRegistryAddr(o.registryAddr))
		if err != nil {
			return fail(err)
		}
		closers = append(closers, reg.Close)
		e.registry = reg
		if err := pushPauseImage(ctx, reg); err != nil {
			return fail(err)
		}
	}
	if e.endpoint != "" && e.pidFlag == 0 {
		e.pidFlag = listenerPID(strings.TrimPrefix(e.endpoint, "unix://"))
	}
	if e.endpoint == "" {
		if e.bridge == "" {
			e.bridge = "peapod0"
		}
		reg, err := framework.NewRegistry(ctx)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, reg.Close)
		e.registry = reg
		opts := []framework.DaemonOption{framework.WithRegistry(reg), framework.WithLogLevel(o.logLevel)}
		if o.peapodBin != "" {
			opts = append(opts, framework.WithBinary(o.peapodBin))
		}
		d, err := framework.LaunchDaemon(ctx, opts...)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() error {
			if err := d.Stop(); err != nil {
				return errors.Join(fmt.Errorf("peapod did not stop cleanly: %w", err), d.Close())
			}
			return d.Close()
		})
		e.daemon = d
		e.endpoint = d.Endpoint()
	}
	rs, err := framework.ConnectRuntime(ctx, e.endpoint)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() error { return rs.Close(framework.Quiet(context.Background())) })
	e.runtime = rs
	if is, err := framework.ConnectImage(ctx, e.endpoint); err == nil {
		closers = append(closers, func() error { return is.Close(framework.Quiet(context.Background())) })
		e.image = is
	} else {
		e.imageErr = err
	}
	return e, cleanup, nil
}

// measure runs s: setup, warmup, n timed runs (each after its untimed prepare), teardown.
func measure(ctx context.Context, e *env, s scenario, n, warmup int) result {
	r := result{Name: s.name}
	if s.runs > 0 {
		n = s.runs
	}
	if s.noWarmup {
		warmup = 0
	}
	fail := func(stage string, err error) result {
		r.Error = fmt.Sprintf("%s: %v", stage, err)
		return r
	}
	// The teardown runs after a failed setup too: what the setup made before it failed
	// (a pod, a container) must not outlive the bench.
	if s.teardown != nil {
		defer func() {
			if err := s.teardown(ctx, e); err != nil && r.Error == "" {
				r.Error = fmt.Sprintf("teardown: %v", err)
			}
		}()
	}
	if s.setup != nil {
		if err := s.setup(ctx, e); err != nil {
			return fail("setup", err)
		}
	}
	lat := make([]time.Duration, 0, n)
	for i := -warmup; i < n; i++ {
		if ctx.Err() != nil {
			return fail("interrupted", ctx.Err())
		}
		if s.prepare != nil {
			if err := s.prepare(ctx, e, i); err != nil {
				return fail(fmt.Sprintf("prepare run %d", i), err)
			}
			e.settle(ctx)
		}
		start := time.Now()
		err := s.run(ctx, e, i)
		d := time.Since(start)
		if err != nil {
			return fail(fmt.Sprintf("run %d", i), err)
		}
		if i >= 0 {
			lat = append(lat, d)
		}
	}
	if s.metrics != nil {
		m, err := s.metrics(ctx, e)
		r.Metrics = m
		if err != nil {
			return fail("metrics", err)
		}
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	r.Runs = len(lat)
	r.P50ms = ms(percentile(lat, 50))
	r.P95ms = ms(percentile(lat, 95))
	r.P99ms = ms(percentile(lat, 99))
	r.MaxMs = ms(lat[len(lat)-1])
	r.MeanMs = ms(sum / time.Duration(len(lat)))
	return r
}

// percentile is the nearest-rank percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*1000) / 1000
}

func printTable(w io.Writer, rep report) {
	who := rep.Endpoint
	if rep.StartedDaemon {
		who += fmt.Sprintf(" (peapod started by bench, pid %d)", rep.PID)
	} else if rep.PID > 0 {
		who += fmt.Sprintf(" (pid %d)", rep.PID)
	}
	fmt.Fprintf(w, "runtime  %s\nendpoint %s\n\n", rep.Runtime, who)
	width := len("scenario")
	for _, r := range rep.Scenarios {
		width = max(width, len(r.Name))
	}
	fmt.Fprintf(w, "%-*s %6s %9s %9s %9s %9s %11s\n", width, "scenario", "runs", "p50 ms", "p95 ms", "p99 ms", "max ms", "RSS after")
	for _, r := range rep.Scenarios {
		if r.Error != "" {
			fmt.Fprintf(w, "%-*s %6d %9s %9s %9s %9s %11s  error: %s\n", width, r.Name, r.Runs, "-", "-", "-", "-", mib(r.RSSAfterBytes), r.Error)
			continue
		}
		fmt.Fprintf(w, "%-*s %6d %9.3f %9.3f %9.3f %9.3f %11s\n", width, r.Name, r.Runs, r.P50ms, r.P95ms, r.P99ms, r.MaxMs, mib(r.RSSAfterBytes))
	}
	for _, r := range rep.Scenarios {
		for _, k := range slices.Sorted(maps.Keys(r.Metrics)) {
			fmt.Fprintf(w, "%s: %s = %.2f\n", r.Name, k, r.Metrics[k])
		}
	}
	if rep.RSSUnavailable != "" {
		fmt.Fprintf(w, "\ndaemon RSS: n/a (%s)\n", rep.RSSUnavailable)
	} else {
		fmt.Fprintf(w, "\ndaemon RSS: %s\n", mib(rep.RSSBytes))
	}
}

func mib(b int64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// settle waits (untimed) until the peapod bench started has no pod network teardown left
// running in the background (its journals in <state>/teardown), so that a run is not
// charged with the teardown of the pod the previous run's prepare removed: the prepare paid
// for it when the teardown was part of the answer, as it still is for other runtimes.
func (e *env) settle(ctx context.Context) {
	if e.daemon == nil {
		return
	}
	dir := filepath.Join(e.daemon.State(), "teardown")
	deadline := time.Now().Add(5 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if left, _ := filepath.Glob(filepath.Join(dir, "*.json")); len(left) == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// pid is the measured runtime's pid (0 when unknown).
func (e *env) pid() int {
	if e.daemon != nil {
		return e.daemon.PID()
	}
	return e.pidFlag
}
