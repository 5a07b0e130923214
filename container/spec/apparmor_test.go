package spec

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
)

func TestAppArmor(t *testing.T) {
	loaded := func(name string) (bool, error) { return name == "my-profile", nil }
	rd := &SecurityProfile{Type: ProfileRuntimeDefault}
	for _, tc := range []struct {
		name       string
		sp         *SecurityProfile
		privileged bool
		enabled    bool
		want       string
		wantErr    bool
	}{
		{name: "disabled, unset", sp: nil},
		{name: "disabled, unconfined", sp: &SecurityProfile{Type: ProfileUnconfined}},
		{name: "disabled, runtime default", sp: rd, wantErr: true},
		{name: "disabled, localhost", sp: &SecurityProfile{Type: ProfileLocalhost, LocalhostRef: "my-profile"}, wantErr: true},
		{name: "enabled, unset is the default", sp: nil, enabled: true, want: "peapod-default"},
		{name: "enabled, runtime default", sp: rd, enabled: true, want: "peapod-default"},
		{name: "enabled, privileged runs unconfined", sp: rd, enabled: true, privileged: true, want: ""},
		{name: "enabled, unconfined", sp: &SecurityProfile{Type: ProfileUnconfined}, enabled: true, want: ""},
		{name: "enabled, localhost", sp: &SecurityProfile{Type: ProfileLocalhost, LocalhostRef: "localhost/my-profile"}, enabled: true, want: "my-profile"},
		{name: "enabled, localhost not loaded", sp: &SecurityProfile{Type: ProfileLocalhost, LocalhostRef: "other"}, enabled: true, wantErr: true},
		{name: "enabled, localhost empty", sp: &SecurityProfile{Type: ProfileLocalhost}, enabled: true, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AppArmor(tc.sp, tc.privileged, tc.enabled, "peapod-default", loaded)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("got %q, %v; want InvalidArgument", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
