package wire

import (
	"encoding/json"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestExecOverridesProcess: an exec's process is the container's with the exec's command,
// its env, cwd and user when given, and its own terminal; the container's process is left
// as it was.
func TestExecOverridesProcess(t *testing.T) {
	base := specs.Process{
		Terminal: true, ConsoleSize: &specs.Box{Width: 80, Height: 24},
		Args: []string{"sleep", "1000"}, Env: []string{"A=1"}, Cwd: "/srv",
		User: specs.User{UID: 1000, GID: 1000}, NoNewPrivileges: true,
	}
	orig, _ := json.Marshal(base)
	got := ExecOverrides{Args: []string{"true"}}.Process(base)
	want := base
	want.Terminal, want.ConsoleSize, want.Args = false, nil, []string{"true"}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("plain exec: got %+v, want %+v", *got, want)
	}
	box := &specs.Box{Width: 100, Height: 40}
	got = ExecOverrides{Args: []string{"sh"}, Env: []string{"B=2"}, Cwd: "/tmp", User: &specs.User{UID: 0}, Terminal: true, ConsoleSize: box}.Process(base)
	if got.Cwd != "/tmp" || !reflect.DeepEqual(got.Env, []string{"B=2"}) || got.User.UID != 0 || !got.Terminal || got.ConsoleSize != box || !got.NoNewPrivileges {
		t.Errorf("exec with overrides: got %+v", *got)
	}
	if after, _ := json.Marshal(base); string(after) != string(orig) {
		t.Errorf("the container's process changed: %s, was %s", after, orig)
	}
}

// TestHelperRequestSpecRaw: the spec travels as the daemon's bytes, not re-encoded.
func TestHelperRequestSpecRaw(t *testing.T) {
	spec := []byte(`{"ociVersion":"1.2.0","process":{"args":["true"],"cwd":"/"},"x-unknown":{"kept":true}}`)
	b, err := json.Marshal(HelperRequest{Op: HelperCreate, ID: "c", Spec: spec, Rootfs: "/r", Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	var back HelperRequest
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if string(back.Spec) != string(spec) || back.Rootfs != "/r" || !back.Terminal {
		t.Errorf("round trip: %+v", back)
	}
}
