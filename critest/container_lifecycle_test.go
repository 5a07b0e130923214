package critest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// stopSignalImage is busybox whose config says STOPSIGNAL SIGUSR2.
func stopSignalImage(t *testing.T, env *framework.Env) string {
	t.Helper()
	const ref = "registry.k8s.io/e2e-test-images/peapod-stopsignal:1.0"
	img, err := framework.BuildImage(framework.ImageSpec{Busybox: true, Config: v1.Config{Cmd: []string{"sh"}, StopSignal: "SIGUSR2"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Registry.Push(framework.Context(t), ref, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

// TestContainerExitCodes: a container's exit code and reason are what its process did: 0 is
// Completed, 1 is Error, a SIGKILL is 137 Error (not OOMKilled: 137 alone proves nothing);
// created <= started <= finished; starting a container twice or after its exit is refused.
func TestContainerExitCodes(t *testing.T) {
	pod := newTestPod(t, "exits", nil)
	ctx := framework.Context(t)
	cases := []struct {
		name, script string
		code         int32
		reason       string
	}{
		{"zero", "sleep 0.2; exit 0", 0, "Completed"},
		{"one", "exit 1", 1, "Error"},
		{"killed", "kill -9 $$", 137, "Error"},
	}
	ids := make([]string, len(cases))
	for i, tc := range cases {
		ids[i] = pod.run(t, shell(tc.name, tc.script))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := pod.waitExited(t, ids[i], 10*time.Second)
			if st.ExitCode != tc.code || st.Reason != tc.reason {
				t.Errorf("exit %d reason %q message %q, want %d %s", st.ExitCode, st.Reason, st.Message, tc.code, tc.reason)
			}
			if !(st.CreatedAt > 0 && st.CreatedAt <= st.StartedAt && st.StartedAt <= st.FinishedAt) {
				t.Errorf("times created %d started %d finished %d", st.CreatedAt, st.StartedAt, st.FinishedAt)
			}
			if d := time.Duration(st.FinishedAt - st.StartedAt); tc.name == "zero" && (d < 200*time.Millisecond || d > 3*time.Second) {
				t.Errorf("ran %v, want about 200ms", d)
			}
			err := pod.rt.StartContainer(ctx, ids[i])
			wantCode(t, "start of an exited container", err, codes.FailedPrecondition)
		})
	}
	t.Run("start twice", func(t *testing.T) {
		id := pod.run(t, sleeper("twice", framework.ImageBusybox, nil))
		wantCode(t, "second start", pod.rt.StartContainer(ctx, id), codes.FailedPrecondition)
		if st := pod.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("after a refused second start: %v", st.State)
		}
	})
}

// TestContainerStop: the stop signal is the config's, else the image's, else SIGTERM; a
// process that ignores it is killed after the timeout; timeout 0 kills at once; stopping an
// exited, a never-started or an unknown container succeeds.
func TestContainerStop(t *testing.T) {
	pod := newTestPod(t, "stop", nil)
	ctx := framework.Context(t)
	stopImage := stopSignalImage(t, pod.env)
	loop := "; echo ready; while true; do sleep 0.05; done"
	withSignal := func(cfg *runtimeapi.ContainerConfig, sig runtimeapi.Signal) *runtimeapi.ContainerConfig {
		cfg.StopSignal = sig
		return cfg
	}
	withImage := func(cfg *runtimeapi.ContainerConfig, image string) *runtimeapi.ContainerConfig {
		cfg.Image.Image = image
		return cfg
	}
	cases := []struct {
		name    string
		cfg     *runtimeapi.ContainerConfig
		timeout int64
		code    int32
		min     time.Duration
		max     time.Duration
	}{
		{"sigterm", shell("sigterm", "trap 'exit 0' TERM"+loop), 10, 0, 0, time.Second},
		{"config signal", withSignal(shell("usr1", "trap 'exit 3' USR1; trap 'exit 99' TERM"+loop), runtimeapi.Signal_SIGNAL_SIGUSR1), 10, 3, 0, time.Second},
		{"image signal", withImage(shell("usr2", "trap 'exit 4' USR2; trap 'exit 99' TERM"+loop), stopImage), 10, 4, 0, time.Second},
		{"ignored", shell("ignores", "trap '' TERM"+loop), 1, 137, time.Second, 3 * time.Second},
		{"timeout 0", shell("zero", "trap 'exit 0' TERM"+loop), 0, 137, 0, time.Second},
	}
	ids := make([]string, len(cases))
	for i, tc := range cases {
		pod.pull(t, tc.cfg.Image.Image)
		ids[i] = pod.run(t, tc.cfg)
	}
	for i, tc := range cases {
		// The traps are set before "ready" is printed.
		waitLog(t, pod.logPath(tc.cfg), 5*time.Second, func(l []logLine) bool { return len(l) > 0 })
		_ = i
	}
	var wg sync.WaitGroup
	took := make([]time.Duration, len(cases))
	errs := make([]error, len(cases))
	for i, tc := range cases {
		wg.Go(func() {
			start := time.Now()
			errs[i] = pod.rt.StopContainer(ctx, ids[i], tc.timeout)
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if errs[i] != nil {
				t.Fatalf("StopContainer: %v", errs[i])
			}
			if took[i] < tc.min || took[i] > tc.max {
				t.Errorf("stop took %v, want %v..%v", took[i], tc.min, tc.max)
			}
			st := pod.status(t, ids[i])
			if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != tc.code {
				t.Errorf("after stop: %v exit %d reason %q, want EXITED %d", st.State, st.ExitCode, st.Reason, tc.code)
			}
			if err := pod.rt.StopContainer(ctx, ids[i], 10); err != nil {
				t.Errorf("stop of an exited container: %v", err)
			}
		})
	}
	t.Run("never started", func(t *testing.T) {
		id, err := pod.create(t, sleeper("created", framework.ImageBusybox, nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := pod.rt.StopContainer(ctx, id, 10); err != nil {
			t.Fatalf("stop of a created container: %v", err)
		}
		if st := pod.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			t.Errorf("created container after stop: %v", st.State)
		}
		if err := pod.rt.RemoveContainer(ctx, id); err != nil {
			t.Errorf("remove: %v", err)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		if err := pod.rt.StopContainer(ctx, "feedbeef-no-such-container", 10); err != nil {
			t.Errorf("stop of an unknown container: %v", err)
		}
	})
}

// TestContainerRemove: removing a running container kills it and deletes its rootfs mount and
// directory, its cgroup and its record; removing it again, or an unknown one, succeeds.
func TestContainerRemove(t *testing.T) {
	pod := newTestPod(t, "remove", nil)
	ctx := framework.Context(t)
	id := pod.run(t, sleeper("victim", framework.ImageBusybox, nil))
	pid := pod.pid(t, id)
	info := pod.ctrInfo(t, id)
	if err := pod.rt.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("RemoveContainer of a running container: %v", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		if st, _ := framework.ProcessStatus(pid); st["State"] != "" && st["State"][0] != 'Z' {
			t.Errorf("process %d still runs after remove (state %s)", pid, st["State"])
		}
	}
	_, err := pod.rt.ContainerStatus(ctx, id, false)
	wantCode(t, "status after remove", err, codes.NotFound)
	if ctrs, err := pod.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{Id: id}); err != nil || len(ctrs) != 0 {
		t.Errorf("listed after remove: %v %v", ctrs, err)
	}
	if pod.daemon != nil {
		if _, err := os.Stat(info.Dir); !os.IsNotExist(err) {
			t.Errorf("container dir %s after remove: %v", info.Dir, err)
		}
		if m, _ := framework.MountsUnder(info.Dir); len(m) > 0 {
			t.Errorf("mounts left: %v", m)
		}
		for _, ctrl := range []string{"memory", "cpu", "pids"} {
			p := filepath.Join("/sys/fs/cgroup", ctrl, info.CgroupPath)
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("cgroup %s after remove: %v", p, err)
			}
		}
	}
	if err := pod.rt.RemoveContainer(ctx, id); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if err := pod.rt.RemoveContainer(ctx, "feedbeef-no-such-container"); err != nil {
		t.Errorf("remove of an unknown container: %v", err)
	}
}

// TestContainerStatusAndList: status reports the request's labels and annotations byte for
// byte, the image as asked and the pulled image's id, the mounts, the log path and, verbose,
// the pid, the sandbox id and the OCI spec; ListContainers filters by id or prefix, pod,
// state and labels.
func TestContainerStatusAndList(t *testing.T) {
	pod := newTestPod(t, "status", nil)
	other := newTestPod(t, "status-other", nil)
	ctx := framework.Context(t)
	ref, err := pod.img.PullImage(ctx, &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mountDir := t.TempDir()
	labels := map[string]string{"app": "web", "odd/key.io": "value with spaces\t", "ü": "\x01\u2603"}
	annotations := map[string]string{"io.kubernetes.container.hash": "abc", "empty": "", "json": `{"a":[1,2]}`}
	cfg := sleeper("main", framework.ImageBusybox, nil)
	cfg.Labels, cfg.Annotations, cfg.LogPath = labels, annotations, "main/0.log"
	cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/m", HostPath: mountDir, Readonly: true}}
	running := pod.run(t, cfg)
	created, err := pod.create(t, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "created"},
		Image: &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, Command: []string{"true"}, Labels: map[string]string{"app": "db"}})
	if err != nil {
		t.Fatal(err)
	}
	exited := pod.run(t, shell("exited", "exit 0"))
	pod.waitExited(t, exited, 10*time.Second)
	elsewhere := other.run(t, sleeper("elsewhere", framework.ImageBusybox, nil))

	t.Run("status", func(t *testing.T) {
		resp, err := pod.rt.ContainerStatus(ctx, running, true)
		if err != nil {
			t.Fatal(err)
		}
		st := resp.Status
		if !mapsEqual(st.Labels, labels) || !mapsEqual(st.Annotations, annotations) {
			t.Errorf("labels %q annotations %q", st.Labels, st.Annotations)
		}
		if st.Image.GetImage() != framework.ImageBusybox || (!framework.External() && st.ImageRef != ref) || st.ImageId != ref {
			t.Errorf("image %q ref %q id %q, want %q and %q", st.Image.GetImage(), st.ImageRef, st.ImageId, framework.ImageBusybox, ref)
		}
		if st.Metadata.GetName() != "main" || st.Id != running {
			t.Errorf("metadata %v id %s", st.Metadata, st.Id)
		}
		if want := filepath.Join(pod.cfg.LogDirectory, "main/0.log"); st.LogPath != want {
			t.Errorf("log path %q, want %q", st.LogPath, want)
		}
		if len(st.Mounts) != 1 || st.Mounts[0].ContainerPath != "/m" || st.Mounts[0].HostPath != mountDir || !st.Mounts[0].Readonly {
			t.Errorf("mounts %v", st.Mounts)
		}
		var info containerInfo
		if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
			t.Fatalf("info %q: %v", resp.Info["info"], err)
		}
		var spec struct {
			Process struct{ Args []string } `json:"process"`
		}
		if err := json.Unmarshal(info.RuntimeSpec, &spec); err != nil {
			t.Errorf("runtimeSpec %q: %v", info.RuntimeSpec, err)
		}
		if info.Pid <= 0 || info.SandboxID != pod.id || !slices.Equal(spec.Process.Args, []string{"sleep", "3600"}) {
			t.Errorf("verbose info pid %d sandbox %q spec args %q", info.Pid, info.SandboxID, spec.Process.Args)
		}
		if raw, err := os.ReadFile(filepathJoinProc(info.Pid, "cmdline")); err != nil || !bytes.Equal(raw, []byte("sleep\x003600\x00")) {
			t.Errorf("pid %d cmdline %q %v", info.Pid, raw, err)
		}
		if resp, err := pod.rt.ContainerStatus(ctx, running, false); err != nil || len(resp.Info) != 0 {
			t.Errorf("non-verbose status has info %v (%v)", resp.GetInfo(), err)
		}
	})

	t.Run("list", func(t *testing.T) {
		state := func(s runtimeapi.ContainerState) *runtimeapi.ContainerStateValue {
			return &runtimeapi.ContainerStateValue{State: s}
		}
		for _, tc := range []struct {
			name   string
			filter *runtimeapi.ContainerFilter
			want   []string
		}{
			{"pod", &runtimeapi.ContainerFilter{PodSandboxId: pod.id}, []string{running, created, exited}},
			{"id", &runtimeapi.ContainerFilter{Id: running}, []string{running}},
			{"id prefix", &runtimeapi.ContainerFilter{Id: elsewhere[:12]}, []string{elsewhere}},
			{"running", &runtimeapi.ContainerFilter{PodSandboxId: pod.id, State: state(runtimeapi.ContainerState_CONTAINER_RUNNING)}, []string{running}},
			{"created", &runtimeapi.ContainerFilter{PodSandboxId: pod.id, State: state(runtimeapi.ContainerState_CONTAINER_CREATED)}, []string{created}},
			{"exited", &runtimeapi.ContainerFilter{PodSandboxId: pod.id, State: state(runtimeapi.ContainerState_CONTAINER_EXITED)}, []string{exited}},
			{"labels", &runtimeapi.ContainerFilter{PodSandboxId: pod.id, LabelSelector: map[string]string{"app": "web", "ü": "\x01\u2603"}}, []string{running}},
			{"label mismatch", &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"app": "web", "ü": "x"}}, nil},
			{"other pod", &runtimeapi.ContainerFilter{PodSandboxId: other.id}, []string{elsewhere}},
			{"id and wrong pod", &runtimeapi.ContainerFilter{Id: running, PodSandboxId: other.id}, nil},
		} {
			ctrs, err := pod.rt.ListContainers(ctx, tc.filter)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			var got []string
			for _, c := range ctrs {
				got = append(got, c.Id)
				if c.Id == running && (!mapsEqual(c.Labels, labels) || (!framework.External() && c.ImageRef != ref) || c.PodSandboxId != pod.id) {
					t.Errorf("%s: listed %+v", tc.name, c)
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Errorf("%s: listed %v, want %v", tc.name, got, want)
			}
		}
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestContainerReadsDoNotWait: while a container is being stopped (its process ignores the
// stop signal), status and list of it answer before the stop does, and a retried
// StopContainer is fine. (How fast they answer meanwhile is a figure of make bench:
// ContainerStatus+List/while-stopping.)
func TestContainerReadsDoNotWait(t *testing.T) {
	pod := newTestPod(t, "cheap-reads", nil)
	ctx := framework.Context(t)
	cfg := shell("stubborn", "trap 'echo got-term' TERM; echo ready; while true; do sleep 0.05; done")
	id := pod.run(t, cfg)
	waitLog(t, pod.logPath(cfg), 5*time.Second, func(l []logLine) bool { return len(l) > 0 })
	done := make(chan error, 1)
	go func() { done <- pod.rt.StopContainer(ctx, id, 2) }()
	// The stop is under way once the stop signal has come.
	waitLog(t, pod.logPath(cfg), 5*time.Second, func(l []logLine) bool {
		return slices.ContainsFunc(l, func(x logLine) bool { return x.text == "got-term" })
	})
	// Creates under way at the same time must not hold up reads either.
	var creates sync.WaitGroup
	for i := range 4 {
		creates.Go(func() {
			if _, err := pod.create(t, sleeper(fmt.Sprintf("busy-%d", i), framework.ImageBusybox, nil)); err != nil {
				t.Errorf("CreateContainer: %v", err)
			}
		})
	}
	defer creates.Wait()
	for i := 0; i < 20; i++ {
		st, err := pod.rt.ContainerStatus(ctx, id, i%2 == 0)
		if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("status while stopping: %v %v", st.GetStatus().GetState(), err)
		}
		if _, err := pod.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: pod.id}); err != nil {
			t.Fatal(err)
		}
	}
	// Every read answered while the stop still waited out its timeout: none waited for it.
	select {
	case err := <-done:
		t.Fatalf("stop returned before its timeout: %v", err)
	default:
	}
	if err := <-done; err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	if st := pod.status(t, id); st.ExitCode != 137 {
		t.Errorf("exit %d, want 137", st.ExitCode)
	}
	_, err := pod.rt.ContainerStatus(ctx, "feedbeef-none", false)
	if status.Code(err) != codes.NotFound {
		t.Errorf("status of an unknown container: %v", err)
	}
}
