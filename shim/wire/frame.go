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
// socket (StreamSocketPath), one connection per session. Byte streams do not share the call
// protocol's connection (call.go): one slow reader would stall the pod's every call. Here
// backpressure is the socket's own.
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
	// maxDataPayload is the largest payload of a data frame of either protocol (a call's
	// data frame has a call id and a stream before its bytes): buffers of that size are kept.
	maxDataPayload = MaxFramePayload + callDataHead
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

// limitFunc says the largest payload a frame of type t may carry in a protocol (-1: a type
// the protocol does not have) and whether the payload must have exactly that size.
type limitFunc func(t FrameType) (limit int, exact bool)

// streamLimit is the stream protocol's limitFunc.
func streamLimit(t FrameType) (int, bool) {
	switch t {
	case FrameHeader, FrameOK, FrameError:
		return MaxControlPayload, false
	case FrameStdin, FrameStdout, FrameStderr:
		return MaxFramePayload, false
	case FrameResize, FrameExit:
		return 4, true
	case FrameStdinClose:
		return 0, true
	}
	return -1, false
}

// FrameWriter writes whole frames; it is safe for concurrent use (an exec's two output pumps
// share one connection).
type FrameWriter struct {
	mu    sync.Mutex
	w     io.Writer
	limit limitFunc
	buf   []byte
}

// NewFrameWriter writes the stream protocol's frames.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w, limit: streamLimit} }

// WriteFrame sends one frame in one Write, so that frames of concurrent writers never interleave.
func (fw *FrameWriter) WriteFrame(t FrameType, p []byte) error {
	return fw.writeFrame(t, nil, p)
}

// writeFrame sends one frame whose payload is head followed by p, in one Write.
func (fw *FrameWriter) writeFrame(t FrameType, head, p []byte) error {
	n := len(head) + len(p)
	if limit, exact := fw.limit(t); limit < 0 || n > limit || exact && n != limit {
		return fmt.Errorf("frame %q of %d bytes: %w", t, n, ErrProtocol)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	b := append(fw.buf[:0], byte(t), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[1:frameHeaderLen], uint32(n))
	b = append(append(b, head...), p...)
	if cap(b) <= frameHeaderLen+maxDataPayload {
		fw.buf = b
	} else {
		fw.buf = nil
	}
	_, err := fw.w.Write(b)
	return err
}

// WriteData sends p as frames of type t of at most MaxFramePayload bytes each.
func (fw *FrameWriter) WriteData(t FrameType, p []byte) error { return fw.writeData(t, nil, p) }

// writeData sends p in frames of type t, each head followed by at most MaxFramePayload bytes.
func (fw *FrameWriter) writeData(t FrameType, head, p []byte) error {
	for len(p) > 0 {
		n := min(len(p), MaxFramePayload)
		if err := fw.writeFrame(t, head, p[:n]); err != nil {
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
	return fw.WriteFrame(FrameError, errorPayload(err))
}

// FrameReader reads frames; a payload is valid until the next call.
type FrameReader struct {
	r     io.Reader
	limit limitFunc
	hdr   [frameHeaderLen]byte
	buf   []byte
}

// NewFrameReader reads the stream protocol's frames.
func NewFrameReader(r io.Reader) *FrameReader { return &FrameReader{r: r, limit: streamLimit} }

// Next reads one frame. A connection closed between frames gives io.EOF; one closed inside a
// frame gives io.ErrUnexpectedEOF; an unknown type or a payload over its limit gives an error
// wrapping ErrProtocol.
func (fr *FrameReader) Next() (FrameType, []byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return 0, nil, err
	}
	t := FrameType(fr.hdr[0])
	n := binary.BigEndian.Uint32(fr.hdr[1:])
	limit, exact := fr.limit(t)
	if limit < 0 {
		return 0, nil, fmt.Errorf("unknown frame type %q: %w", t, ErrProtocol)
	}
	if uint64(n) > uint64(limit) || exact && int(n) != limit {
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
	if cap(fr.buf) > maxDataPayload {
		// Keep no control-sized buffer for the rest of a long session.
		fr.buf = nil
	}
	return t, p, nil
}

func DecodeResize(p []byte) shim.TerminalSize {
	return shim.TerminalSize{Width: binary.BigEndian.Uint16(p[0:]), Height: binary.BigEndian.Uint16(p[2:])}
}

func DecodeExit(p []byte) int { return int(int32(binary.BigEndian.Uint32(p))) }
