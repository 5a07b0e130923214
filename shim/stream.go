package shim

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The stream protocol carries interactive exec and attach sessions over the shim's second
// socket (StreamSocketPath), one connection per session. Byte streams do not go over ttrpc:
// its streams have no flow control, so one slow reader would stall the pod's whole control
// connection. Here backpressure is the socket's own.
//
// Everything is a frame: type (1 byte) | payload length (uint32, big endian) | payload.
//
//	client → shim   'H' header (JSON streamHeader), first and once
//	shim → client   'K' ok (JSON streamReply) or 'E' error (JSON streamError), once
//	client → shim   'i' stdin data, 'c' stdin closed, 'r' resize (width, height: uint16 each)
//	shim → client   'o' stdout, 'e' stderr, 'x' exit (int32 code), or 'E' when the shim
//	                ends the session early (an attached client that fell too far behind)
//
// The shim closes the connection after 'x' or 'E'; a client ends a session early by closing
// its connection (the shim then kills an exec's process group; an attach just detaches).
// Data frames carry at most maxFramePayload bytes; larger frames are rejected.

type frameType byte

func (t frameType) String() string { return string([]byte{byte(t)}) }

const (
	frameHeader     frameType = 'H'
	frameOK         frameType = 'K'
	frameError      frameType = 'E'
	frameStdin      frameType = 'i'
	frameStdinClose frameType = 'c'
	frameResize     frameType = 'r'
	frameStdout     frameType = 'o'
	frameStderr     frameType = 'e'
	frameExit       frameType = 'x'
)

const (
	// maxFramePayload caps a data frame: what the sender reads at once, and what a reader
	// must hold.
	maxFramePayload = 32 << 10
	// maxControlPayload caps a JSON frame: a header carries a command line and environment.
	maxControlPayload = 1 << 20
	frameHeaderLen    = 5
)

// Session kinds of a streamHeader.
const (
	opExec   = "exec"
	opAttach = "attach"
)

// streamHeader opens a session. Stdin, Stdout and Stderr say which streams the client has.
type streamHeader struct {
	Op     string        `json:"op"`
	ID     string        `json:"id"`
	Args   []string      `json:"args,omitempty"`
	Env    []string      `json:"env,omitempty"`
	Cwd    string        `json:"cwd,omitempty"`
	User   *specs.User   `json:"user,omitempty"`
	Tty    bool          `json:"tty,omitempty"`
	Stdin  bool          `json:"stdin,omitempty"`
	Stdout bool          `json:"stdout,omitempty"`
	Stderr bool          `json:"stderr,omitempty"`
	Size   *TerminalSize `json:"size,omitempty"`
}

// streamReply accepts a session.
type streamReply struct {
	// Stdin says the client's stdin reaches the process: an attach to a container created
	// without stdin (or whose StdinOnce stdin was closed) says false, and the client does
	// not read its stdin at all.
	Stdin bool `json:"stdin,omitempty"`
}

// streamError refuses or ends a session; Class is an errdefs class name (errorClass).
type streamError struct {
	Class   string `json:"class,omitempty"`
	Message string `json:"message"`
}

// errProtocol is a frame that breaks the protocol: the peer is not a peapod shim or client of
// the same version.
var errProtocol = errors.New("shim stream protocol error")

// payloadLimit is the largest payload a frame of type t may carry, or -1 for an unknown type.
// Frames with a fixed size are checked exactly in readFrame.
func payloadLimit(t frameType) int {
	switch t {
	case frameHeader, frameOK, frameError:
		return maxControlPayload
	case frameStdin, frameStdout, frameStderr:
		return maxFramePayload
	case frameResize, frameExit:
		return 4
	case frameStdinClose:
		return 0
	}
	return -1
}

// frameWriter writes whole frames; it is safe for concurrent use (an exec's two output pumps
// share one connection).
type frameWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func newFrameWriter(w io.Writer) *frameWriter { return &frameWriter{w: w} }

// write sends one frame in one Write, so that frames of concurrent writers never interleave.
func (fw *frameWriter) write(t frameType, p []byte) error {
	if limit := payloadLimit(t); limit < 0 || len(p) > limit {
		return fmt.Errorf("frame %q of %d bytes: %w", t, len(p), errProtocol)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	b := append(fw.buf[:0], byte(t), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[1:frameHeaderLen], uint32(len(p)))
	b = append(b, p...)
	if cap(b) <= frameHeaderLen+maxFramePayload {
		fw.buf = b
	} else {
		fw.buf = nil
	}
	_, err := fw.w.Write(b)
	return err
}

// writeData sends p as frames of type t of at most maxFramePayload bytes each.
func (fw *frameWriter) writeData(t frameType, p []byte) error {
	for len(p) > 0 {
		n := min(len(p), maxFramePayload)
		if err := fw.write(t, p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func (fw *frameWriter) writeJSON(t frameType, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode frame %q: %w", t, err)
	}
	return fw.write(t, b)
}

func (fw *frameWriter) writeResize(s TerminalSize) error {
	var b [4]byte
	binary.BigEndian.PutUint16(b[0:], s.Width)
	binary.BigEndian.PutUint16(b[2:], s.Height)
	return fw.write(frameResize, b[:])
}

func (fw *frameWriter) writeExit(code int) error {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(int32(code)))
	return fw.write(frameExit, b[:])
}

func (fw *frameWriter) writeError(err error) error {
	return fw.writeJSON(frameError, streamError{Class: errorClass(err), Message: err.Error()})
}

// frameReader reads frames; a payload is valid until the next call.
type frameReader struct {
	r   io.Reader
	hdr [frameHeaderLen]byte
	buf []byte
}

func newFrameReader(r io.Reader) *frameReader { return &frameReader{r: r} }

// next reads one frame. A connection closed between frames gives io.EOF; one closed inside a
// frame gives io.ErrUnexpectedEOF; an unknown type or a payload over its limit gives an error
// wrapping errProtocol.
func (fr *frameReader) next() (frameType, []byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return 0, nil, err
	}
	t := frameType(fr.hdr[0])
	n := binary.BigEndian.Uint32(fr.hdr[1:])
	limit := payloadLimit(t)
	if limit < 0 {
		return 0, nil, fmt.Errorf("unknown frame type %q: %w", t, errProtocol)
	}
	if uint64(n) > uint64(limit) || (t == frameResize || t == frameExit) && n != 4 {
		return 0, nil, fmt.Errorf("frame %q of %d bytes (limit %d): %w", t, n, limit, errProtocol)
	}
	if int(n) > cap(fr.buf) {
		fr.buf = make([]byte, n)
	}
	p := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	if cap(fr.buf) > maxFramePayload {
		// Keep no control-sized buffer for the rest of a long session.
		fr.buf = nil
	}
	return t, p, nil
}

func decodeResize(p []byte) TerminalSize {
	return TerminalSize{Width: binary.BigEndian.Uint16(p[0:]), Height: binary.BigEndian.Uint16(p[2:])}
}

func decodeExit(p []byte) int { return int(int32(binary.BigEndian.Uint32(p))) }

// errorClasses name the errdefs classes that cross a process boundary as text (the stream
// protocol's error frames, the shim's ready message).
var errorClasses = []struct {
	name  string
	class error
}{
	{"not_found", errdefs.ErrNotFound},
	{"already_exists", errdefs.ErrAlreadyExists},
	{"invalid_argument", errdefs.ErrInvalidArgument},
	{"failed_precondition", errdefs.ErrFailedPrecondition},
	{"unavailable", errdefs.ErrUnavailable},
	{"not_implemented", errdefs.ErrNotImplemented},
	{"deadline_exceeded", context.DeadlineExceeded},
	{"canceled", context.Canceled},
}

// errorClass is the name of err's class, or "" when it has none.
func errorClass(err error) string {
	for _, c := range errorClasses {
		if errors.Is(err, c.class) {
			return c.name
		}
	}
	return ""
}

// classError rebuilds an error of the named class with the peer's message (which, made from
// a wrapped error, usually ends with the class's own text: it is not repeated).
func classError(class, msg string) error {
	for _, c := range errorClasses {
		if c.name == class {
			return fmt.Errorf("%s: %w", strings.TrimSuffix(msg, ": "+c.class.Error()), c.class)
		}
	}
	return errors.New(msg)
}
