package shim

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// The holder's pid and start time are kept in the state dir, so that the next shim of the
// pod can kill a holder whose shim was killed (SIGKILL leaves no chance to stop it).
func holderFile(stateDir string) string { return filepath.Join(stateDir, "pidns-holder") }

// WriteHolderFile records the pid of the holder a shim started.
func WriteHolderFile(stateDir string, pid int) error {
	start, err := processStartTime(pid)
	if err != nil {
		return err
	}
	if err := os.WriteFile(holderFile(stateDir), []byte(fmt.Sprintf("%d %d\n", pid, start)), 0o600); err != nil {
		return fmt.Errorf("record pid namespace holder: %w", err)
	}
	return nil
}

// KillStaleHolder kills the pod PID namespace holder a dead shim left in stateDir, if any:
// the daemon calls it when it removes a pod whose shim is gone, the next shim of the pod
// when it starts.
func KillStaleHolder(stateDir string, l *zap.Logger) {
	b, err := os.ReadFile(holderFile(stateDir))
	if err != nil {
		return
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscan(string(b), &pid, &start); err == nil && pid > 0 {
		// The start time proves the pid was not reused by an unrelated process.
		if now, err := processStartTime(pid); err == nil && now == start {
			l.Warn("kill stale pod pid namespace holder", zap.Int("pid", pid))
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	_ = os.Remove(holderFile(stateDir))
}

// processStartTime is field 22 of /proc/<pid>/stat, in clock ticks since boot.
func processStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// RemoveHolderFile forgets the holder once its shim has stopped it.
func RemoveHolderFile(stateDir string) { _ = os.Remove(holderFile(stateDir)) }
