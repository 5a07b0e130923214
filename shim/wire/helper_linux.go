package wire

import (
	"encoding/json"
	"fmt"
	"net"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The shim's libcontainer work runs in a short-lived helper (peapod-shim-runc helper), so
// that the long-lived monitor links no libcontainer and stays small. The monitor starts a
// helper with one end of a socket pair as fd 3; the helper says hello (HelperHello), takes
// one request, answers it and exits. Container processes the helper started are then
// reparented to the monitor, the pod's child subreaper, which reaps them.
//
// A request is one message carrying the fds of the new process (stdin, stdout, stderr and
// console socket, those HelperRequest names, in that order) as SCM_RIGHTS, followed by a
// JSON frame (FrameHeader). The answer is a JSON frame (FrameOK) of HelperReply.

// HelperFD is the helper's end of its socket.
const HelperFD = 3

// Helper operations.
const (
	HelperCreate  = "create"  // Spec, Rootfs, Terminal, stdio: create the container, start its init
	HelperExec    = "exec"    // Spec, Exec, stdio: start a process in the running container
	HelperSignal  = "signal"  // Signal, All: signal the container through libcontainer
	HelperKillAll = "killall" // SIGKILL what is left of a container sharing a PID namespace
	HelperDestroy = "destroy" // remove the stopped container's cgroup and state
	HelperRemove  = "remove"  // kill and remove what an earlier shim left of a container
	// HelperCheckpoint dumps the running container with CRIU (ImagesDir, WorkDir,
	// LeaveRunning) through peapod-checkpoint, which runs beside the helper.
	HelperCheckpoint = "checkpoint"
)

// HelperHello is what a helper says once it is ready for its request.
type HelperHello struct {
	Seccomp bool `json:"seccomp,omitempty"`
}

// HelperRequest is the one job of a helper.
//
// Spec is the container's OCI spec as the daemon sent it: the monitor passes the bytes on and
// never decodes them (encoding/json's reflection over the spec's types would stay in its
// heap for the pod's life). The helper applies Rootfs and Terminal to it for a create, and
// builds an exec's process from its Process and Exec.
type HelperRequest struct {
	Op       string          `json:"op"`
	ID       string          `json:"id"`
	Spec     json.RawMessage `json:"spec,omitempty"`
	Rootfs   string          `json:"rootfs,omitempty"`
	Terminal bool            `json:"terminal,omitempty"`
	Exec     *ExecOverrides  `json:"exec,omitempty"`
	Signal   int             `json:"signal,omitempty"`
	All      bool            `json:"all,omitempty"`
	Stdin    bool            `json:"stdin,omitempty"`
	Stdout   bool            `json:"stdout,omitempty"`
	Stderr   bool            `json:"stderr,omitempty"`
	Console  bool            `json:"console,omitempty"`

	ImagesDir    string `json:"images_dir,omitempty"`
	WorkDir      string `json:"work_dir,omitempty"`
	LeaveRunning bool   `json:"leave_running,omitempty"`
}

// ExecOverrides is what an exec changes of the container's process.
type ExecOverrides struct {
	Args        []string    `json:"args"`
	Env         []string    `json:"env,omitempty"`
	Cwd         string      `json:"cwd,omitempty"`
	User        *specs.User `json:"user,omitempty"`
	Terminal    bool        `json:"terminal,omitempty"`
	ConsoleSize *specs.Box  `json:"console_size,omitempty"`
}

// Process is the container's process base with the exec's command and overrides.
func (e ExecOverrides) Process(base specs.Process) *specs.Process {
	p := base
	p.Terminal = e.Terminal
	p.ConsoleSize = e.ConsoleSize
	p.Args = e.Args
	if len(e.Env) > 0 {
		p.Env = e.Env
	}
	if e.Cwd != "" {
		p.Cwd = e.Cwd
	}
	if e.User != nil {
		p.User = *e.User
	}
	return &p
}

// HelperReply is the helper's answer. Class and Error carry a failure (ErrorClass).
type HelperReply struct {
	Pid         int               `json:"pid,omitempty"`
	SharedPid   bool              `json:"shared_pid,omitempty"`
	CgroupPaths map[string]string `json:"cgroup_paths,omitempty"`
	Error       string            `json:"error,omitempty"`
	Class       string            `json:"class,omitempty"`
}

// Err is the failure the reply carries, or nil.
func (r HelperReply) Err() error {
	if r.Error == "" && r.Class == "" {
		return nil
	}
	return ClassError(r.Class, r.Error)
}

// SendFiles sends fds over conn as SCM_RIGHTS with one byte of data (their count).
func SendFiles(conn *net.UnixConn, files []*os.File) error {
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := conn.WriteMsgUnix([]byte{byte(len(fds))}, oob, nil); err != nil {
		return fmt.Errorf("send fds: %w", err)
	}
	return nil
}

// ReceiveFiles receives what SendFiles sent: at most max files.
func ReceiveFiles(conn *net.UnixConn, max int) ([]*os.File, error) {
	var b [1]byte
	oob := make([]byte, unix.CmsgSpace(4*max))
	n, oobn, _, _, err := conn.ReadMsgUnix(b[:], oob)
	if err != nil {
		return nil, fmt.Errorf("receive fds: %w", err)
	}
	if n != 1 {
		return nil, fmt.Errorf("receive fds: no count: %w", ErrProtocol)
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, fmt.Errorf("receive fds: %w", err)
		}
		for _, m := range msgs {
			got, err := unix.ParseUnixRights(&m)
			if err != nil {
				return nil, fmt.Errorf("receive fds: %w", err)
			}
			fds = append(fds, got...)
		}
	}
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		unix.CloseOnExec(fd)
		files[i] = os.NewFile(uintptr(fd), fmt.Sprintf("fd%d", fd))
	}
	if len(fds) != int(b[0]) {
		for _, f := range files {
			f.Close()
		}
		return nil, fmt.Errorf("receive fds: %d of %d: %w", len(fds), b[0], ErrProtocol)
	}
	return files, nil
}
