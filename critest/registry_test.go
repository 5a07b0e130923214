package critest

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestRegistryServesTestImages proves the suite's registry (the one every daemon mirrors to)
// serves every test image over plain HTTP: each manifest resolves and every blob is read and
// digest-checked by go-containerregistry's client. Pull failures elsewhere are then the
// runtime's.
func TestRegistryServesTestImages(t *testing.T) {
	reg := framework.SharedRegistry(t)
	ctx := t.Context()
	served := reg.Images()
	for _, n := range framework.TestImageNames() {
		t.Run(n, func(t *testing.T) {
			ref, ok := served[n]
			if !ok {
				t.Fatalf("not served")
			}
			parsed, err := name.ParseReference(ref, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if parsed.Context().RegistryStr() != reg.Host() {
				t.Fatalf("served from %s, want %s", parsed.Context().RegistryStr(), reg.Host())
			}
			desc, err := remote.Get(parsed, reg.RemoteOptions(ctx)...)
			if err != nil {
				t.Fatal(err)
			}
			if desc.MediaType.IsIndex() {
				idx, err := desc.ImageIndex()
				if err != nil {
					t.Fatal(err)
				}
				if err := validate.Index(idx); err != nil {
					t.Fatal(err)
				}
				return
			}
			img, err := desc.Image()
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(img); err != nil {
				t.Fatal(err)
			}
		})
	}
}
