package wire

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/peapod-runtime/peapod/shim"
)

// The call protocol is the daemon's API to a pod's shim, on the shim's socket (SocketPath):
// one connection from the daemon carries any number of calls at once. It is built from the
// same frames as the stream protocol, each payload beginning with the call's id (uint32,
// big endian), which the client picks and which is unique among its calls under way:
//
//	shim → client   'V' hello: CallProtocol, first and once, as soon as the shim accepts
//	client → shim   'Q' call: id | method (1 byte) | JSON request
//	client → shim   'X' cancel: id (the client no longer waits; the shim stops the call's work)
//	shim → client   'D' data: id | stream (1 stdout, 2 stderr) | bytes (ExecSync's output)
//	shim → client   'A' answer: id | JSON response, the call's end
//	shim → client   'F' failure: id | JSON StreamError, the call's end
//
// Every call ends with exactly one 'A' or 'F', unless the connection closes first; a shim
// answers every call it took before it closes a connection on purpose (a re-exec), so a call
// lost that way was not carried out. A shim that re-executes refuses calls with an
// Unavailable failure beginning with ReexecutingMessage: not carried out either.
//
// Not protobuf over ttrpc: the shim runs once per pod for the pod's whole life, and
// protobuf's code and the tables it builds were a fifth of what an idle shim costs.

const (
	FrameHello  FrameType = 'V'
	FrameCall   FrameType = 'Q'
	FrameCancel FrameType = 'X'
	FrameData   FrameType = 'D'
	FrameAnswer FrameType = 'A'
	FrameFail   FrameType = 'F'
)

// Method is what a call asks of the shim.
type Method byte

const (
	// Info describes the shim (shim.Info).
	MethodInfo Method = iota + 1
	// Create creates a container and starts its init, parked before exec (CreateRequest →
	// PidResponse).
	MethodCreate
	// Start lets a created container's init exec the user process (IDRequest → PidResponse).
	MethodStart
	// Signal signals the container's init, or all its processes (SignalRequest).
	MethodSignal
	// State reports one container (IDRequest → shim.ContainerState).
	MethodState
	// List reports every container (ListResponse).
	MethodList
	// Wait answers once the container has exited and its exit is persisted (IDRequest →
	// shim.ContainerState). A waiting Wait costs the shim no goroutine.
	MethodWait
	// Delete kills the container if needed and removes every trace of it; idempotent
	// (IDRequest).
	MethodDelete
	// ExecSync runs a command in a running container: its output comes in data frames, its
	// end in the answer (ExecSyncRequest → ExecSyncExit).
	MethodExecSync
	// ReopenLog closes and reopens the container's log file at the same path (IDRequest).
	MethodReopenLog
	// Shutdown stops the shim; refused while it holds containers.
	MethodShutdown
	// Checkpoint dumps a running container's process tree with CRIU (CheckpointRequest).
	MethodCheckpoint
	// Prepare says a Create will follow: the shim readies a libcontainer helper meanwhile. A
	// hint: it may do nothing.
	MethodPrepare
	methodEnd
)

var methodNames = [...]string{"", "Info", "Create", "Start", "Signal", "State", "List", "Wait", "Delete",
	"ExecSync", "ReopenLog", "Shutdown", "Checkpoint", "Prepare"}

func (m Method) String() string {
	if m > 0 && m < methodEnd {
		return methodNames[m]
	}
	return fmt.Sprintf("method(%d)", byte(m))
}

// Valid says m is a method of this protocol.
func (m Method) Valid() bool { return m > 0 && m < methodEnd }

// Data streams of a FrameData.
const (
	StreamStdout byte = 1
	StreamStderr byte = 2
)

// CallProtocol is what a shim's hello says: the protocol and its version. A client that
// reads anything else, or nothing (a shim from before this protocol, which spoke ttrpc and
// waits for the client), does not talk to that shim.
const CallProtocol = "peapod-shim-call/1"

const (
	// MaxCallPayload caps a call's request and its answer: a Create carries the container's
	// whole OCI spec.
	MaxCallPayload = 4 << 20
	callIDLen      = 4
	callDataHead   = callIDLen + 1
)

// callLimit is the call protocol's limitFunc.
func callLimit(t FrameType) (int, bool) {
	switch t {
	case FrameCall, FrameAnswer, FrameFail:
		return MaxCallPayload, false
	case FrameData:
		return callDataHead + MaxFramePayload, false
	case FrameCancel:
		return callIDLen, true
	case FrameHello:
		return 64, false
	}
	return -1, false
}

// WriteHello is the shim's first frame on a connection.
func (fw *FrameWriter) WriteHello() error {
	return fw.writeFrame(FrameHello, nil, []byte(CallProtocol))
}

// ReadHello reads a shim's first frame: nil if it speaks this protocol.
func ReadHello(r *FrameReader) error {
	t, p, err := r.Next()
	if err != nil {
		return fmt.Errorf("read the shim's hello: %w", err)
	}
	if t != FrameHello || string(p) != CallProtocol {
		return fmt.Errorf("the shim's hello is %q %q, not %q: %w", t, p, CallProtocol, ErrProtocol)
	}
	return nil
}

// NewCallReader reads the call protocol's frames.
func NewCallReader(r io.Reader) *FrameReader { return &FrameReader{r: r, limit: callLimit} }

// NewCallWriter writes the call protocol's frames.
func NewCallWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w, limit: callLimit} }

// Call is a call frame, decoded.
type Call struct {
	ID     uint32
	Method Method
	Body   []byte // valid until the reader's next frame
}

// ParseCall decodes a FrameCall's payload.
func ParseCall(p []byte) (Call, error) {
	if len(p) < callIDLen+1 {
		return Call{}, fmt.Errorf("call frame of %d bytes: %w", len(p), ErrProtocol)
	}
	return Call{ID: binary.BigEndian.Uint32(p), Method: Method(p[callIDLen]), Body: p[callIDLen+1:]}, nil
}

// CallID is the id a FrameCancel, FrameAnswer, FrameFail or FrameData payload begins with,
// and what follows it.
func CallID(p []byte) (uint32, []byte, error) {
	if len(p) < callIDLen {
		return 0, nil, fmt.Errorf("frame of %d bytes has no call id: %w", len(p), ErrProtocol)
	}
	return binary.BigEndian.Uint32(p), p[callIDLen:], nil
}

func callHead(id uint32, extra ...byte) []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, callDataHead), id)
	return append(b, extra...)
}

// WriteCall sends call id of method m with request req (JSON encoded; nil sends none).
func (fw *FrameWriter) WriteCall(id uint32, m Method, req any) error {
	body, err := marshalBody(req)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", m, err)
	}
	return fw.writeFrame(FrameCall, callHead(id, byte(m)), body)
}

// WriteCancel tells the shim the client no longer waits for call id.
func (fw *FrameWriter) WriteCancel(id uint32) error {
	return fw.writeFrame(FrameCancel, callHead(id), nil)
}

// WriteAnswer ends call id with resp (JSON encoded; nil sends none).
func (fw *FrameWriter) WriteAnswer(id uint32, resp any) error {
	body, err := marshalBody(resp)
	if err != nil {
		return fmt.Errorf("encode answer: %w", err)
	}
	return fw.writeFrame(FrameAnswer, callHead(id), body)
}

// WriteFail ends call id with err, its class kept (ErrorClass).
func (fw *FrameWriter) WriteFail(id uint32, err error) error {
	return fw.writeFrame(FrameFail, callHead(id), errorPayload(err))
}

// WriteCallData sends p, output of call id's stream, in frames of at most MaxFramePayload
// bytes each.
func (fw *FrameWriter) WriteCallData(id uint32, stream byte, p []byte) error {
	return fw.writeData(FrameData, callHead(id, stream), p)
}

func marshalBody(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

// DecodeBody decodes a request or answer body into v; an empty body leaves v as it is.
func DecodeBody(b []byte, v any) error {
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return nil
}

// DecodeFail is the error a failure frame carries (a call's FrameFail body, or a session's
// FrameError), its class restored.
func DecodeFail(b []byte) error {
	var e StreamError
	if err := json.Unmarshal(b, &e); err != nil {
		return fmt.Errorf("failure frame: %w: %v", ErrProtocol, err)
	}
	return &CallError{Class: e.Class, Message: e.Message}
}

// errorPayload is err as a failure frame carries it: its class's name and its text.
func errorPayload(err error) []byte {
	b, _ := json.Marshal(StreamError{Class: ErrorClass(err), Message: err.Error()})
	return b
}

// CallError is a failure the shim sent (DecodeFail), as the client receives it: Unwrap gives
// its errdefs class, and its text ends with the class's as ClassError's does.
type CallError struct {
	Class   string
	Message string
}

func (e *CallError) Error() string { return ClassError(e.Class, e.Message).Error() }

func (e *CallError) Unwrap() error { return classOf(e.Class) }

// Reexecuting says the shim refused the call unprocessed because it re-executes.
func (e *CallError) Reexecuting() bool {
	return e.Class == classUnavailable && len(e.Message) >= len(ReexecutingMessage) &&
		e.Message[:len(ReexecutingMessage)] == ReexecutingMessage
}

// The requests and answers of the methods.

// IDRequest names a container.
type IDRequest struct {
	ID string `json:"id"`
}

// CreateRequest is a Create. Spec is the OCI runtime spec; root.path is replaced by Rootfs.
type CreateRequest struct {
	ID        string          `json:"id"`
	Spec      json.RawMessage `json:"spec"`
	Rootfs    string          `json:"rootfs,omitempty"`
	Stdin     bool            `json:"stdin,omitempty"`
	StdinOnce bool            `json:"stdin_once,omitempty"`
	Tty       bool            `json:"tty,omitempty"`
	// LogPath is the CRI log file's absolute path; "" discards the output.
	LogPath string `json:"log_path,omitempty"`
	// LogRoot is the pod's log directory, which LogPath lies beneath: the file is opened
	// relative to it without following any symlink.
	LogRoot string `json:"log_root,omitempty"`
}

// PidResponse answers Create and Start.
type PidResponse struct {
	Pid int `json:"pid"`
}

// SignalRequest is a Signal.
type SignalRequest struct {
	ID     string `json:"id"`
	Signal int    `json:"signal"`
	All    bool   `json:"all,omitempty"`
}

// ListResponse answers List.
type ListResponse struct {
	Containers []shim.ContainerState `json:"containers"`
}

// ExecSyncRequest is an ExecSync; Env, Cwd and User replace the container's when set, and
// Timeout (nanoseconds, 0 for none) kills the command's process group.
type ExecSyncRequest struct {
	ID      string      `json:"id"`
	Args    []string    `json:"args"`
	Env     []string    `json:"env,omitempty"`
	Cwd     string      `json:"cwd,omitempty"`
	User    *specs.User `json:"user,omitempty"`
	Timeout int64       `json:"timeout_ns,omitempty"`
}

// ExecSyncExit answers ExecSync, after its output.
type ExecSyncExit struct {
	ExitCode int  `json:"exit_code"`
	TimedOut bool `json:"timed_out,omitempty"`
}

// CheckpointRequest is a Checkpoint: CRIU's images go to ImagesDir, its log (dump.log) to
// WorkDir, both absolute and created if missing; LeaveRunning lets the container go on.
type CheckpointRequest struct {
	ID           string `json:"id"`
	ImagesDir    string `json:"images_dir"`
	WorkDir      string `json:"work_dir"`
	LeaveRunning bool   `json:"leave_running,omitempty"`
}
