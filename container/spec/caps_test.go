package spec

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// thisVMCaps is what the daemon holds on the development VM: everything but CAP_SYS_RESOURCE.
func thisVMCaps() []string {
	return slices.DeleteFunc(KnownCapabilities(), func(c string) bool { return c == "CAP_SYS_RESOURCE" })
}

func TestResolveCapabilities(t *testing.T) {
	defaults := DefaultCapabilities()
	with := func(extra ...string) []string { return sortCaps(append(slices.Clone(defaults), extra...)) }
	without := func(drop ...string) []string {
		return sortCaps(slices.DeleteFunc(slices.Clone(defaults), func(c string) bool { return slices.Contains(drop, c) }))
	}
	for _, tc := range []struct {
		name        string
		req         Capabilities
		privileged  bool
		host        []string
		want        []string
		wantAmbient []string
		wantErr     error
	}{
		{name: "defaults", want: sortCaps(defaults)},
		{name: "add without prefix, any case", req: Capabilities{Add: []string{"net_admin", "Sys_Time"}}, want: with("CAP_NET_ADMIN", "CAP_SYS_TIME")},
		{name: "add with prefix", req: Capabilities{Add: []string{"CAP_SYS_ADMIN", "cap_bpf"}}, want: with("CAP_SYS_ADMIN", "CAP_BPF")},
		{name: "drop", req: Capabilities{Drop: []string{"NET_RAW", "cap_mknod"}}, want: without("CAP_NET_RAW", "CAP_MKNOD")},
		{name: "add ALL", req: Capabilities{Add: []string{"ALL"}}, host: thisVMCaps(), want: thisVMCaps()},
		{name: "add all, lower case, unknown host", req: Capabilities{Add: []string{"all"}}, want: KnownCapabilities()},
		{name: "add ALL drop one", req: Capabilities{Add: []string{"ALL"}, Drop: []string{"CHOWN"}}, host: thisVMCaps(),
			want: slices.DeleteFunc(thisVMCaps(), func(c string) bool { return c == "CAP_CHOWN" })},
		{name: "drop ALL add one", req: Capabilities{Drop: []string{"ALL"}, Add: []string{"NET_BIND_SERVICE"}}, want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "drop ALL", req: Capabilities{Drop: []string{"ALL"}}, want: nil},
		{name: "ambient", req: Capabilities{AddAmbient: []string{"NET_ADMIN"}}, want: with("CAP_NET_ADMIN"), wantAmbient: []string{"CAP_NET_ADMIN"}},
		{name: "ambient dropped again", req: Capabilities{AddAmbient: []string{"NET_ADMIN"}, Drop: []string{"NET_ADMIN"}}, want: sortCaps(defaults)},
		{name: "privileged is the host set", privileged: true, req: Capabilities{Drop: []string{"ALL"}}, host: thisVMCaps(), want: thisVMCaps()},
		{name: "defaults limited to the host", host: []string{"CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"}, want: []string{"CAP_CHOWN", "CAP_KILL"}},

		{name: "unknown add", req: Capabilities{Add: []string{"CAP_FLY"}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "unknown drop", req: Capabilities{Drop: []string{"teleport"}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "ambient ALL", req: Capabilities{AddAmbient: []string{"ALL"}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "not held by the daemon", req: Capabilities{Add: []string{"SYS_RESOURCE"}}, host: thisVMCaps(), wantErr: errdefs.ErrFailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveCapabilities(tc.req, tc.privileged, tc.host)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, %v; want %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for name, set := range map[string][]string{"bounding": got.Bounding, "effective": got.Effective, "permitted": got.Permitted} {
				if !slices.Equal(set, tc.want) {
					t.Errorf("%s = %v\nwant %v", name, set, tc.want)
				}
			}
			if !slices.Equal(got.Ambient, tc.wantAmbient) || !slices.Equal(got.Inheritable, tc.wantAmbient) {
				t.Errorf("ambient %v inheritable %v, want %v", got.Ambient, got.Inheritable, tc.wantAmbient)
			}
		})
	}
}

func sortCaps(caps []string) []string {
	var out []string
	for _, c := range KnownCapabilities() {
		if slices.Contains(caps, c) {
			out = append(out, c)
		}
	}
	return out
}

func TestParseProcStatusCapabilities(t *testing.T) {
	status := "Name:\tpeapod\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\n" +
		"CapEff:\t000001fffeffffff\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n"
	got, err := ParseProcStatusCapabilities(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, thisVMCaps()) {
		t.Fatalf("got %v", got)
	}
	if _, err := ParseProcStatusCapabilities(strings.NewReader("Name:\tx\n")); err == nil {
		t.Fatal("no CapBnd accepted")
	}
	if _, err := ParseProcStatusCapabilities(strings.NewReader("CapBnd:\tzz\n")); err == nil {
		t.Fatal("bad hex accepted")
	}
}

func TestDefaultCapabilitiesAreKnown(t *testing.T) {
	if n := len(DefaultCapabilities()); n != 14 {
		t.Fatalf("%d default capabilities, want 14", n)
	}
	for _, c := range DefaultCapabilities() {
		if _, err := NormalizeCapability(c); err != nil {
			t.Error(err)
		}
	}
}
