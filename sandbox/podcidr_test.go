package sandbox

import (
	"path/filepath"
	"testing"

	"github.com/peapod-runtime/peapod/store"
)

func TestPodCIDRSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &Manager{db: db}
	if got, err := m.PodCIDR(); err != nil || got != "" {
		t.Fatalf("PodCIDR of a new store = %q, %v; want \"\", nil", got, err)
	}
	for _, cidr := range []string{"10.88.0.0/16", "10.88.0.0/16,fd00::/64"} {
		if err := m.SetPodCIDR(cidr); err != nil {
			t.Fatalf("SetPodCIDR(%q): %v", cidr, err)
		}
		if got, err := m.PodCIDR(); err != nil || got != cidr {
			t.Fatalf("PodCIDR after SetPodCIDR(%q) = %q, %v", cidr, got, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = store.Open(path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m = &Manager{db: db}
	if got, err := m.PodCIDR(); err != nil || got != "10.88.0.0/16,fd00::/64" {
		t.Fatalf("PodCIDR after reopening the store = %q, %v", got, err)
	}
}
