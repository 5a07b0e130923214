package shim

import (
	"io"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Status is where a container is in its life, as the shim sees it:
//
//	Create ──► StatusCreated ──Start──► StatusRunning ──exit──► StatusStopped ──Delete──► (gone)
//	                 └────────────────── exit or kill ─────────────────┘
type Status int

const (
	StatusUnknown Status = iota
	StatusCreated
	StatusRunning
	StatusStopped
)

func (s Status) String() string {
	switch s {
	case StatusCreated:
		return "created"
	case StatusRunning:
		return "running"
	case StatusStopped:
		return "stopped"
	}
	return "unknown"
}

// Reason hints the shim gives for a stopped container; the daemon may use them as CRI reasons.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
)

// ContainerState is one container as the shim reports it. Zero times mean "not yet".
type ContainerState struct {
	ID         string    `json:"id"`
	Status     Status    `json:"status"`
	Pid        int       `json:"pid"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	ExitCode   int       `json:"exit_code"`
	// Signaled says the init was killed by a signal; ExitCode is then 128+signal.
	Signaled bool `json:"signaled,omitempty"`
	// OOMKilled says the container's cgroup recorded an OOM kill before the exit.
	OOMKilled bool   `json:"oom_killed,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Message   string `json:"message,omitempty"`
	LogPath   string `json:"log_path,omitempty"`
}

// CreateOptions describe a container to create.
type CreateOptions struct {
	ID string
	// Spec is the complete OCI spec; Spec.Root.Path is replaced by Rootfs.
	Spec *specs.Spec
	// Rootfs is the container's root filesystem, already mounted by the daemon.
	Rootfs    string
	Stdin     bool
	StdinOnce bool
	Tty       bool
	// LogPath is the CRI log file's absolute path; empty discards the output.
	LogPath string
	// LogRoot is the pod's log directory, which LogPath lies beneath: the shim opens the
	// file relative to it without following any symlink (OpenLogFile).
	LogRoot string
}

// ExecSyncOptions describe a command to run in a running container. The container's process
// settings (capabilities, no_new_privs, seccomp, AppArmor, rlimits...) apply; Args replace the
// command and the other fields replace the container's values when set.
type ExecSyncOptions struct {
	Args []string
	Env  []string
	Cwd  string
	User *specs.User
	// Timeout kills the command's process group after this long; 0 means no timeout.
	Timeout time.Duration
}

// ExecSyncResult is what a command printed (each stream capped at MaxExecOutput) and how it ended.
type ExecSyncResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
	TimedOut bool
}

// MaxExecOutput is the most ExecSync keeps of each of stdout and stderr.
const MaxExecOutput = 16 << 20

// Info describes a running shim.
type Info struct {
	Pid   int    `json:"pid"`
	PodID string `json:"pod_id"`
	// PidNamespace is the path of the pod's PID namespace when the shim holds one
	// (StartOptions.PidNamespace): put it in the containers' specs. Empty once the holder
	// died (killed from outside): the namespace died with it.
	PidNamespace string `json:"pid_namespace,omitempty"`
	// PidHolderPid is the pid of the process that is PID 1 of that namespace (0 once it died).
	PidHolderPid int `json:"pid_holder_pid,omitempty"`
	// Seccomp says the shim was built with seccomp support (-tags seccomp).
	Seccomp bool   `json:"seccomp,omitempty"`
	Version string `json:"version,omitempty"`
	// Goroutines is the shim's runtime.NumGoroutine(): a leak test checks it comes back.
	Goroutines int `json:"goroutines"`
}

// TerminalSize is a terminal's size in characters.
type TerminalSize struct{ Width, Height uint16 }

// ExecOptions describe an interactive command in a running container. The container's process
// settings apply as for ExecSync; Env/Cwd/User override when set.
type ExecOptions struct {
	Args []string
	Env  []string
	Cwd  string
	User *specs.User
	// Tty gives the command a terminal: its stdin, stdout and stderr are the terminal's, all
	// its output arrives on Stdout, and closing Stdin sends the terminal's EOF character.
	Tty bool
	// Stdin is read until EOF, then the command's stdin is closed. nil: the command gets no
	// stdin (/dev/null). Exec may return while a Read of Stdin is still pending; that
	// goroutine ends when the Read returns (close the source when Exec has returned).
	Stdin io.Reader
	// Stdout and Stderr receive the command's output. nil: that stream is not wanted
	// (/dev/null). With Tty, all output goes to Stdout.
	Stdout, Stderr io.Writer
	// Resize may be nil; each value resizes the command's terminal. A value waiting in the
	// channel when Exec is called is the terminal's initial size.
	Resize <-chan TerminalSize
}

// AttachOptions are a client's ends of an attach to a container's own stdio.
type AttachOptions struct {
	// Stdin goes to the container's stdin if the container was created with Stdin; otherwise
	// it is ignored (never read), as it is after a StdinOnce container's stdin was closed.
	// nil: do not write to the container's stdin.
	Stdin io.Reader
	// Stdout and Stderr receive the container's output from the moment of the attach; nil:
	// that stream is not wanted. A tty container's output is all on Stdout.
	Stdout, Stderr io.Writer
	// Resize resizes the terminal of a container with a tty (ignored otherwise). A value
	// waiting in the channel when Attach is called is applied first.
	Resize <-chan TerminalSize
}

// SocketPath is where the shim of the pod whose state dir is stateDir listens.
func SocketPath(stateDir string) string { return filepath.Join(stateDir, "call.sock") }

// LegacySocketPath is where a shim from before the call protocol listened (ttrpc): a daemon
// that finds only that socket knows the shim is too old for it.
func LegacySocketPath(stateDir string) string { return filepath.Join(stateDir, "shim.sock") }

// StreamSocketPath is where the shim of the pod whose state dir is stateDir serves interactive
// exec and attach sessions (one connection per session; see shim/wire).
func StreamSocketPath(stateDir string) string { return filepath.Join(stateDir, "stream.sock") }

// LogPath is where the shim of the pod whose state dir is stateDir writes its own log.
func LogPath(stateDir string) string { return filepath.Join(stateDir, "shim.log") }
