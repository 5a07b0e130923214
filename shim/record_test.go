package shim

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRecordsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	at := time.Unix(1700000000, 123).UTC()
	want := []ContainerState{
		{ID: "a", Status: StatusRunning, Pid: 42, CreatedAt: at, StartedAt: at, LogPath: "/l"},
		{ID: "b", Status: StatusStopped, Pid: 43, CreatedAt: at, StartedAt: at, FinishedAt: at.Add(time.Second),
			ExitCode: 137, Signaled: true, OOMKilled: true, Reason: ReasonOOMKilled},
	}
	for _, s := range want {
		if err := WriteRecord(dir, s); err != nil {
			t.Fatal(err)
		}
	}
	// Rewriting replaces; no temp file is left behind.
	if err := WriteRecord(dir, want[0]); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "containers"))
	if len(entries) != 2 {
		t.Errorf("files in record dir: %v", entries)
	}
	if err := RemoveRecord(dir, "a"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveRecord(dir, "a"); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if got, _ := ReadRecords(t.TempDir()); got != nil {
		t.Errorf("records of an empty dir: %v", got)
	}
}
