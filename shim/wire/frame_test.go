package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/peapod-runtime/peapod/shim"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewFrameWriter(&buf)
	big := bytes.Repeat([]byte("x"), MaxFramePayload+10)
	steps := []func() error{
		func() error {
			return w.WriteJSON(FrameHeader, StreamHeader{Op: OpExec, ID: "c", Args: []string{"sh"}, Tty: true})
		},
		func() error { return w.WriteFrame(FrameStdin, []byte("hello")) },
		func() error { return w.WriteFrame(FrameStdinClose, nil) },
		func() error { return w.WriteResize(shim.TerminalSize{Width: 100, Height: 40}) },
		func() error { return w.WriteData(FrameStdout, big) },
		func() error { return w.WriteExit(-1) },
		func() error { return w.WriteExit(137) },
	}
	for i, f := range steps {
		if err := f(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	r := NewFrameReader(&buf)
	want := []struct {
		t   FrameType
		len int
	}{
		{FrameHeader, -1}, {FrameStdin, 5}, {FrameStdinClose, 0}, {FrameResize, 4},
		{FrameStdout, MaxFramePayload}, {FrameStdout, 10}, {FrameExit, 4}, {FrameExit, 4},
	}
	var got []string
	for i, w := range want {
		ft, p, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if ft != w.t || w.len >= 0 && len(p) != w.len {
			t.Fatalf("frame %d: %q with %d bytes, want %q with %d", i, ft, len(p), w.t, w.len)
		}
		switch ft {
		case FrameResize:
			got = append(got, fmt.Sprint(DecodeResize(p)))
		case FrameExit:
			got = append(got, fmt.Sprint(DecodeExit(p)))
		case FrameStdin:
			got = append(got, string(p))
		}
	}
	if s := strings.Join(got, ","); s != "hello,{100 40},-1,137" {
		t.Errorf("decoded %s", s)
	}
	if _, _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last frame: %v, want EOF", err)
	}
}

func frame(t FrameType, n uint32, payload []byte) []byte {
	b := []byte{byte(t), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], n)
	return append(b, payload...)
}

func TestFrameReaderRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"unknown type", frame('?', 0, nil), ErrProtocol},
		{"data over the cap", frame(FrameStdin, MaxFramePayload+1, nil), ErrProtocol},
		{"control over the cap", frame(FrameHeader, MaxControlPayload+1, nil), ErrProtocol},
		{"short resize", frame(FrameResize, 2, []byte{0, 1}), ErrProtocol},
		{"exit with payload of 8", frame(FrameExit, 8, make([]byte, 8)), ErrProtocol},
		{"stdin close with payload", frame(FrameStdinClose, 1, []byte{1}), ErrProtocol},
		{"cut inside the header", []byte{byte(FrameStdout), 0}, io.ErrUnexpectedEOF},
		{"cut inside the payload", frame(FrameStdout, 10, []byte("abc")), io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := NewFrameReader(bytes.NewReader(tc.in)).Next()
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestFrameWriterRejects(t *testing.T) {
	w := NewFrameWriter(io.Discard)
	for _, tc := range []struct {
		name string
		t    FrameType
		n    int
	}{
		{"data over the cap", FrameStdout, MaxFramePayload + 1},
		{"unknown type", '?', 0},
		{"stdin close with payload", FrameStdinClose, 1},
	} {
		if err := w.WriteFrame(tc.t, make([]byte, tc.n)); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: got %v, want a protocol error", tc.name, err)
		}
	}
}

// Frames of concurrent writers never interleave.
func TestFrameWriterConcurrent(t *testing.T) {
	pr, pw := io.Pipe()
	w := NewFrameWriter(pw)
	var wg sync.WaitGroup
	for _, ft := range []FrameType{FrameStdout, FrameStderr} {
		wg.Go(func() {
			p := bytes.Repeat([]byte{byte(ft)}, 1000)
			for range 100 {
				if err := w.WriteFrame(ft, p); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		pw.Close()
	}()
	r := NewFrameReader(pr)
	n := 0
	for {
		ft, p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 1000 || bytes.Count(p, []byte{byte(ft)}) != 1000 {
			t.Fatalf("frame %q mixed with another", ft)
		}
		n++
	}
	if n != 200 {
		t.Errorf("%d frames, want 200", n)
	}
}

func TestErrorClasses(t *testing.T) {
	for _, class := range []error{
		errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrInvalidArgument,
		errdefs.ErrFailedPrecondition, errdefs.ErrUnavailable, errdefs.ErrNotImplemented,
		context.DeadlineExceeded, context.Canceled,
	} {
		err := fmt.Errorf("container x: %w", class)
		back := ClassError(ErrorClass(err), err.Error())
		if !errors.Is(back, class) || back.Error() != err.Error() {
			t.Errorf("%v came back as %v", err, back)
		}
	}
	plain := errors.New("boom")
	if c := ErrorClass(plain); c != "" {
		t.Errorf("class of a plain error: %q", c)
	}
	if err := ClassError("", "boom"); err.Error() != "boom" || ErrorClass(err) != "" {
		t.Errorf("plain error came back as %v", err)
	}
}
