package netns

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

func TestNewNetworkNamespaceHasLoopbackUp(t *testing.T) {
	testutil.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "ns")
	pins, err := NewPinned(t.Context(), dir, "", Net)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	err = Do(pins[Net], func() error {
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		if lo.Flags&net.FlagUp == 0 {
			t.Errorf("lo is down: %v", lo.Flags)
		}
		addrs, err := lo.Addrs()
		if err != nil {
			return err
		}
		if len(addrs) == 0 {
			t.Errorf("lo has no address")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
