package wire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/peapod-runtime/peapod/shim"
)

// The stream protocol carries interactive exec and attach sessions over the shim's second
// socket (StreamSocketPath), one connection per session. Byte streams do not go over ttrpc:
// its streams have no flow control, so one slow reader would stall the pod's whole control
// connection. Here backpressure is the socket's own.
//
// Everything is a frame: type (1 byte) | payload length (uint32, big endian) | payload.
//
//	client → shim   'H' header (JSON StreamHeader), first and once
//	shim → client   'K' ok (JSON StreamReply) or 'E' error (JSON StreamError), once
//	client → shim   'i' stdin data, 'c' stdin closed, 'r' resize (width, height: uint16 each)
//	shim → client   'o' stdout, 'e' stderr, 'x' exit (int32 code), or 'E' when the shim
//	                ends the session early (an attached client that fell too far behind)
//
// The shim closes the connection after 'x' or 'E'; a client ends a session early by closing
// its connection (the shim then kills an exec's process group; an attach just detaches).
// Data frames carry at most MaxFramePayload bytes; larger frames are rejected.

type FrameType byte

func (t FrameType) String() string { return string([]byte{byte(t)}) }

const (
	FrameHeader     FrameType = 'H'
	FrameOK         FrameType = 'K'
	FrameError      FrameType = 'E'
	FrameStdin      FrameType = 'i'
	FrameStdinClose FrameType = 'c'
	FrameResize     FrameType = 'r'
	FrameStdout     FrameType = 'o'
	FrameStderr     FrameType = 'e'
	FrameExit       FrameType = 'x'
)

const (
	// MaxFramePayload caps a data frame: what the sender reads at once, and what a reader
	// must hold.
	MaxFramePayload = 32 << 10
	// MaxControlPayload caps a JSON frame: a header carries a command line and environment.
	MaxControlPayload = 1 << 20
	frameHeaderLen    = 5
)

// Session kinds of a StreamHeader.
const (
	OpExec   = "exec"
	OpAttach = "attach"
)

// StreamHeader opens a session. Stdin, Stdout and Stderr say which streams the client has.
type StreamHeader struct {
	Op     string             `json:"op"`
	ID     string             `json:"id"`
	Args   []string           `json:"args,omitempty"`
	Env    []string           `json:"env,omitempty"`
	Cwd    string             `json:"cwd,omitempty"`
	User   *specs.User        `json:"user,omitempty"`
	Tty    bool               `json:"tty,omitempty"`
	Stdin  bool               `json:"stdin,omitempty"`
	Stdout bool               `json:"stdout,omitempty"`
	Stderr bool               `json:"stderr,omitempty"`
	Size   *shim.TerminalSize `json:"size,omitempty"`
}

// StreamReply accepts a session.
type StreamReply struct {
	// Stdin says the client's stdin reaches the process: an attach to a container created
	// without stdin (or whose StdinOnce stdin was closed) says false, and the client does
	// not read its stdin at all.
	Stdin bool `json:"stdin,omitempty"`
}

// StreamError refuses or ends a session; Class is an errdefs class name (ErrorClass).
type StreamError struct {
	Class   string `json:"class,omitempty"`
	Message string `json:"message"`
}

// ErrProtocol is a frame that breaks the protocol: the peer is not a peapod shim or client of
// the same version.
var ErrProtocol = errors.New("shim stream protocol error")

// payloadLimit is the largest payload a frame of type t may carry, or -1 for an unknown type.
// Frames with a fixed size are checked exactly in readFrame.
func payloadLimit(t FrameType) int {
	switch t {
	case FrameHeader, FrameOK, FrameError:
		return MaxControlPayload
	case FrameStdin, FrameStdout, FrameStderr:
		return MaxFramePayload
	case FrameResize, FrameExit:
		return 4
	case FrameStdinClose:
		return 0
	}
	return -1
}

// FrameWriter writes whole frames; it is safe for concurrent use (an exec's two output pumps
// share one connection).
type FrameWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// WriteFrame sends one frame in one Write, so that frames of concurrent writers never interleave.
func (fw *FrameWriter) WriteFrame(t FrameType, p []byte) error {
	if limit := payloadLimit(t); limit < 0 || len(p) > limit {
		return fmt.Errorf("frame %q of %d bytes: %w", t, len(p), ErrProtocol)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	b := append(fw.buf[:0], byte(t), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[1:frameHeaderLen], uint32(len(p)))
	b = append(b, p...)
	if cap(b) <= frameHeaderLen+MaxFramePayload {
		fw.buf = b
	} else {
		fw.buf = nil
	}
	_, err := fw.w.Write(b)
	return err
}

// WriteData sends p as frames of type t of at most MaxFramePayload bytes each.
func (fw *FrameWriter) WriteData(t FrameType, p []byte) error {
	for len(p) > 0 {
		n := min(len(p), MaxFramePayload)
		if err := fw.WriteFrame(t, p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func (fw *FrameWriter) WriteJSON(t FrameType, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode frame %q: %w", t, err)
	}
	return fw.WriteFrame(t, b)
}

func (fw *FrameWriter) WriteResize(s shim.TerminalSize) error {
	var b [4]byte
	binary.BigEndian.PutUint16(b[0:], s.Width)
	binary.BigEndian.PutUint16(b[2:], s.Height)
	return fw.WriteFrame(FrameResize, b[:])
}

func (fw *FrameWriter) WriteExit(code int) error {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(int32(code)))
	return fw.WriteFrame(FrameExit, b[:])
}

func (fw *FrameWriter) WriteError(err error) error {
	return fw.WriteJSON(FrameError, StreamError{Class: ErrorClass(err), Message: err.Error()})
}

// FrameReader reads frames; a payload is valid until the next call.
type FrameReader struct {
	r   io.Reader
	hdr [frameHeaderLen]byte
	buf []byte
}

func NewFrameReader(r io.Reader) *FrameReader { return &FrameReader{r: r} }

// Next reads one frame. A connection closed between frames gives io.EOF; one closed inside a
// frame gives io.ErrUnexpectedEOF; an unknown type or a payload over its limit gives an error
// wrapping ErrProtocol.
func (fr *FrameReader) Next() (FrameType, []byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return 0, nil, err
	}
	t := FrameType(fr.hdr[0])
	n := binary.BigEndian.Uint32(fr.hdr[1:])
	limit := payloadLimit(t)
	if limit < 0 {
		return 0, nil, fmt.Errorf("unknown frame type %q: %w", t, ErrProtocol)
	}
	if uint64(n) > uint64(limit) || (t == FrameResize || t == FrameExit) && n != 4 {
		return 0, nil, fmt.Errorf("frame %q of %d bytes (limit %d): %w", t, n, limit, ErrProtocol)
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
	if cap(fr.buf) > MaxFramePayload {
		// Keep no control-sized buffer for the rest of a long session.
		fr.buf = nil
	}
	return t, p, nil
}

func DecodeResize(p []byte) shim.TerminalSize {
	return shim.TerminalSize{Width: binary.BigEndian.Uint16(p[0:]), Height: binary.BigEndian.Uint16(p[2:])}
}

func DecodeExit(p []byte) int { return int(int32(binary.BigEndian.Uint32(p))) }
