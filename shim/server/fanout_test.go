package server

import (
	"io"
	"strings"
	"testing"

	"github.com/peapod-runtime/peapod/shim/wire"
)

func TestOutputHub(t *testing.T) {
	h := newOutputHub(10)
	if n := h.publish(wire.FrameStdout, []byte("nobody")); n != 0 {
		t.Fatalf("publish with nobody attached dropped %d", n)
	}
	both := h.subscribe(true, true)
	outOnly := h.subscribe(true, false)
	slow := h.subscribe(true, true)

	buf := []byte("abc")
	h.publish(wire.FrameStdout, buf)
	buf[0] = 'X' // the copier reuses its buffer: queues hold copies
	h.publish(wire.FrameStderr, []byte("err"))
	got, ended, dropped := both.take()
	if len(got) != 2 || string(got[0].data) != "abc" || got[0].stream != wire.FrameStdout || string(got[1].data) != "err" || ended || dropped {
		t.Fatalf("both: %+v ended %v dropped %v", got, ended, dropped)
	}
	if got, _, _ := outOnly.take(); len(got) != 1 || string(got[0].data) != "abc" {
		t.Fatalf("stdout only: %+v", got)
	}
	// slow has 6 bytes queued; 5 more go over the limit of 10 and drop it, not the others.
	if n := h.publish(wire.FrameStdout, []byte("12345")); n != 1 {
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
	if n := h.publish(wire.FrameStdout, []byte("more")); n != 0 {
		t.Fatalf("a dropped queue is still fed: %d", n)
	}
	h.unsubscribe(outOnly)
	h.publish(wire.FrameStdout, []byte("last"))
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
	r := &teeToHub{r: strings.NewReader("line 1\nline 2\n"), hub: h, stream: wire.FrameStderr}
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "line 1\nline 2\n" {
		t.Fatalf("read %q, %v", b, err)
	}
	var all []byte
	chunks, _, _ := q.take()
	for _, c := range chunks {
		if c.stream != wire.FrameStderr {
			t.Errorf("chunk on %q", c.stream)
		}
		all = append(all, c.data...)
	}
	if string(all) != string(b) {
		t.Errorf("hub got %q", all)
	}
}
