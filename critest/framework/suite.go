package framework

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
)

type suiteFlagValues struct {
	endpoint     string
	endpointPID  int
	peapodBin    string
	registryAddr string
	daemonOutput bool
}

// suiteState is the framework's one process-wide state: the flags Main parsed and the shared
// registry, daemon and client, created on first use and stopped when Main's tests are done.
type suiteState struct {
	mu          sync.Mutex
	flags       suiteFlagValues
	inMain      bool
	registry    *Registry
	registryErr error
	daemon      *Daemon
	endpoint    string
	runtime     internalapi.RuntimeService
	image       internalapi.ImageManagerService
	imageErr    error
	envErr      error
}

var suite suiteState

// Main is the TestMain of every package that uses the framework:
//
//	func TestMain(m *testing.M) { framework.Main(m) }
//
// It registers the suite's flags, runs the tests, then stops the shared daemon (failing the
// run unless it exits 0) and the shared registry. Flags:
//
//	-endpoint URL        CRI endpoint to test (unix:///run/containerd/containerd.sock); empty:
//	                     start peapod from bin/peapod
//	-endpoint-pid N      the PID of the -endpoint runtime, for memory and leak checks
//	-peapod-bin PATH     the peapod binary (default <repo>/bin/peapod)
//	-registry-addr ADDR  listen address of the shared test registry (default 127.0.0.1:0);
//	                     fix it when an external runtime's mirror config must name it
//	-daemon-output       copy the daemons' output to stderr as it is written
func Main(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	var f suiteFlagValues
	fs := flag.CommandLine
	fs.StringVar(&f.endpoint, "endpoint", "", "CRI endpoint to test (e.g. unix:///run/containerd/containerd.sock); empty starts peapod from bin/peapod")
	fs.IntVar(&f.endpointPID, "endpoint-pid", 0, "PID of the runtime behind -endpoint, for memory and leak checks")
	fs.StringVar(&f.peapodBin, "peapod-bin", "", "peapod binary to start (default <repo>/bin/peapod)")
	fs.StringVar(&f.registryAddr, "registry-addr", "127.0.0.1:0", "listen address of the shared test registry")
	fs.BoolVar(&f.daemonOutput, "daemon-output", false, "copy started daemons' output to stderr as it is written")
	flag.Parse()
	f.endpoint = NormalizeEndpoint(f.endpoint)

	suite.mu.Lock()
	suite.flags = f
	suite.inMain = true
	suite.mu.Unlock()

	cleanNode := NodeCleanup()
	code := m.Run()
	defer func() {
		// What the suite's own daemons made on the node goes with them.
		if f.endpoint == "" {
			cleanNode()
		}
	}()
	if err := suite.shutdown(); err != nil {
		fmt.Fprintf(os.Stderr, "critest framework: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func suiteFlags() suiteFlagValues {
	suite.mu.Lock()
	defer suite.mu.Unlock()
	f := suite.flags
	if f.registryAddr == "" {
		f.registryAddr = "127.0.0.1:0"
	}
	return f
}

// Endpoint is the -endpoint flag ("" when the suite starts its own peapod).
func Endpoint() string { return suiteFlags().endpoint }

// External reports whether -endpoint names a runtime the suite did not start.
func External() bool { return suiteFlags().endpoint != "" }

// RequirePeapod skips t when -endpoint names another runtime: the test checks something only
// peapod promises (its flags, config file, lock, restart behaviour).
func RequirePeapod(t testing.TB) {
	t.Helper()
	if e := Endpoint(); e != "" {
		t.Skipf("SKIP-REASON: peapod-specific test; -endpoint=%s names a runtime this suite did not start", e)
	}
}

// Env is the runtime a test drives.
type Env struct {
	// Endpoint is the CRI endpoint (unix://...).
	Endpoint string
	// Runtime is the kubelet's runtime-service client, shared by the suite's tests.
	Runtime internalapi.RuntimeService
	// Daemon is the peapod the suite started; nil with -endpoint.
	Daemon *Daemon
	// Registry serves the test images; the runtime mirrors the well-known registries to it.
	Registry *Registry

	image    internalapi.ImageManagerService
	imageErr error
}

// Image is the kubelet's image-service client. It fails t if the image service could not be
// connected (the kubelet's client requires ImageFsInfo to answer).
func (e *Env) Image(t testing.TB) internalapi.ImageManagerService {
	t.Helper()
	if e.imageErr != nil {
		t.Fatalf("image service: %v", e.imageErr)
	}
	return e.image
}

// PID is the runtime's process id: the started daemon's, or -endpoint-pid. It skips t when
// neither is known.
func (e *Env) PID(t testing.TB) int {
	t.Helper()
	if e.Daemon != nil {
		return e.Daemon.PID()
	}
	if pid := suiteFlags().endpointPID; pid > 0 {
		return pid
	}
	t.Skip("SKIP-REASON: the runtime's PID is unknown; pass -endpoint-pid with -endpoint")
	return 0
}

// Shared returns the suite's runtime: the -endpoint runtime, or one peapod started on first
// use and stopped after the last test (a per-test daemon when Main is not in use). The
// registry is the shared one. If t fails, the daemon's output written during t is logged.
func Shared(t testing.TB) *Env {
	t.Helper()
	reg := SharedRegistry(t)
	suite.mu.Lock()
	inMain, f := suite.inMain, suite.flags
	suite.mu.Unlock()
	if !inMain {
		// No Main to stop a shared daemon at the end: give this test its own.
		env := &Env{Endpoint: f.endpoint, Registry: reg}
		if f.endpoint == "" {
			env.Daemon = StartDaemon(t, WithRegistry(reg))
			env.Endpoint = env.Daemon.Endpoint()
		}
		env.Runtime = MustConnectRuntime(t, env.Endpoint)
		env.image, env.imageErr = ConnectImage(t.Context(), env.Endpoint)
		if env.imageErr == nil {
			t.Cleanup(func() { _ = env.image.Close(Quiet(context.Background())) })
		}
		return env
	}

	suite.mu.Lock()
	defer suite.mu.Unlock()
	if suite.envErr != nil {
		t.Fatalf("shared runtime unavailable: %v", suite.envErr)
	}
	if suite.runtime == nil {
		if err := suite.startLocked(reg); err != nil {
			suite.envErr = err
			t.Fatalf("shared runtime unavailable: %v", err)
		}
	}
	env := &Env{Endpoint: suite.endpoint, Runtime: suite.runtime, Daemon: suite.daemon, Registry: reg,
		image: suite.image, imageErr: suite.imageErr}
	if d := env.Daemon; d != nil {
		if !d.Running() {
			t.Fatalf("the shared peapod is no longer running: %v", d.exitedError(false))
		}
		off := d.StderrLen()
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("shared peapod output during %s:\n%s", t.Name(), tail(d.StderrSince(off), 64*1024))
			}
		})
	}
	return env
}

func (s *suiteState) startLocked(reg *Registry) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	endpoint := s.flags.endpoint
	if endpoint == "" {
		opts := []DaemonOption{WithRegistry(reg)}
		if s.flags.peapodBin != "" {
			opts = append(opts, WithBinary(s.flags.peapodBin))
		}
		if s.flags.daemonOutput {
			opts = append(opts, WithOutput(os.Stderr))
		}
		d, err := LaunchDaemon(ctx, opts...)
		if err != nil {
			return fmt.Errorf("start shared peapod: %w", err)
		}
		s.daemon = d
		endpoint = d.Endpoint()
	}
	rs, err := ConnectRuntime(ctx, endpoint)
	if err != nil {
		return err
	}
	s.endpoint, s.runtime = endpoint, rs
	s.image, s.imageErr = ConnectImage(ctx, endpoint)
	return nil
}

// SharedRegistry returns the suite's test registry (listening on -registry-addr), started
// on first use; without Main, a registry for t alone.
func SharedRegistry(t testing.TB) *Registry {
	t.Helper()
	suite.mu.Lock()
	inMain := suite.inMain
	suite.mu.Unlock()
	if !inMain {
		return StartRegistry(t)
	}
	suite.mu.Lock()
	defer suite.mu.Unlock()
	if suite.registry == nil && suite.registryErr == nil {
		addr := suite.flags.registryAddr
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		suite.registry, suite.registryErr = NewRegistry(context.Background(), WithRegistryAddr(addr))
	}
	if suite.registryErr != nil {
		t.Fatalf("shared test registry: %v", suite.registryErr)
	}
	return suite.registry
}

func (s *suiteState) shutdown() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.runtime != nil {
		_ = s.runtime.Close(Quiet(context.Background()))
		s.runtime = nil
	}
	if s.image != nil {
		_ = s.image.Close(Quiet(context.Background()))
		s.image = nil
	}
	if d := s.daemon; d != nil {
		if err := d.stopForCleanup(); err != nil {
			errs = append(errs, fmt.Errorf("shared peapod: %w", err))
			fmt.Fprintf(os.Stderr, "shared peapod output:\n%s\n", tail(d.Stderr(), 64*1024))
		}
		if err := d.Close(); err != nil {
			errs = append(errs, fmt.Errorf("clean up shared peapod: %w", err))
		}
		s.daemon = nil
	}
	if s.registry != nil {
		_ = s.registry.Close()
		s.registry = nil
	}
	return errors.Join(errs...)
}
