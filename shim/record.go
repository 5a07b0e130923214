package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Records are how a shim persists each container's state (above all its exit) before it
// reports it. They outlive the shim: a daemon whose shim was killed reads them with
// ReadRecords to learn the exits that happened before.

func recordDir(stateDir string) string { return filepath.Join(stateDir, "containers") }

func recordPath(stateDir, id string) string {
	return filepath.Join(recordDir(stateDir), id+".json")
}

// WriteRecord replaces the record of s.ID atomically: temp file, rename. Records live in the
// pod's directory under the daemon's state directory, which is volatile (a tmpfs on a node:
// nothing in it, containers included, outlives a reboot); what they must outlive is a shim's
// or the daemon's death, and the page cache does. So neither the file nor the directory is
// synced: on a disk-backed state directory that was two fsyncs on every create and start.
func WriteRecord(stateDir string, s ContainerState) error {
	dir := recordDir(stateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create record dir: %w", err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode record of %s: %w", s.ID, err)
	}
	tmp, err := os.CreateTemp(dir, "."+s.ID+".tmp-*")
	if err != nil {
		return fmt.Errorf("write record of %s: %w", s.ID, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write record of %s: %w", s.ID, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write record of %s: %w", s.ID, err)
	}
	if err := os.Rename(tmp.Name(), recordPath(stateDir, s.ID)); err != nil {
		return fmt.Errorf("write record of %s: %w", s.ID, err)
	}
	return nil
}

// RemoveRecord removes the record of container id; none is not an error.
func RemoveRecord(stateDir, id string) error {
	err := os.Remove(recordPath(stateDir, id))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove record of %s: %w", id, err)
	}
	return nil
}

// ReadRecords returns the containers recorded under a pod's state dir, as the shim last
// persisted them. Use it when the shim is gone (Connect fails with ErrUnavailable): a
// container recorded as StatusStopped exited with the recorded code; any other status means
// the monitor was lost while the container ran.
func ReadRecords(stateDir string) ([]ContainerState, error) {
	entries, err := os.ReadDir(recordDir(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read container records: %w", err)
	}
	var out []ContainerState
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(recordDir(stateDir), name))
		if err != nil {
			return nil, fmt.Errorf("read container record: %w", err)
		}
		var s ContainerState
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("decode container record %s: %w", name, err)
		}
		out = append(out, s)
	}
	return out, nil
}
