package shim

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
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := newFrameWriter(&buf)
	big := bytes.Repeat([]byte("x"), maxFramePayload+10)
	steps := []func() error{
		func() error {
			return w.writeJSON(frameHeader, streamHeader{Op: opExec, ID: "c", Args: []string{"sh"}, Tty: true})
		},
		func() error { return w.write(frameStdin, []byte("hello")) },
		func() error { return w.write(frameStdinClose, nil) },
		func() error { return w.writeResize(TerminalSize{Width: 100, Height: 40}) },
		func() error { return w.writeData(frameStdout, big) },
		func() error { return w.writeExit(-1) },
		func() error { return w.writeExit(137) },
	}
	for i, f := range steps {
		if err := f(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	r := newFrameReader(&buf)
	want := []struct {
		t   frameType
		len int
	}{
		{frameHeader, -1}, {frameStdin, 5}, {frameStdinClose, 0}, {frameResize, 4},
		{frameStdout, maxFramePayload}, {frameStdout, 10}, {frameExit, 4}, {frameExit, 4},
	}
	var got []string
	for i, w := range want {
		ft, p, err := r.next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if ft != w.t || w.len >= 0 && len(p) != w.len {
			t.Fatalf("frame %d: %q with %d bytes, want %q with %d", i, ft, len(p), w.t, w.len)
		}
		switch ft {
		case frameResize:
			got = append(got, fmt.Sprint(decodeResize(p)))
		case frameExit:
			got = append(got, fmt.Sprint(decodeExit(p)))
		case frameStdin:
			got = append(got, string(p))
		}
	}
	if s := strings.Join(got, ","); s != "hello,{100 40},-1,137" {
		t.Errorf("decoded %s", s)
	}
	if _, _, err := r.next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last frame: %v, want EOF", err)
	}
}

func frame(t frameType, n uint32, payload []byte) []byte {
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
		{"unknown type", frame('?', 0, nil), errProtocol},
		{"data over the cap", frame(frameStdin, maxFramePayload+1, nil), errProtocol},
		{"control over the cap", frame(frameHeader, maxControlPayload+1, nil), errProtocol},
		{"short resize", frame(frameResize, 2, []byte{0, 1}), errProtocol},
		{"exit with payload of 8", frame(frameExit, 8, make([]byte, 8)), errProtocol},
		{"stdin close with payload", frame(frameStdinClose, 1, []byte{1}), errProtocol},
		{"cut inside the header", []byte{byte(frameStdout), 0}, io.ErrUnexpectedEOF},
		{"cut inside the payload", frame(frameStdout, 10, []byte("abc")), io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := newFrameReader(bytes.NewReader(tc.in)).next()
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestFrameWriterRejects(t *testing.T) {
	w := newFrameWriter(io.Discard)
	for _, tc := range []struct {
		name string
		t    frameType
		n    int
	}{
		{"data over the cap", frameStdout, maxFramePayload + 1},
		{"unknown type", '?', 0},
		{"stdin close with payload", frameStdinClose, 1},
	} {
		if err := w.write(tc.t, make([]byte, tc.n)); !errors.Is(err, errProtocol) {
			t.Errorf("%s: got %v, want a protocol error", tc.name, err)
		}
	}
}

// Frames of concurrent writers never interleave.
func TestFrameWriterConcurrent(t *testing.T) {
	pr, pw := io.Pipe()
	w := newFrameWriter(pw)
	var wg sync.WaitGroup
	for _, ft := range []frameType{frameStdout, frameStderr} {
		wg.Go(func() {
			p := bytes.Repeat([]byte{byte(ft)}, 1000)
			for range 100 {
				if err := w.write(ft, p); err != nil {
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
	r := newFrameReader(pr)
	n := 0
	for {
		ft, p, err := r.next()
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
		back := classError(errorClass(err), err.Error())
		if !errors.Is(back, class) || back.Error() != err.Error() {
			t.Errorf("%v came back as %v", err, back)
		}
	}
	plain := errors.New("boom")
	if c := errorClass(plain); c != "" {
		t.Errorf("class of a plain error: %q", c)
	}
	if err := classError("", "boom"); err.Error() != "boom" || errorClass(err) != "" {
		t.Errorf("plain error came back as %v", err)
	}
}

func TestOutputHub(t *testing.T) {
	h := newOutputHub(10)
	if n := h.publish(frameStdout, []byte("nobody")); n != 0 {
		t.Fatalf("publish with nobody attached dropped %d", n)
	}
	both := h.subscribe(true, true)
	outOnly := h.subscribe(true, false)
	slow := h.subscribe(true, true)

	buf := []byte("abc")
	h.publish(frameStdout, buf)
	buf[0] = 'X' // the copier reuses its buffer: queues hold copies
	h.publish(frameStderr, []byte("err"))
	got, ended, dropped := both.take()
	if len(got) != 2 || string(got[0].data) != "abc" || got[0].stream != frameStdout || string(got[1].data) != "err" || ended || dropped {
		t.Fatalf("both: %+v ended %v dropped %v", got, ended, dropped)
	}
	if got, _, _ := outOnly.take(); len(got) != 1 || string(got[0].data) != "abc" {
		t.Fatalf("stdout only: %+v", got)
	}
	// slow has 6 bytes queued; 5 more go over the limit of 10 and drop it, not the others.
	if n := h.publish(frameStdout, []byte("12345")); n != 1 {
		t.Fatalf("dropped %d, want 1", n)
	}
	if got, _, dropped := slow.take(); len(got) != 0 || !dropped {
		t.Fatalf("slow: %+v dropped %v", got, dropped)
	}
	select {
	case <-slow.ready:
	default:
		t.Error("a dropped queue is not signalled")
	}
	both.take()
	outOnly.take()
	if n := h.publish(frameStdout, []byte("more")); n != 0 {
		t.Fatalf("a dropped queue is still fed: %d", n)
	}
	h.unsubscribe(outOnly)
	h.publish(frameStdout, []byte("last"))
	h.end()
	got, ended, _ = both.take()
	if len(got) != 2 || !ended {
		t.Fatalf("both at the end: %+v ended %v", got, ended)
	}
	if got, ended, _ := outOnly.take(); len(got) != 1 || ended {
		t.Fatalf("unsubscribed queue: %+v ended %v (want what it had before)", got, ended)
	}
	late := h.subscribe(true, true)
	if _, ended, _ := late.take(); !ended {
		t.Error("a queue after the end is not ended")
	}
}

func TestTeeToHub(t *testing.T) {
	h := newOutputHub(1 << 20)
	q := h.subscribe(true, true)
	r := &teeToHub{r: strings.NewReader("line 1\nline 2\n"), hub: h, stream: frameStderr}
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "line 1\nline 2\n" {
		t.Fatalf("read %q, %v", b, err)
	}
	var all []byte
	chunks, _, _ := q.take()
	for _, c := range chunks {
		if c.stream != frameStderr {
			t.Errorf("chunk on %q", c.stream)
		}
		all = append(all, c.data...)
	}
	if string(all) != string(b) {
		t.Errorf("hub got %q", all)
	}
}
