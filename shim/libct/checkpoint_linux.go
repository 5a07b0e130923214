package libct

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
)

// CheckpointHelper is the program Container.Checkpoint runs, looked up beside the running
// executable (bin/peapod-shim-runc beside bin/peapod-checkpoint): cmd/peapod-checkpoint, which
// calls Checkpoint below.
//
// libcontainer's CRIU code calls reflect's MethodByName, which makes the linker keep every
// exported method of the binary: linked into peapod-shim it added 2.2 MB of text and 2 MiB
// of RSS to every shim. The helper carries that weight only while a checkpoint runs.
const CheckpointHelper = "peapod-checkpoint"

// The helper's exit codes, so that the shim can keep the error's class.
const (
	checkpointExitFailed       = 1
	checkpointExitPrecondition = 2
	checkpointExitInvalid      = 3
)

// criuDumpLog is the log libcontainer has CRIU write in the work directory of a dump.
const criuDumpLog = "dump.log"

// Checkpoint dumps the container's process tree with CRIU into imagesDir (CRIU's log in
// workDir/dump.log) by running CheckpointHelper, which loads the container from the
// Runtime's state. With leaveRunning the container goes on afterwards, else CRIU kills it.
// What CRIU cannot do on this node is errdefs.ErrFailedPrecondition with CRIU's reason.
func (c *Container) Checkpoint(ctx context.Context, imagesDir, workDir string, leaveRunning bool) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("checkpoint container %s: find the checkpoint helper: %w", c.id, err)
	}
	helper := filepath.Join(filepath.Dir(self), CheckpointHelper)
	if _, err := os.Stat(helper); err != nil {
		return fmt.Errorf("checkpoint container %s: the checkpoint helper %s is missing (make build installs it beside peapod-shim): %w",
			c.id, helper, errdefs.ErrFailedPrecondition)
	}
	args := []string{"-root", c.root, "-id", c.id, "-images-dir", imagesDir, "-work-dir", workDir}
	if leaveRunning {
		args = append(args, "-leave-running")
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, helper, args...)
	cmd.Stderr = &stderr
	err = cmd.Run()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(stderr.String())
	for _, class := range []error{errdefs.ErrFailedPrecondition, errdefs.ErrInvalidArgument} {
		msg = strings.TrimSuffix(msg, ": "+class.Error())
	}
	if len(msg) > 4096 {
		msg = msg[:4096] + "..."
	}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("checkpoint container %s: %s: %w", c.id, msg, ctx.Err())
	case !errors.As(err, &exit):
		return fmt.Errorf("checkpoint container %s: run %s: %w", c.id, helper, err)
	case exit.ExitCode() == checkpointExitPrecondition:
		return fmt.Errorf("%s: %w", msg, errdefs.ErrFailedPrecondition)
	case exit.ExitCode() == checkpointExitInvalid:
		return fmt.Errorf("%s: %w", msg, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("checkpoint container %s: %s (%v)", c.id, msg, err)
}

// CheckpointExitCode is the exit code for err of CheckpointHelper.
func CheckpointExitCode(err error) int {
	switch {
	case errdefs.IsFailedPrecondition(err):
		return checkpointExitPrecondition
	case errdefs.IsInvalidArgument(err):
		return checkpointExitInvalid
	}
	return checkpointExitFailed
}

// Checkpoint is CheckpointHelper's work: it loads container id from the libcontainer state
// in root and dumps it with CRIU through libcontainer (CRIU's images and libcontainer's
// descriptors.json in imagesDir, CRIU's log in workDir/dump.log).
//
// CRIU must be installed and must work on this kernel: `criu check` runs first. What CRIU
// cannot do is errdefs.ErrFailedPrecondition carrying CRIU's own error lines (from the
// check, or from the dump's log), so that the caller sees why.
func Checkpoint(ctx context.Context, root, id, imagesDir, workDir string, leaveRunning bool) error {
	if !filepath.IsAbs(imagesDir) || !filepath.IsAbs(workDir) {
		return fmt.Errorf("checkpoint container %s: images and work dirs must be absolute (%q, %q): %w", id, imagesDir, workDir, errdefs.ErrInvalidArgument)
	}
	criu, err := findCRIU()
	if err != nil {
		return fmt.Errorf("checkpoint container %s: CRIU is not installed on this node (Debian: apt install criu): %w", id, errdefs.ErrFailedPrecondition)
	}
	out, err := exec.CommandContext(ctx, criu, "check").CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("checkpoint container %s: criu check: %w", id, ctx.Err())
		}
		return fmt.Errorf("checkpoint container %s: CRIU cannot checkpoint on this node: `%s check` failed (%v): %s: %w",
			id, criu, err, criuErrors(out), errdefs.ErrFailedPrecondition)
	}
	c, err := libcontainer.Load(root, id)
	if err != nil {
		if errors.Is(err, libcontainer.ErrNotExist) {
			return fmt.Errorf("checkpoint container %s: %w", id, errdefs.ErrNotFound)
		}
		return fmt.Errorf("checkpoint container %s: load: %w", id, err)
	}
	err = c.Checkpoint(&libcontainer.CriuOpts{
		ImagesDirectory: imagesDir,
		WorkDirectory:   workDir,
		LeaveRunning:    leaveRunning,
		// A container's files may hold POSIX locks; its sockets to the outside are the
		// pod's business (established TCP connections are not dumped).
		FileLocks: true,
	})
	if err != nil {
		if errors.Is(err, libcontainer.ErrNotRunning) {
			return fmt.Errorf("checkpoint container %s: it is not running: %w", id, errdefs.ErrFailedPrecondition)
		}
		reason := "no CRIU log"
		if b, rerr := os.ReadFile(filepath.Join(workDir, criuDumpLog)); rerr == nil {
			reason = criuErrors(b)
		}
		return fmt.Errorf("checkpoint container %s with CRIU: %v: %s: %w", id, err, reason, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// criuErrors picks CRIU's error lines out of its output ("Error (file:line): ..."), or its
// last lines when it printed none, at most 2 KiB.
func criuErrors(out []byte) string {
	var picked []string
	lines := strings.Split(strings.TrimSpace(string(bytes.ToValidUTF8(out, []byte("?")))), "\n")
	for _, l := range lines {
		if strings.Contains(l, "Error") {
			picked = append(picked, strings.TrimSpace(l))
		}
	}
	if len(picked) == 0 {
		picked = lines[max(0, len(lines)-5):]
	}
	s := strings.Join(picked, "; ")
	if len(s) > 2048 {
		s = s[:2048] + "..."
	}
	return s
}

// findCRIU finds criu on PATH or in the sbin directories a daemon's PATH may lack, and puts
// its directory on PATH: libcontainer runs "criu" by name.
func findCRIU() (string, error) {
	p, err := exec.LookPath("criu")
	if err != nil {
		for _, dir := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, "criu")); serr == nil {
				p, err = filepath.Join(dir, "criu"), nil
				break
			}
		}
	}
	if err != nil {
		return "", err
	}
	if found, lerr := exec.LookPath("criu"); lerr != nil || found != p {
		if err := os.Setenv("PATH", filepath.Dir(p)+string(os.PathListSeparator)+os.Getenv("PATH")); err != nil {
			return "", fmt.Errorf("set PATH: %w", err)
		}
	}
	return p, nil
}
