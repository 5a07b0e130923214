package critest

import (
	"fmt"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestNewContainerAfterRestart: after the daemon is restarted (SIGTERM, then SIGKILL), a pod
// that existed before still gets new containers, in its shared PID namespace (NamespaceMode
// POD, held by the pod's shim) as well as without one. A kubelet restarting a crashed
// container after a runtime upgrade does exactly this.
func TestNewContainerAfterRestart(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t)
	c := framework.MustConnect(t, d.Endpoint())
	pods := map[string]*testPod{}
	for name, mode := range map[string]runtimeapi.NamespaceMode{"pidpod": runtimeapi.NamespaceMode_POD, "pidctr": runtimeapi.NamespaceMode_CONTAINER} {
		p := &testPod{env: framework.Shared(t), rt: c.Runtime, img: c.Image, daemon: d}
		pods[name] = newTestPodOn(t, p, name, func(cfg *runtimeapi.PodSandboxConfig) {
			cfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: mode},
			}
		})
	}
	first := map[string]string{}
	for name, p := range pods {
		first[name] = p.run(t, sleeper("first", framework.ImageBusybox, nil))
	}
	for i, restart := range []struct {
		name string
		stop func() error
	}{
		{"sigterm", d.Stop},
		{"sigkill", d.Kill},
	} {
		t.Run(restart.name, func(t *testing.T) {
			if err := restart.stop(); err != nil {
				t.Fatalf("stop the daemon: %v", err)
			}
			if err := d.Start(framework.Context(t)); err != nil {
				t.Fatalf("restart: %v", err)
			}
			for name, p := range pods {
				waitServing(t, p, first[name])
				cfg := sleeper(fmt.Sprintf("after-%s-%d", restart.name, i), framework.ImageBusybox, nil)
				id, err := p.create(t, cfg)
				if err != nil {
					t.Errorf("%s: CreateContainer after the restart: %v", name, err)
					continue
				}
				if err := p.rt.StartContainer(framework.Context(t), id); err != nil {
					t.Errorf("%s: StartContainer after the restart: %v", name, err)
					continue
				}
				if got := p.sh(t, id, "echo up"); got != "up" {
					t.Errorf("%s: exec in the new container: %q", name, got)
				}
				// The new container joins the pod's PID namespace (or gets its own) as the
				// first one did.
				oldNS, newNS := nsLink(t, p.pid(t, first[name]), "pid"), nsLink(t, p.pid(t, id), "pid")
				if shared := oldNS == newNS; shared != (name == "pidpod") {
					t.Errorf("%s: pid namespaces of the first container %s and the new one %s", name, oldNS, newNS)
				}
				if st := p.status(t, first[name]); st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
					t.Errorf("%s: first container after the restart: %v", name, st.GetState())
				}
			}
		})
	}
}
